//! Where each evaluation clip comes from: the key that leave-one-source-out evaluation keeps on
//! one side only.
//!
//! The corpus writes the evaluation set to `CORPUS/eval/<class>/<clip>.wav` and, beside it,
//! `CORPUS/manifest.csv` (`split,class_or_package,path,seconds,source_file`), whose `source_file`
//! names what each clip was cut or rendered from, relative to the cache directory (see
//! `corpus::evaluation`, `corpus::drums` and `corpus::instruments`):
//!
//! | class | `source_file` | source key |
//! |---|---|---|
//! | speech | `extracted/asterisk-core-sounds-en-g722/…/digits/1.g722` | the package (the language) |
//! | music | `extracted/fretsonfire-songs-muldjord/…/<song>/song.ogg+…/<song>/guitar.ogg` | package and song folder |
//! | drums | `extracted/hydrogen-drumkits/…/drumkits/<kit>/{kick.wav+snare.wav}` | package and kit |
//! | instrument | `extracted/fluid-soundfont-gm/…/FluidR3_GM.sf2 (program 12, midi/…)` | package and GM program |
//! | animal | `extracted/tuxpaint-stamps-default/…/animals/cat.ogg` | package and stamp file |
//!
//! A source string of any other shape is its own key.

use std::collections::HashMap;
use std::path::Path;

/// The source key of a manifest `source_file` (module documentation). Allocates the key.
pub fn source_key(source_file: &str) -> String {
    let Some((_, inside)) = source_file.split_once("extracted/") else {
        return source_file.to_string();
    };
    let (package, rest) = inside.split_once('/').unwrap_or((inside, ""));
    let detail = if package.starts_with("fretsonfire") {
        song_folder(rest)
    } else if package == "hydrogen-drumkits" {
        component_after(rest, "drumkits/")
    } else if package == "fluid-soundfont-gm" {
        gm_program(rest)
    } else if package.starts_with("tuxpaint") {
        Some(rest)
    } else {
        None
    };
    match detail {
        Some(detail) => format!("{package}/{detail}"),
        None => package.to_string(),
    }
}

/// The Debian package a [`source_key`] names: its part before the first `/`. Allocation-free.
pub fn package_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(package, _)| package)
}

/// The folder holding the first of `+`-joined stems: a Frets on Fire song. Allocation-free.
fn song_folder(stems: &str) -> Option<&str> {
    let first = stems.split('+').next()?;
    first.rsplit('/').nth(1)
}

/// The path component that follows `marker` in `path`. Allocation-free.
fn component_after<'a>(path: &'a str, marker: &str) -> Option<&'a str> {
    let (_, after) = path.split_once(marker)?;
    after.split('/').next().filter(|c| !c.is_empty())
}

/// `program N` from a rendered instrument's `… (program N, …)`. Allocation-free.
fn gm_program(source: &str) -> Option<&str> {
    let start = source.find("(program ")? + 1;
    let len = source[start..].find([',', ')'])?;
    Some(&source[start..start + len])
}

/// The fields of one CSV line as the corpus writes them: comma-separated, a field holding a comma
/// or quote wrapped in quotes with its quotes doubled. Allocates the fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => field.push(c),
        }
    }
    fields
}

/// The last two components of a path, `class/clip.wav`: how a clip is found in the manifest
/// whatever the evaluation folder is called. Allocates.
pub fn clip_key(path: &Path) -> String {
    let mut tail: Vec<String> = path
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    tail.reverse();
    tail.join("/")
}

/// The source key of every evaluation clip in the manifest text, by [`clip_key`]. Rows of other
/// splits and malformed rows are skipped. Allocates.
pub fn manifest_sources(manifest: &str) -> HashMap<String, String> {
    manifest
        .lines()
        .skip(1)
        .map(csv_fields)
        .filter(|fields| fields.len() == 5 && fields[0] == "eval")
        .map(|fields| (clip_key(Path::new(&fields[2])), source_key(&fields[4])))
        .collect()
}

/// The manifest beside an evaluation folder, `DIR/../manifest.csv`, read into
/// [`manifest_sources`]; `None` when it cannot be read. Allocates; reads a file.
pub fn read_manifest_sources(eval_dir: &Path) -> Option<HashMap<String, String>> {
    let corpus_dir = eval_dir.parent()?;
    let text = std::fs::read_to_string(corpus_dir.join("manifest.csv")).ok()?;
    Some(manifest_sources(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "split,class_or_package,path,seconds,source_file
train,sound-theme-freedesktop,train/sound-theme-freedesktop/bell.wav,1.200,extracted/sound-theme-freedesktop/usr/share/sounds/freedesktop/stereo/bell.oga
eval,speech,eval/speech/en_digits_1.wav,2.410,extracted/asterisk-core-sounds-en-g722/usr/share/asterisk/sounds/en/digits/1.g722
eval,speech,eval/speech/fr_digits_1.wav,2.230,extracted/asterisk-core-sounds-fr-g722/usr/share/asterisk/sounds/fr/digits/1.g722
eval,music,eval/music/Bangbangmystery_03.wav,4.100,extracted/fretsonfire-songs-muldjord/usr/share/games/fretsonfire/data/songs/Bangbangmystery/guitar.ogg+extracted/fretsonfire-songs-muldjord/usr/share/games/fretsonfire/data/songs/Bangbangmystery/song.ogg
eval,drums,eval/drums/pattern007_GMkit.wav,3.000,extracted/hydrogen-drumkits/usr/share/hydrogen/data/drumkits/GMkit/{Kick-Softest.wav+Snare-Soft.wav}
eval,instrument,eval/instrument/gm012_marimba_0.wav,3.300,\"extracted/fluid-soundfont-gm/usr/share/sounds/sf2/FluidR3_GM.sf2 (program 12, midi/v1/gm012_marimba_0.mid)\"
eval,animal,eval/animal/cat_1.wav,2.700,extracted/tuxpaint-stamps-default/usr/share/tuxpaint/stamps/animals/mammals/cat.ogg
";

    #[test]
    fn every_class_gets_its_source_key() {
        let sources = manifest_sources(MANIFEST);
        let expected = [
            ("speech/en_digits_1.wav", "asterisk-core-sounds-en-g722"),
            ("speech/fr_digits_1.wav", "asterisk-core-sounds-fr-g722"),
            (
                "music/Bangbangmystery_03.wav",
                "fretsonfire-songs-muldjord/Bangbangmystery",
            ),
            ("drums/pattern007_GMkit.wav", "hydrogen-drumkits/GMkit"),
            (
                "instrument/gm012_marimba_0.wav",
                "fluid-soundfont-gm/program 12",
            ),
            (
                "animal/cat_1.wav",
                "tuxpaint-stamps-default/usr/share/tuxpaint/stamps/animals/mammals/cat.ogg",
            ),
        ];
        for (clip, key) in expected {
            assert_eq!(sources.get(clip).map(String::as_str), Some(key), "{clip}");
        }
        assert_eq!(sources.len(), expected.len(), "training rows are skipped");
    }

    #[test]
    fn a_keys_package_is_its_first_part() {
        let sources = manifest_sources(MANIFEST);
        let packages: Vec<&str> = [
            "speech/en_digits_1.wav",
            "drums/pattern007_GMkit.wav",
            "animal/cat_1.wav",
        ]
        .iter()
        .map(|clip| package_of(&sources[*clip]))
        .collect();
        assert_eq!(
            packages,
            [
                "asterisk-core-sounds-en-g722",
                "hydrogen-drumkits",
                "tuxpaint-stamps-default"
            ]
        );
    }

    #[test]
    fn odd_sources_are_their_own_key() {
        assert_eq!(source_key("somewhere/else.wav"), "somewhere/else.wav");
        assert_eq!(
            source_key("/abs/cache/extracted/some-package/a/b.ogg"),
            "some-package"
        );
        assert_eq!(csv_fields("a,\"b, \"\"c\"\"\",d"), ["a", "b, \"c\"", "d"]);
        assert_eq!(
            clip_key(Path::new("data/corpus/eval/speech/x.wav")),
            "speech/x.wav"
        );
    }
}

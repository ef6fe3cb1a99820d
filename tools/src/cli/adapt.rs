//! Offline: `echoic adapt` and `echoic adapt-eval`.

use super::report::cell;
use super::{model_bytes, AdaptArgs, AdaptEvalArgs};
use crate::adaptation::scenarios::{evaluate_adaptation, ScenarioConfig};
use crate::evaluation::EvalReport;

/// Runs `echoic adapt`: the files' history, adaptation with a progress bar, the model file.
/// Allocates; reads and writes files.
pub(super) fn adapt_files(args: AdaptArgs) -> anyhow::Result<()> {
    use crate::adaptation::{adapt_model, history_of_files, write_model};
    let bytes = model_bytes(args.model.as_ref())?;
    let (meta, _) = echoic_core::listener::format::decode(&bytes)?;
    let files = crate::embed::audio_files(&args.inputs)?;
    let (history, failures) = history_of_files(&files, args.rate, &meta.features.to_settings());
    for (path, error) in &failures {
        eprintln!("skipped {}: {error}", path.display());
    }
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(1000)
    };
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:40} {percent:>3}% {elapsed} {msg}",
    )?);
    let adapted = adapt_model(&bytes, &history, &args.params.config(), |p| {
        bar.set_position((p.fraction * 1000.0) as u64);
        bar.set_message(format!(
            "epoch {}, held-out loss {:.5}",
            p.epoch, p.held_out_loss
        ));
    })?;
    bar.finish_and_clear();
    write_model(&adapted, &args.out)?;
    let r = &adapted.report;
    println!(
        "{}: {} adapted on {:.1} s of {} files ({} + {} held-out sequences): held-out loss \
         {:.5} -> {:.5}, {} epochs, best {} ({:?}), {:.1} s",
        args.out.display(),
        meta.name,
        r.history_seconds,
        files.len() - failures.len(),
        r.train_sequences,
        r.held_out_sequences,
        r.held_out_before,
        r.held_out_after,
        r.epochs,
        r.best_epoch,
        r.stop,
        r.seconds
    );
    Ok(())
}

/// Runs `echoic adapt-eval` and prints its figures. Allocates; reads files; runs ffmpeg.
pub(super) fn adapt_eval(args: AdaptEvalArgs) -> anyhow::Result<()> {
    let bytes = model_bytes(args.model.as_ref())?;
    let cfg = ScenarioConfig {
        data: args.data,
        eval_dir: (!args.no_general).then_some(args.eval),
        history_seconds: args.history_seconds,
        clips_per_class: args.clips_per_class,
        adapt: args.params.config(),
        ..ScenarioConfig::default()
    };
    println!("adaptation: {:?}", cfg.adapt);
    let result = evaluate_adaptation(&bytes, &cfg, |line| eprintln!("{line}"))?;
    for s in &result.scenarios {
        let r = &s.report;
        println!(
            "{}: {} clips of {:?}; adapted on {:.1} s ({} + {} held-out sequences) in {:.1} s on \
             one thread: held-out loss {:.5} -> {:.5}, {} epochs, best {} ({:?})",
            s.name,
            s.clips,
            s.classes,
            s.history_seconds,
            r.train_sequences,
            r.held_out_sequences,
            r.seconds,
            r.held_out_before,
            r.held_out_after,
            r.epochs,
            r.best_epoch,
            r.stop
        );
        println!("  learned-sound ROC-AUC          mean  other sources  per class");
        let chosen = if s.refit_axes {
            &s.refitted_axes
        } else {
            &s.base_axes
        };
        for (name, auc) in [
            ("before", &s.before),
            ("axes refitted only", &s.axes_only),
            ("adapted, base axes", &s.base_axes),
            ("adapted, axes refitted", &s.refitted_axes),
        ] {
            let classes: String = auc
                .per_class
                .iter()
                .map(|&v| format!(" {}", cell(v)))
                .collect();
            println!(
                "    {name:<26} {}  {:>13} {classes}",
                cell(auc.mean),
                cell(auc.leave_source_out)
            );
        }
        if let (Some(before), Some(after)) = (s.before.mean, chosen.mean) {
            let axes = if s.refit_axes { "refitted" } else { "base" };
            println!(
                "  AUC change, adapted with {axes} axes: {:+.3}",
                after - before
            );
        }
    }
    if let Some(before) = &result.general_before {
        println!("general figures on the evaluation set   5-NN CV  5-NN other sources  AUC  AUC other sources");
        let row = |name: &str, r: &EvalReport| {
            let auc = r.learned_sound_embedding.as_ref();
            println!(
                "  {name:<37} {:7.3}  {:18.3}  {}  {:>17}",
                r.knn_embedding,
                r.knn_leave_source_out[2],
                cell(auc.and_then(|a| a.mean)),
                cell(auc.and_then(|a| a.leave_source_out))
            );
        };
        row("base", before);
        for s in &result.scenarios {
            if let Some(general) = &s.general {
                row(&format!("adapted on {}", s.name), general);
            }
        }
    }
    Ok(())
}

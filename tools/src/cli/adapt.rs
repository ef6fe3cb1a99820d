//! Offline: `echoic adapt` and `echoic adapt-eval`.

use super::report::cell;
use super::{model_bytes, AdaptArgs, AdaptEvalArgs};
use crate::adaptation::scenarios::{
    evaluate_adaptation, AdaptationRun, ScenarioConfig, ScenarioResult,
};
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
        runs: args.runs.max(1),
        ..ScenarioConfig::default()
    };
    println!("adaptation: {:?}", cfg.adapt);
    let result = evaluate_adaptation(&bytes, &cfg, |line| eprintln!("{line}"))?;
    for s in &result.scenarios {
        print_scenario(s);
    }
    if let Some(before) = &result.general_before {
        println!("general figures on the whole evaluation set");
        print_general_header();
        print_general_row("base", general_figures(before));
        for s in &result.scenarios {
            print_general_runs(s, |run| run.general.as_ref());
        }
    }
    for s in &result.scenarios {
        if let Some(before) = &s.rest_before {
            println!(
                "general figures on the rest of the evaluation set, without {}",
                s.packages.join(", ")
            );
            print_general_header();
            print_general_row("base", general_figures(before));
            print_general_runs(s, |run| run.rest.as_ref());
        }
    }
    Ok(())
}

/// The general figures' column names.
fn print_general_header() {
    println!(
        "  {:<37} {:>7}  {:>18}  {:>5}  {:>17}",
        "", "5-NN CV", "5-NN other sources", "AUC", "AUC other sources"
    );
}

/// One row of general figures.
fn print_general_row(name: &str, figures: [Option<f64>; 4]) {
    let [knn, knn_loso, auc, auc_loso] = figures.map(cell);
    println!("  {name:<37} {knn:>7}  {knn_loso:>18}  {auc:>5}  {auc_loso:>17}");
}

/// The general figures `report` picks from each run of `s`, and their mean.
fn print_general_runs(s: &ScenarioResult, report: impl Fn(&AdaptationRun) -> Option<&EvalReport>) {
    let runs: Vec<(u64, [Option<f64>; 4])> = s
        .runs
        .iter()
        .filter_map(|run| Some((run.seed, general_figures(report(run)?))))
        .collect();
    for (seed, figures) in &runs {
        print_general_row(&format!("adapted on {}, seed {seed}", s.name), *figures);
    }
    if runs.len() > 1 {
        let mean = std::array::from_fn(|i| mean(runs.iter().map(|(_, f)| f[i])));
        print_general_row(&format!("adapted on {}, mean", s.name), mean);
    }
}

/// Prints one scenario's runs: what each adaptation did and its learned-sound AUC, then the
/// AUC change of each run and their mean.
fn print_scenario(s: &ScenarioResult) {
    for run in &s.runs {
        let r = &run.report;
        println!(
            "{}, seed {}: {} clips of {:?}; adapted on {:.1} s ({} + {} held-out sequences) in \
             {:.1} s on one thread: held-out loss {:.5} -> {:.5}, {} epochs, best {} ({:?})",
            s.name,
            run.seed,
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
    }
    println!("  learned-sound ROC-AUC          mean  other sources  per class");
    let mut rows = vec![
        ("before".to_string(), &s.before),
        ("axes refitted only".to_string(), &s.axes_only),
    ];
    for run in &s.runs {
        rows.push((format!("seed {}, base axes", run.seed), &run.base_axes));
        rows.push((
            format!("seed {}, axes refitted", run.seed),
            &run.refitted_axes,
        ));
    }
    for (name, auc) in rows {
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
    let axes = if s.refit_axes { "refitted" } else { "base" };
    let changes: Vec<Option<f64>> = s
        .runs
        .iter()
        .map(|run| Some(run.chosen(s.refit_axes).mean? - s.before.mean?))
        .collect();
    let listed: Vec<String> = changes
        .iter()
        .map(|c| c.map_or("–".into(), |c| format!("{c:+.3}")))
        .collect();
    println!(
        "  AUC change, adapted with {axes} axes: {} (mean {})",
        listed.join(" "),
        mean(changes.iter().copied()).map_or("–".into(), |m| format!("{m:+.3}"))
    );
}

/// The general figures `adapt-eval` shows of a report: 5-NN in clip CV and between sources,
/// the learned-sound AUC and that between sources.
fn general_figures(r: &EvalReport) -> [Option<f64>; 4] {
    let auc = r.learned_sound_embedding.as_ref();
    [
        Some(r.knn_embedding),
        Some(r.knn_leave_source_out[2]),
        auc.and_then(|a| a.mean),
        auc.and_then(|a| a.leave_source_out),
    ]
}

/// The mean of `values`; `None` if any is missing or there are none.
fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let values: Option<Vec<f64>> = values.collect();
    let values = values.filter(|v| !v.is_empty())?;
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

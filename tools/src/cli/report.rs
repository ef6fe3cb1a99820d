//! Offline: `echoic eval` and how its report is printed.

use super::{model_bytes, EvalArgs};
use crate::evaluation::EvalReport;
use crate::train::model::Autoencoder;
use echoic_core::listener::Listener;
use echoic_core::outputs::learned::DEFAULT_LEARN_SECONDS;

/// Runs `echoic eval`: evaluates the model and prints the report (and writes it as JSON when
/// asked). Allocates; reads the clips.
pub(super) fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let bytes = model_bytes(args.model.as_ref())?;
    let listener = Listener::from_bytes(&bytes)?;
    let autoencoder = Autoencoder::from_bytes(&bytes)?;
    let bar = indicatif::ProgressBar::new_spinner();
    let report = crate::evaluation::evaluate(&listener, &autoencoder, &args.dir, |path| {
        bar.set_message(path.display().to_string());
        bar.tick();
    })?;
    bar.finish_and_clear();
    println!(
        "model: {} (embeddings on {}, reconstructions by the {})",
        listener.metadata().name,
        listener.device_name(),
        autoencoder.runner()
    );
    println!(
        "classes: {:?} clips {:?}",
        report.classes, report.clips_per_class
    );
    print_sources(&report, &args.dir);
    print_reconstruction(&report);
    print_sound_type(&report);
    print_learned_sounds(&report);
    print_axes(&report);
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("report: {}", path.display());
    }
    Ok(())
}

/// Prints where the clips' sources came from, which leave-one-source-out depends on.
/// Allocates the line.
fn print_sources(report: &EvalReport, dir: &std::path::Path) {
    if !report.manifest_found {
        println!(
            "sources: no manifest.csv beside {}: every clip is its own source \
             (leave-one-source-out is leave-one-clip-out)",
            dir.display()
        );
        return;
    }
    println!(
        "sources: from the manifest, {:?} per class{}",
        report.sources_per_class,
        match report.clips_without_source {
            0 => String::new(),
            n => format!(" ({n} clips not listed, each its own source)"),
        }
    );
}

/// Prints the reconstruction metrics, in dB and in the model's units. Allocation-free.
fn print_reconstruction(report: &EvalReport) {
    let r = &report.reconstruction;
    println!(
        "reconstruction over {} frames: MSE {:.2} dB², R² {:.3}, peak-band accuracy {:.1} %",
        r.frames,
        r.mse_db2,
        r.r_squared,
        100.0 * r.peak_band_accuracy
    );
    let m = &report.reconstruction_model_units;
    println!(
        "  in model units: R² {:.3}, peak-band accuracy {:.1} % (the original Listener's metric)",
        m.r_squared,
        100.0 * m.peak_band_accuracy
    );
}

/// Prints the 5-NN sound-type table: clip-level CV and leave-one-source-out per representation,
/// on clip means and, when measured, on clip means and spreads, then the embedding's
/// leave-one-source-out votes by class. Allocates the table's cells.
fn print_sound_type(report: &EvalReport) {
    println!("5-NN sound type on clip means   dims  5-fold CV  leave-source-out");
    let rows = [
        ("mean spectrum", report.knn_mean_spectrum),
        ("dilated buffer", report.knn_dilated_buffer),
        ("embedding", report.knn_embedding),
    ];
    for (i, (name, cv)) in rows.into_iter().enumerate() {
        println!(
            "  {name:<28} {:5}  {cv:9.3}  {:16.3}",
            report.dims[i], report.knn_leave_source_out[i]
        );
    }
    if let Some(pooled) = report.knn_mean_and_spread {
        println!("  on clip mean and spread:");
        let names = ["spectrum", "dilated buffer", "embedding"];
        for (i, ([cv, loso], name)) in pooled.into_iter().zip(names).enumerate() {
            println!(
                "  {name:<28} {:5}  {cv:9.3}  {loso:16.3}",
                2 * report.dims[i]
            );
        }
    }
    if let Some(table) = &report.knn_leave_source_out_confusion {
        let header: String = report
            .classes
            .iter()
            .map(|c| format!(" {:>8.8}", c))
            .collect();
        let title = "embedding, leave-source-out: clips (rows) by the class voted";
        println!("  {title:<60}{header}");
        for (class, row) in report.classes.iter().zip(table) {
            let counts: String = row.iter().map(|n| format!(" {n:>8}")).collect();
            println!("    {class:<58}{counts}");
        }
    }
}

/// A table cell: the value to three decimals, or a dash when there is none. Allocates.
pub(super) fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// Prints the learned-sound ROC-AUC table: mean and per class, over all other clips and over
/// other sources only, for the baseline and the model. Allocates the cells.
fn print_learned_sounds(report: &EvalReport) {
    let header: String = report
        .classes
        .iter()
        .map(|c| format!(" {:>8.8}", c))
        .collect();
    let title = format!(
        "learned sound ROC-AUC ({DEFAULT_LEARN_SECONDS} s capture, {} hops)",
        report.usable_hops
    );
    println!("{title:<46}{:>6}{header}", "mean");
    let representations = [
        (
            "mean spectrum (PCA of these frames)",
            &report.learned_sound_mean_spectrum,
        ),
        (
            "embedding (the model's PCA)",
            &report.learned_sound_embedding,
        ),
    ];
    for (name, auc) in representations {
        let Some(auc) = auc else {
            println!("  {name}: no usable principal axes");
            continue;
        };
        println!(
            "  {name}: {} teachers, {} with less than a capture",
            auc.teachers, auc.short_captures
        );
        let variants = [
            ("all other clips", auc.mean, &auc.per_class),
            (
                "other sources only",
                auc.leave_source_out,
                &auc.leave_source_out_per_class,
            ),
        ];
        for (variant, mean, per_class) in variants {
            let classes: String = per_class
                .iter()
                .map(|&v| format!(" {:>8}", cell(v)))
                .collect();
            println!("    {variant:<41} {:>6}{classes}", cell(mean));
        }
    }
}

/// Prints the Pearson correlations of the first principal axes with level, spectral centroid
/// and periodicity, for the model and the baseline. Allocates the cells.
fn print_axes(report: &EvalReport) {
    println!("principal axis vs. hop feature (Pearson r)  loudness  centroid  periodicity");
    let representations = [
        ("embedding", &report.axes_embedding),
        ("mean spectrum", &report.axes_mean_spectrum),
    ];
    for (name, axes) in representations {
        if axes.is_empty() {
            println!("  {name}: no usable principal axes");
        }
        for (i, axis) in axes.iter().enumerate() {
            println!(
                "  {:<41} {:>8}  {:>8}  {:>11}",
                format!("{name} axis {}", i + 1),
                cell(axis.loudness),
                cell(axis.centroid),
                cell(axis.periodicity)
            );
        }
    }
}

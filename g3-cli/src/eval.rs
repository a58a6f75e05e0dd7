//! `g3 eval`: score a predictions CSV.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};
use g3::{AccuracyThresholds, DistanceMetric};

use crate::terminal;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// CSV with columns LAT, LON, LAT_pred, LON_pred (degrees); other columns are kept.
    #[arg(long, value_name = "FILE.csv")]
    predictions: PathBuf,

    /// Write every row with a `geodesic` column (error in km) added or replaced.
    #[arg(long, value_name = "FILE.csv")]
    output: Option<PathBuf>,

    /// Accuracy thresholds in km, increasing.
    #[arg(long, value_delimiter = ',', default_value = "1,25,200,750,2500")]
    thresholds: Vec<f64>,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// Count and report invalid rows (missing or non-numeric values, latitude out of range)
    /// instead of stopping at the first one.
    #[arg(long)]
    skip_invalid: bool,

    /// Draw the cumulative error curve (share of images within each distance, the
    /// thresholds marked) as an SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// How to measure the error.
    #[arg(long, value_enum, default_value_t = MetricArg::Geodesic)]
    metric: MetricArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    /// WGS84 ellipsoid, Karney's algorithm (what G3's evaluation uses).
    Geodesic,
    /// Sphere of mean Earth radius.
    Haversine,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let options = EvaluationOptions {
        thresholds: AccuracyThresholds::new(args.thresholds)?,
        metric: match args.metric {
            MetricArg::Geodesic => DistanceMetric::Geodesic,
            MetricArg::Haversine => DistanceMetric::Haversine,
        },
        skip_invalid: args.skip_invalid,
        ..EvaluationOptions::default()
    };
    let input_len = std::fs::metadata(&args.predictions)
        .with_context(|| format!("cannot read {}", args.predictions.display()))?
        .len();
    let progress = terminal::progress_bar(
        input_len,
        "{spinner} scoring {bar:40} {bytes}/{total_bytes} ({eta})",
    );
    let evaluation = evaluate_predictions_csv(
        &args.predictions,
        args.output.as_deref(),
        &options,
        &mut |bytes_read| progress.set_position(bytes_read),
    )?;
    progress.finish_and_clear();

    let report = &evaluation.report;
    if report.skipped_rows > 0 {
        eprintln!(
            "warning: skipped {} invalid rows; the first ones:",
            report.skipped_rows
        );
        for skipped in &evaluation.skipped_examples {
            eprintln!(
                "  {}:{}: {}",
                args.predictions.display(),
                skipped.line,
                skipped.problem
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    if let Some(output) = &args.output {
        eprintln!("wrote {}", output.display());
    }
    if let Some(plot) = &args.plot {
        let title = format!(
            "{}: {} images",
            args.predictions
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
            report.rows
        );
        g3::plot::write_error_curve_svg(plot, &evaluation.sorted_distances_km, report, &title)?;
        eprintln!("wrote {}", plot.display());
    }
    Ok(())
}

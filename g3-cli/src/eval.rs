//! `g3 eval`: score a predictions CSV.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use g3::core::ThresholdConvention;
use g3::data::{PlaceAccuracy, load_place_labeller, place_accuracy_of_csv};
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

    /// Count an error equal to a threshold as within it (`<=`, GeoCLIP's evaluation) instead
    /// of strictly below it (`<`, G3's, GeoRanker's and OSV-5M's).
    #[arg(long)]
    inclusive: bool,

    /// Leave out country, region and city accuracy (which reverse-geocode both points with
    /// the GeoNames gazetteer of `g3 fetch geoclip`).
    #[arg(long)]
    no_places: bool,
}

/// The JSON `g3 eval --json` prints: the accuracy report and, unless `--no-places`, the
/// country / region / city accuracy.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a g3::AccuracyReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    places: Option<PlacesJson>,
}

#[derive(serde::Serialize)]
struct PlacesJson {
    #[serde(flatten)]
    counts: PlaceAccuracy,
    country_percent: f64,
    region_percent: f64,
    city_percent: f64,
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
        convention: if args.inclusive {
            ThresholdConvention::Inclusive
        } else {
            ThresholdConvention::Strict
        },
        ..EvaluationOptions::default()
    };
    // The gazetteer first: a missing one stops before the scoring, saying how to get it.
    let labeller = if args.no_places {
        None
    } else {
        Some(load_place_labeller().context(
            "country, region and city accuracy need the GeoNames gazetteer: run `g3 fetch geoclip`, or pass --no-places",
        )?)
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
    let places = match &labeller {
        Some(labeller) => Some(place_accuracy_of_csv(
            &args.predictions,
            &options.columns,
            labeller,
        )?),
        None => None,
    };

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
        let json = JsonReport {
            report,
            places: places.map(|counts| PlacesJson {
                counts,
                country_percent: counts.country_percent(),
                region_percent: counts.region_percent(),
                city_percent: counts.city_percent(),
            }),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{report}");
        if let Some(places) = places {
            println!("{places}");
        }
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

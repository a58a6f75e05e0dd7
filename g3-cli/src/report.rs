//! `g3 report`: a self-contained HTML report of one or more runs.

use std::path::PathBuf;

use clap::Args;
use g3::core::ThresholdConvention;
use g3::evaluation::EvaluationOptions;
use g3::report::{ReportOptions, RunFile, write_html_report};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files of `g3 run` (IMG_ID, LAT, LON, LAT_pred, LON_pred, and the candidate
    /// pools in `candidates`); several make an ablation table and one chart of their curves.
    #[arg(value_name = "RESULTS.csv", required = true)]
    results: Vec<PathBuf>,

    /// The label of each results file, in order (repeat it: `--label G3 --label w/o-verification`);
    /// files without one are labelled by the shortest part of their path that tells them apart.
    #[arg(long, value_name = "NAME")]
    label: Vec<String>,

    /// The HTML file to write (default: the first results file with `.report.html`).
    #[arg(long, value_name = "report.html")]
    output: Option<PathBuf>,

    /// Count an error equal to a threshold as within it (`<=`, GeoCLIP's convention) instead
    /// of strictly below it (`<`, G3's).
    #[arg(long)]
    inclusive: bool,

    /// Leave out country, region and city accuracy (which need the GeoNames gazetteer of
    /// `g3 fetch geoclip`).
    #[arg(long)]
    no_places: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.label.len() <= args.results.len(),
        "{} labels for {} results files: give at most one --label per file",
        args.label.len(),
        args.results.len()
    );
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.results[0].with_extension("report.html"));
    let runs: Vec<RunFile<'_>> = args
        .results
        .iter()
        .enumerate()
        .map(|(index, path)| RunFile {
            path,
            label: args.label.get(index).map(String::as_str),
        })
        .collect();
    let options = ReportOptions {
        evaluation: EvaluationOptions {
            convention: if args.inclusive {
                ThresholdConvention::Inclusive
            } else {
                ThresholdConvention::Strict
            },
            ..EvaluationOptions::default()
        },
        no_places: args.no_places,
    };
    let summary = write_html_report(&runs, &output, &options)?;
    eprintln!(
        "wrote {} ({} run{}: {}; {} photos on the maps)",
        output.display(),
        summary.labels.len(),
        if summary.labels.len() == 1 { "" } else { "s" },
        summary.labels.join(", "),
        summary.photos
    );
    Ok(())
}

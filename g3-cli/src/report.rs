//! `g3 report`: a self-contained HTML report of one or more runs.

use std::path::PathBuf;

use clap::Args;
use g3::evaluation::EvaluationOptions;
use g3::report::write_html_report;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files of `g3 run` (IMG_ID, LAT, LON, LAT_pred, LON_pred, and the candidate
    /// pools in `candidates`); several make an ablation table, the first is mapped.
    #[arg(value_name = "RESULTS.csv", required = true)]
    results: Vec<PathBuf>,

    /// The HTML file to write (default: the first results file with `.report.html`).
    #[arg(long, value_name = "report.html")]
    output: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let output = args
        .output
        .unwrap_or_else(|| args.results[0].with_extension("report.html"));
    let runs: Vec<&std::path::Path> = args.results.iter().map(PathBuf::as_path).collect();
    let summary = write_html_report(&runs, &output, &EvaluationOptions::default())?;
    eprintln!(
        "wrote {} ({} run{}, {} photos on the map)",
        output.display(),
        summary.runs,
        if summary.runs == 1 { "" } else { "s" },
        summary.photos
    );
    Ok(())
}

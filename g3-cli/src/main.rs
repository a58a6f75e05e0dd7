//! The `g3` command-line tool.

mod cache_features;
mod common;
#[cfg(test)]
mod docs_check;
mod embed_gps;
mod embed_images;
mod eval;
mod fetch;
mod geocode;
mod index;
mod locate;
mod pipeline_args;
mod report;
mod retrieval_stats;
mod run;
mod serve;
mod terminal;
mod train;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

/// Worldwide image geolocalization with G3 (NeurIPS 2024).
#[derive(Debug, Parser)]
#[command(name = "g3", version, about, propagate_version = true)]
struct Cli {
    /// Show more: -v adds debug messages (and error backtraces when RUST_BACKTRACE=1),
    /// -vv traces. RUST_LOG overrides the log filter.
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Messages")]
    verbose: u8,

    /// Show only errors: no warnings, progress bars, notices or usage summaries.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Messages"
    )]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// CLIP's projected image and text features of a dataset, computed once for
    /// `g3 train` (resumable).
    CacheFeatures(cache_features::CacheFeaturesArgs),
    /// Score a predictions CSV: geodesic error per row and accuracy at distance thresholds.
    Eval(eval::EvalArgs),
    /// Fetch what G3 runs on: `g3` (G3's checkpoint and index, imported into a database),
    /// `clip` (CLIP ViT-L/14) or `geoclip` (what PyPI packages ship), into the HF cache.
    Fetch(fetch::FetchArgs),
    /// Embed GPS coordinates with GeoCLIP's or G3's location encoder.
    EmbedGps(embed_gps::EmbedGpsArgs),
    /// Embed photos with CLIP, G3 or GeoCLIP (a folder or a CSV list, in order).
    EmbedImages(embed_images::EmbedImagesArgs),
    /// Add place names, country, continent and G3's description to a CSV of coordinates,
    /// offline (GeoNames cities1000).
    Geocode(geocode::GeocodeArgs),
    /// The image database: build, search, import faiss, inspect.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Where were these photos taken? The pipeline (a preset or a config file) on each,
    /// with the place name of the prediction.
    Locate(locate::LocateArgs),
    /// A self-contained HTML report of runs: accuracy table, error curves, a world map of
    /// every photo, the worst predictions and their candidate pools.
    Report(report::ReportArgs),
    /// How far from each query its retrieved images were taken (the paper's Table 3), to
    /// compare databases and embeddings.
    RetrievalStats(retrieval_stats::RetrievalStatsArgs),
    /// Serve the pipeline: a JSON API (POST /v1/locate) and a web page that shows the
    /// prediction and every candidate on a world map.
    Serve(serve::ServeArgs),
    /// The pipeline over a dataset (IM2GPS3K, YFCC4K, any CSV): a results CSV for
    /// `g3 eval`, appended as photos finish and resumed after a stop.
    Run(run::RunArgs),
    /// Geo-alignment: train G3's GPS encoder, heads and temperatures from cached CLIP
    /// features (resumable; checkpoints every epoch).
    Train(train::TrainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    terminal::init(terminal::Verbosity::from_flags(cli.verbose, cli.quiet));
    let outcome = match cli.command {
        Command::CacheFeatures(args) => cache_features::run(args),
        Command::Eval(args) => eval::run(args),
        Command::EmbedGps(args) => embed_gps::run(args),
        Command::EmbedImages(args) => embed_images::run(args),
        Command::Fetch(args) => fetch::run(args),
        Command::Geocode(args) => geocode::run(args),
        Command::Index(command) => index::run(command),
        Command::Locate(args) => locate::run(args),
        Command::RetrievalStats(args) => retrieval_stats::run(args),
        Command::Report(args) => report::run(args),
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Train(args) => train::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            terminal::report_error(&error);
            ExitCode::FAILURE
        }
    }
}

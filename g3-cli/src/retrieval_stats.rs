//! `g3 retrieval-stats`: how far from the query its retrieved images were taken (the
//! paper's Table 3), for any database and embedding.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use g3::core::{Embeddings, SearchDirection};
use g3::index::Database;
use g3::{read_embeddings_npy, read_points_csv, retrieval_distances};

use crate::terminal;

#[derive(Debug, Args)]
pub struct RetrievalStatsArgs {
    /// The database (`g3 index build`).
    #[arg(long, value_name = "DIR")]
    db: PathBuf,

    /// Query embeddings, float32 `[queries, dimension]` in the database's embedding
    /// (`g3 embed-images` with the same --kind as the database).
    #[arg(long, value_name = "q.npy")]
    queries: PathBuf,

    /// Where each query was taken: a CSV with LAT and LON columns, one row per query in
    /// the order of --queries (the metadata CSV given to `g3 embed-images` fits).
    #[arg(long, value_name = "FILE.csv")]
    locations: PathBuf,

    /// Neighbours per query to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5,10,15")]
    k: Vec<usize>,

    /// Print the table as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RetrievalStatsArgs) -> anyhow::Result<()> {
    let database = Database::open(&args.db)
        .with_context(|| format!("cannot open the database {}", args.db.display()))?;
    let queries = read_embeddings_npy(&args.queries)?;
    let truth = read_points_csv(&args.locations, "LAT", "LON")?;
    if truth.len() != queries.len() {
        anyhow::bail!(
            "{} has {} query embeddings but {} has {} locations: they must be row for row",
            args.queries.display(),
            queries.len(),
            args.locations.display(),
            truth.len()
        );
    }
    let deepest = args.k.iter().copied().max().unwrap_or(0);
    let progress = terminal::progress_bar(
        queries.len() as u64,
        "{spinner} searching {bar:30} {pos}/{len} ({per_sec})",
    );
    let mut neighbors = Vec::with_capacity(queries.len());
    let dimension = queries.dimension();
    for step in queries.as_slice().chunks(1024 * dimension) {
        let step = Embeddings::new(dimension, step.to_vec())?;
        neighbors.extend(database.search_neighbors(&step, deepest, SearchDirection::Similar)?);
        progress.inc(step.len() as u64);
    }
    progress.finish_and_clear();
    let table = retrieval_distances(&truth, &neighbors, &args.k)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&table)?);
        return Ok(());
    }
    println!(
        "mean geodesic distance from each query to its top-k retrieved images, over {} queries (km)",
        truth.len()
    );
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>12}",
        "top-k", "average", "median", "max", "min"
    );
    for row in &table {
        println!(
            "{:>6} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            row.k, row.average_km, row.median_km, row.max_km, row.min_km
        );
    }
    Ok(())
}

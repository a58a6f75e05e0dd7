//! `g3 index build|search|import-faiss|info`: the image database.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use g3::core::{Embeddings, SearchDirection};
use g3::index::{
    Database, EntryMetadata, HnswConfig, MetadataCsvOptions, MetadataSource, Metric, StoreConfig,
    StoreKind,
};
use g3::{read_embeddings_npy, write_neighbors_csv};
use indicatif::ProgressBar;

use crate::common::{DtypeArg, KindArg, report_import, store_name};
use crate::terminal;
use g3::embed_images::EmbeddingParts;

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Build a database from an embeddings .npy and a metadata CSV (row i describes vector i).
    Build(BuildArgs),
    /// Retrieve the k most similar (or dissimilar) entries for each query vector.
    Search(SearchArgs),
    /// Build a database from a faiss IndexFlatIP/IndexFlatL2 file and a metadata CSV.
    ImportFaiss(ImportFaissArgs),
    /// Print a database's settings, size and text columns.
    Info(InfoArgs),
    /// Hash every file of a database against its manifest and record the verified state, so
    /// that later opens need not read it (databases are verified when written; this is for
    /// one copied, moved between disks or suspected damaged).
    Verify(InfoArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// hnsw: approximate and fast; exact: every entry scored (faiss IndexFlatIP's results).
    #[arg(long, value_enum, default_value_t = KindArg::Hnsw)]
    kind: KindArg,

    /// Storage precision: f32, f16 or i8 for HNSW; f32 or f16 for the exact store (f16: half
    /// the memory, scores within about 1e-3 of f32).
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    dtype: DtypeArg,

    /// Inner product (G3: database vectors are unit length) or cosine.
    #[arg(long, value_enum, default_value_t = MetricArg::Ip)]
    metric: MetricArg,

    /// HNSW edges per node.
    #[arg(long, default_value_t = HnswConfig::default().connectivity)]
    connectivity: usize,

    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = HnswConfig::default().expansion_add)]
    expansion_add: usize,

    /// HNSW candidate list size while searching (stored as the database's default).
    #[arg(long, default_value_t = HnswConfig::default().expansion_search)]
    expansion_search: usize,

    /// HNSW candidate list size of dissimilar searches (stored as the database's default).
    #[arg(long, default_value_t = HnswConfig::default().expansion_dissimilar)]
    expansion_dissimilar: usize,

    /// Graph candidates re-ranked by their exact f32 score (0: none). Needs --dtype f16 or
    /// i8; the database then also keeps the vectors in f32 (memory-mapped when searching).
    #[arg(long, default_value_t = HnswConfig::default().rerank)]
    rerank: usize,
}

#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// Metadata CSV with a header: latitude and longitude columns, other columns kept as
    /// text fields; row i describes vector i.
    #[arg(long, value_name = "meta.csv")]
    metadata: PathBuf,

    /// Latitude column.
    #[arg(long, default_value = "LAT")]
    lat_column: String,

    /// Longitude column.
    #[arg(long, default_value = "LON")]
    lon_column: String,

    /// Column of unsigned integer keys. Default: the row index (0-based).
    #[arg(long)]
    key_column: Option<String>,

    /// Comma-separated columns to keep as text fields. Default: every other column;
    /// an empty value keeps none.
    #[arg(long, value_delimiter = ',')]
    text_columns: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Embeddings: float32 (or float64) .npy of shape [rows, dimension]; or the parts of a
    /// split `g3 embed-images --shard I/N` run (their directory, or the part-*.npy files),
    /// joined in shard order after checking that every shard is there once.
    #[arg(long, value_name = "emb.npy|DIR", num_args = 1.., required = true)]
    embeddings: Vec<PathBuf>,

    /// Match embeddings to metadata rows by this column (the `id` of each embedding's rows
    /// CSV, as `g3 embed-images` writes it) instead of by position: the database follows the
    /// metadata's order and leaves out rows whose photo was skipped. The column must be kept
    /// as a text field.
    #[arg(long, value_name = "COL")]
    id_column: Option<String>,

    #[command(flatten)]
    metadata: MetadataArgs,

    /// Database directory to write (replaced atomically if it is a database).
    #[arg(long, value_name = "DB")]
    output: PathBuf,

    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ImportFaissArgs {
    /// A faiss IndexFlatIP or IndexFlatL2 file (faiss.write_index).
    #[arg(long, value_name = "index.faiss")]
    faiss: PathBuf,

    #[command(flatten)]
    metadata: MetadataArgs,

    /// Database directory to write.
    #[arg(long, value_name = "DB")]
    output: PathBuf,

    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Database directory (from `g3 index build` or `import-faiss`).
    #[arg(long, value_name = "DB")]
    db: PathBuf,

    /// Query embeddings: float32 .npy of shape [queries, dimension].
    #[arg(long, value_name = "q.npy")]
    queries: PathBuf,

    /// Neighbours per query.
    #[arg(long, default_value_t = 20)]
    k: usize,

    /// Retrieve the least similar entries (lowest inner product) instead.
    #[arg(long)]
    dissimilar: bool,

    /// HNSW candidate list size for this search (default: the database's).
    #[arg(long)]
    expansion_search: Option<usize>,

    /// HNSW candidate list size for this dissimilar search (default: the database's).
    #[arg(long)]
    expansion_dissimilar: Option<usize>,

    /// HNSW candidates re-ranked exactly for this search (default: the database's; only
    /// databases built with --rerank keep the f32 vectors it needs).
    #[arg(long)]
    rerank: Option<usize>,

    /// Output CSV: query, rank, key, score, LAT, LON.
    #[arg(long, value_name = "neighbours.csv")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Database directory.
    #[arg(long, value_name = "DB")]
    db: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    Ip,
    Cos,
}

impl StoreArgs {
    fn config(&self) -> StoreConfig {
        StoreConfig {
            kind: self.kind.into(),
            metric: match self.metric {
                MetricArg::Ip => Metric::InnerProduct,
                MetricArg::Cos => Metric::Cosine,
            },
            precision: self.dtype.into(),
            hnsw: HnswConfig {
                connectivity: self.connectivity,
                expansion_add: self.expansion_add,
                expansion_search: self.expansion_search,
                expansion_dissimilar: self.expansion_dissimilar,
                rerank: self.rerank,
                i8_scale: None,
            },
        }
    }
}

impl MetadataArgs {
    fn options(&self) -> MetadataCsvOptions {
        MetadataCsvOptions {
            lat_column: self.lat_column.clone(),
            lon_column: self.lon_column.clone(),
            key_column: self.key_column.clone(),
            text_columns: self
                .text_columns
                .as_ref()
                .map(|columns| columns.iter().filter(|c| !c.is_empty()).cloned().collect()),
        }
    }

    fn read(&self) -> anyhow::Result<EntryMetadata> {
        let options = self.options();
        let spinner = spinner(format!("reading {}", self.metadata.display()));
        let metadata = EntryMetadata::from_csv(&self.metadata, &options)?;
        spinner.finish_and_clear();
        Ok(metadata)
    }
}

pub fn run(command: IndexCommand) -> anyhow::Result<()> {
    match command {
        IndexCommand::Build(args) => {
            let sources = EmbeddingParts::gather(&args.embeddings)?;
            if !sources.parts && sources.files.len() == 1 && args.id_column.is_none() {
                let file = &sources.files[0];
                let spinner = spinner(format!("reading {}", file.display()));
                let embeddings = read_embeddings_npy(file)?;
                spinner.finish_and_clear();
                let metadata = args.metadata.read()?;
                return build_and_save(embeddings, metadata, &args.store.config(), &args.output);
            }
            build_streaming(&args, &sources.files)
        }
        IndexCommand::ImportFaiss(args) => import_faiss(args),
        IndexCommand::Search(args) => search(args),
        IndexCommand::Verify(args) => {
            let started = Instant::now();
            let spinner = spinner(format!("verifying {}", args.db.display()));
            let verification = Database::verify(&args.db).with_context(|| {
                format!("the database {} failed verification", args.db.display())
            })?;
            spinner.finish_and_clear();
            eprintln!(
                "{}: {} files, {:.2} GB, every digest matches its manifest (checked in {:.1} s); later opens trust this state until a file changes",
                args.db.display(),
                verification.files,
                verification.bytes as f64 / 1e9,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        IndexCommand::Info(args) => {
            let database = Database::open(&args.db)
                .with_context(|| format!("cannot open the database {}", args.db.display()))?;
            let config = database.config();
            let index = database.index();
            println!("entries:      {}", index.len());
            println!("dimension:    {}", index.dimension());
            println!("store:        {:?}", config.kind);
            println!("metric:       {}", config.metric.short_name());
            if config.kind == StoreKind::Hnsw {
                println!("precision:    {:?}", config.precision);
                println!(
                    "hnsw:         connectivity {}, expansion add {}, expansion search {}, expansion dissimilar {}, rerank {}",
                    config.hnsw.connectivity,
                    config.hnsw.expansion_add,
                    config.hnsw.expansion_search,
                    config.hnsw.expansion_dissimilar,
                    config.hnsw.rerank
                );
                if let Some(scale) = config.hnsw.i8_scale {
                    println!("i8 scale:     {scale}");
                }
            }
            println!(
                "text columns: {}",
                database.metadata().text_columns().join(", ")
            );
            Ok(())
        }
    }
}

fn build_and_save(
    embeddings: Embeddings,
    metadata: EntryMetadata,
    config: &StoreConfig,
    output: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let count = embeddings.len();
    let progress = terminal::progress_bar(
        count as u64,
        "{spinner} adding vectors {bar:30} {pos}/{len} ({per_sec}, {eta} left)",
    );
    let database = Database::build(embeddings, metadata, config, &|added| {
        progress.inc(added as u64)
    })?;
    progress.finish_and_clear();
    let built = started.elapsed().as_secs_f64();
    save_and_report(&database, output, started, built)
}

/// A build from several embeddings files (the parts of a split run) or matched by id,
/// streamed to disk by the library.
fn build_streaming(args: &BuildArgs, files: &[PathBuf]) -> anyhow::Result<()> {
    let config = args.store.config();
    let options = args.metadata.options();
    let summary = g3::index::build_from_embeddings(
        files,
        MetadataSource {
            path: &args.metadata.metadata,
            options: &options,
        },
        args.id_column.as_deref(),
        &config,
        &args.output,
        &terminal::Bars::default(),
    )?;
    if summary.rows_without_embedding > 0 {
        eprintln!(
            "{} metadata rows have no embedding (skipped photos, for example {}); the database leaves them out",
            summary.rows_without_embedding,
            summary.first_without_embedding.unwrap_or_default()
        );
    }
    eprintln!(
        "{} vectors of dimension {} from {} file(s), metric {}: written to {} in {:.1} s",
        summary.vectors,
        summary.dimension,
        files.len(),
        config.metric.short_name(),
        args.output.display(),
        summary.add_seconds
    );
    Ok(())
}

/// Writes `database` to `output` and reports what was built, how fast.
fn save_and_report(
    database: &Database,
    output: &Path,
    started: Instant,
    built: f64,
) -> anyhow::Result<()> {
    let spinner = spinner(format!("writing {}", output.display()));
    database
        .save(output)
        .with_context(|| format!("cannot write the database {}", output.display()))?;
    spinner.finish_and_clear();
    let config = database.config();
    let count = g3::core::VectorStore::len(database);
    let dimension = g3::core::VectorStore::dimension(database);
    let store = store_name(config);
    eprintln!(
        "{count} vectors of dimension {dimension} in {store}, metric {}: built in {built:.1} s, written to {} in {:.1} s",
        config.metric.short_name(),
        output.display(),
        started.elapsed().as_secs_f64() - built
    );
    Ok(())
}

/// `import-faiss`: streamed by the library ([`g3::index::import_faiss_index`]).
fn import_faiss(args: ImportFaissArgs) -> anyhow::Result<()> {
    let config = args.store.config();
    let options = args.metadata.options();
    let summary = g3::index::import_faiss_index(
        &args.faiss,
        MetadataSource {
            path: &args.metadata.metadata,
            options: &options,
        },
        &config,
        &args.output,
        &terminal::Bars::default(),
    )?;
    report_import(&summary, &config, &args.output);
    Ok(())
}

fn search(args: SearchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut database = Database::open(&args.db)
        .with_context(|| format!("cannot open the database {}", args.db.display()))?;
    if let Some(expansion) = args.expansion_search {
        database.set_expansion_search(expansion);
    }
    if let Some(expansion) = args.expansion_dissimilar {
        database.set_expansion_dissimilar(expansion);
    }
    if let Some(candidates) = args.rerank {
        database
            .set_rerank(candidates)
            .with_context(|| format!("cannot re-rank with {}", args.db.display()))?;
    }
    let opened = started.elapsed().as_secs_f64();
    let queries = read_embeddings_npy(&args.queries)?;
    let direction = if args.dissimilar {
        SearchDirection::Dissimilar
    } else {
        SearchDirection::Similar
    };
    let progress = terminal::progress_bar(
        queries.len() as u64,
        "{spinner} searching {bar:30} {pos}/{len} ({per_sec})",
    );
    let searching = Instant::now();
    let mut results = Vec::with_capacity(queries.len());
    const QUERIES_PER_STEP: usize = 1024;
    let dimension = queries.dimension();
    for step in queries.as_slice().chunks(QUERIES_PER_STEP * dimension) {
        let step = Embeddings::new(dimension, step.to_vec())?;
        results.extend(database.search_neighbors(&step, args.k, direction)?);
        progress.inc(step.len() as u64);
    }
    progress.finish_and_clear();
    let searched = searching.elapsed().as_secs_f64();
    write_neighbors_csv(&args.output, &results)?;
    eprintln!(
        "{} queries, k = {}: opened in {opened:.2} s, searched in {searched:.2} s ({:.0} queries/s), written to {}",
        results.len(),
        args.k,
        results.len() as f64 / searched.max(1e-9),
        args.output.display()
    );
    Ok(())
}

fn spinner(message: String) -> ProgressBar {
    terminal::spinner("{spinner} {msg}").with_message(message)
}

//! `g3 index build|search|import-faiss|info`: the image database.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use g3::core::{Embeddings, SearchDirection};
use g3::index::{
    Database, DatabaseWriter, EntryMetadata, FaissFlatReader, FaissMetric, HnswConfig,
    MetadataCsvOptions, MetadataCsvReader, Metric, StoreConfig, StoreKind, VectorPrecision,
};
use g3::{MappedMatrix, read_embeddings_npy, write_neighbors_csv};
use indicatif::ProgressBar;

use crate::{parts, terminal};

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
pub enum KindArg {
    Hnsw,
    Exact,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
    I8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    Ip,
    Cos,
}

impl From<KindArg> for StoreKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Hnsw => StoreKind::Hnsw,
            KindArg::Exact => StoreKind::Exact,
        }
    }
}

impl From<DtypeArg> for VectorPrecision {
    fn from(dtype: DtypeArg) -> Self {
        match dtype {
            DtypeArg::F32 => VectorPrecision::F32,
            DtypeArg::F16 => VectorPrecision::F16,
            DtypeArg::I8 => VectorPrecision::I8,
        }
    }
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
            let sources = parts::gather(&args.embeddings)?;
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

/// Rows added to a streamed build at a time.
const BUILD_CHUNK_ROWS: usize = 1 << 13;

/// A build from several embeddings files (the parts of a split run) or matched by id: the
/// files memory-mapped, the metadata streamed, everything written through a
/// [`DatabaseWriter`], so memory does not grow with the collection (except an HNSW graph's).
fn build_streaming(args: &BuildArgs, files: &[PathBuf]) -> anyhow::Result<()> {
    let started = Instant::now();
    let matrices = files
        .iter()
        .map(|file| MappedMatrix::open(file))
        .collect::<Result<Vec<_>, _>>()?;
    let dimension = matrices[0].columns();
    if let Some(other) = matrices.iter().find(|matrix| matrix.columns() != dimension) {
        anyhow::bail!(
            "{} has {} columns, {} has {dimension}",
            other.path().display(),
            other.columns(),
            matrices[0].path().display()
        );
    }
    let total: usize = matrices.iter().map(MappedMatrix::rows).sum();
    let config = args.store.config();
    let mut csv = MetadataCsvReader::open(&args.metadata.metadata, &args.metadata.options())?;
    let mut writer = DatabaseWriter::create(
        &args.output,
        dimension,
        &config,
        csv.text_columns().to_vec(),
    )
    .with_context(|| format!("cannot write the database {}", args.output.display()))?;
    let progress = terminal::progress_bar(
        total as u64,
        "{spinner} adding vectors {bar:30} {pos}/{len} ({per_sec}, {eta} left)",
    );
    let mut chunk: Vec<f32> = Vec::with_capacity(BUILD_CHUNK_ROWS * dimension);
    let flush = |chunk: &mut Vec<f32>, writer: &mut DatabaseWriter| -> anyhow::Result<()> {
        writer.add_vectors(chunk)?;
        progress.inc((chunk.len() / dimension) as u64);
        chunk.clear();
        // What was read is in the chunk's copy: the mapped pages need not stay resident.
        for matrix in &matrices {
            matrix.release_pages();
        }
        Ok(())
    };
    match &args.id_column {
        None => {
            csv.for_each_entry(|key, location, texts| writer.add_entry(key, location, texts))?;
            if writer.entries_added() != total {
                return Err(g3::index::IndexError::CountMismatch {
                    vectors: total,
                    metadata: writer.entries_added(),
                })
                .context("the embeddings and the metadata must match row for row (or pass --id-column to match them by id)");
            }
            for matrix in &matrices {
                for row in 0..matrix.rows() {
                    chunk.extend_from_slice(matrix.row(row));
                    if chunk.len() == BUILD_CHUNK_ROWS * dimension {
                        flush(&mut chunk, &mut writer)?;
                    }
                }
            }
        }
        Some(id_column) => {
            let id_field = csv
                .text_columns()
                .iter()
                .position(|column| column == id_column)
                .with_context(|| {
                    format!(
                        "--id-column {id_column} is not among the text columns kept ({})",
                        csv.text_columns().join(", ")
                    )
                })?;
            let mut rows_by_id = embedding_ids(&matrices)?;
            let mut without_photo = 0usize;
            let mut first_without = None;
            csv.for_each_entry(|key, location, texts| {
                match rows_by_id.remove(texts[id_field]) {
                    Some((matrix, row)) => {
                        chunk.extend_from_slice(matrices[matrix].row(row));
                        writer.add_entry(key, location, texts)?;
                        if chunk.len() == BUILD_CHUNK_ROWS * dimension {
                            flush(&mut chunk, &mut writer).map_err(|error| {
                                g3::index::IndexError::InvalidConfig(format!("{error:#}"))
                            })?;
                        }
                    }
                    None => {
                        without_photo += 1;
                        first_without.get_or_insert_with(|| texts[id_field].to_owned());
                    }
                }
                Ok(())
            })?;
            if let Some(unmatched) = rows_by_id.keys().next() {
                anyhow::bail!(
                    "{} embedded photos have no metadata row with that {id_column} (for example {unmatched:?}): were the photos embedded from another list?",
                    rows_by_id.len()
                );
            }
            if without_photo > 0 {
                eprintln!(
                    "{without_photo} metadata rows have no embedding (skipped photos, for example {}); the database leaves them out",
                    first_without.unwrap_or_default()
                );
            }
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut writer)?;
    }
    progress.finish_and_clear();
    let count = writer.vectors_added();
    let built = started.elapsed().as_secs_f64();
    writer
        .finish()
        .with_context(|| format!("cannot write the database {}", args.output.display()))?;
    eprintln!(
        "{count} vectors of dimension {dimension} from {} file(s), metric {}: written to {} in {built:.1} s",
        files.len(),
        config.metric.short_name(),
        args.output.display()
    );
    Ok(())
}

/// Each embedding's `(file, row)` by the id its rows CSV gives; an id twice is an error.
fn embedding_ids(
    matrices: &[MappedMatrix],
) -> anyhow::Result<std::collections::HashMap<String, (usize, usize)>> {
    let mut ids = std::collections::HashMap::new();
    for (index, matrix) in matrices.iter().enumerate() {
        let rows_path = matrix.path().with_extension("rows.csv");
        let mut reader = csv::Reader::from_path(&rows_path).with_context(|| {
            format!(
                "--id-column needs the rows CSV that g3 embed-images writes beside {}",
                matrix.path().display()
            )
        })?;
        let id_index = reader
            .headers()?
            .iter()
            .position(|column| column == "id")
            .with_context(|| format!("{} has no id column", rows_path.display()))?;
        let mut count = 0;
        for (row, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("cannot read {}", rows_path.display()))?;
            let id = record[id_index].to_owned();
            if let Some((other, other_row)) = ids.insert(id.clone(), (index, row)) {
                anyhow::bail!(
                    "id {id:?} is embedded twice: row {other_row} of {} and row {row} of {}",
                    matrices[other].path().display(),
                    matrix.path().display()
                );
            }
            count += 1;
        }
        if count != matrix.rows() {
            anyhow::bail!(
                "{} names {count} rows, {} holds {}",
                rows_path.display(),
                matrix.path().display(),
                matrix.rows()
            );
        }
    }
    Ok(ids)
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
    let store = match config.kind {
        StoreKind::Exact => format!(
            "an exact store ({})",
            format!("{:?}", config.precision).to_lowercase()
        ),
        StoreKind::Hnsw => format!(
            "an HNSW store ({})",
            format!("{:?}", config.precision).to_lowercase()
        ),
    };
    eprintln!(
        "{count} vectors of dimension {dimension} in {store}, metric {}: built in {built:.1} s, written to {} in {:.1} s",
        config.metric.short_name(),
        output.display(),
        started.elapsed().as_secs_f64() - built
    );
    Ok(())
}

/// Rows read from the faiss file and added to the store at a time: 8,192 × 2304 floats
/// (75 MB) for G3's index. A reader thread fills the next chunk while the current one is
/// checked, converted and written, so at most three are alive: memory stays near 300 MB
/// whatever the file size, and reading overlaps writing.
const IMPORT_CHUNK_ROWS: usize = 1 << 13;

/// `import-faiss`: see [`import_faiss_index`].
fn import_faiss(args: ImportFaissArgs) -> anyhow::Result<()> {
    import_faiss_index(
        &args.faiss,
        &args.metadata.options(),
        &args.metadata.metadata,
        &args.store.config(),
        &args.output,
    )
}

/// Streams a faiss flat index and its metadata CSV into a database at `output`: the CSV
/// entry by entry, then the vectors a chunk at a time, straight to disk for an exact store
/// (memory: one chunk plus 8 bytes per key, whatever the index size) or into the graph for
/// HNSW (memory: the graph). The database appears at `output` only once complete.
pub fn import_faiss_index(
    faiss: &Path,
    options: &MetadataCsvOptions,
    metadata: &Path,
    config: &StoreConfig,
    output: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut reader = FaissFlatReader::open(faiss)?;
    let (count, dimension) = (reader.len(), reader.dimension());
    let mut csv = MetadataCsvReader::open(metadata, options)?;
    let mut writer = DatabaseWriter::create(output, dimension, config, csv.text_columns().to_vec())
        .with_context(|| format!("cannot write the database {}", output.display()))?;

    let progress = terminal::progress_bar(
        count as u64,
        "{spinner} reading metadata {bar:30} {pos}/{len} rows ({per_sec}, {eta} left)",
    );
    csv.for_each_entry(|key, location, texts| {
        progress.inc(1);
        writer.add_entry(key, location, texts)
    })?;
    progress.finish_and_clear();
    // Checked before the long part: the CSV must describe the index row for row.
    if writer.entries_added() != count {
        return Err(g3::index::IndexError::CountMismatch {
            vectors: count,
            metadata: writer.entries_added(),
        })
        .with_context(|| {
            format!(
                "{} does not describe {} row for row",
                metadata.display(),
                faiss.display()
            )
        });
    }

    let progress = terminal::progress_bar(
        (count * dimension * 4) as u64,
        "{spinner} importing vectors {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    let faiss_path = faiss.display().to_string();
    let mut warn_l2 = reader.metric() == FaissMetric::L2;
    let mut first_row = 0;
    let (chunks, next_chunk) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Owned here, so that an error returning from this closure drops it and a reader
        // blocked on a full channel stops instead of waiting forever.
        let next_chunk = next_chunk;
        scope.spawn(move || {
            loop {
                let chunk = reader.next_rows(IMPORT_CHUNK_ROWS).transpose();
                let last = !matches!(chunk, Some(Ok(_)));
                // A closed channel means the writer failed: stop reading.
                if chunks.send(chunk).is_err() || last {
                    break;
                }
            }
        });
        while let Some(chunk) = next_chunk.recv().ok().flatten() {
            let chunk = chunk?;
            if warn_l2 && !all_unit_length(&chunk, dimension) {
                eprintln!(
                    "warning: {faiss_path} is an IndexFlatL2 whose vectors are not unit length; this database ranks by {}, which orders them differently from L2 distance",
                    config.metric.short_name()
                );
                warn_l2 = false;
            }
            // Store errors count rows within the chunk they were given: say where it starts.
            writer.add_vectors(&chunk).with_context(|| {
                format!(
                    "cannot import {faiss_path}: in the chunk starting at vector {first_row} (the row below counts from there)"
                )
            })?;
            first_row += chunk.len() / dimension;
            progress.inc((chunk.len() * 4) as u64);
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    let imported = started.elapsed().as_secs_f64();
    let spinner = spinner(format!("writing {}", output.display()));
    writer
        .finish()
        .with_context(|| format!("cannot write the database {}", output.display()))?;
    spinner.finish_and_clear();
    let store = format!(
        "{} ({})",
        match config.kind {
            StoreKind::Exact => "an exact store",
            StoreKind::Hnsw => "an HNSW store",
        },
        format!("{:?}", config.precision).to_lowercase()
    );
    eprintln!(
        "{count} vectors of dimension {dimension} in {store}, metric {}: imported in {imported:.1} s, written to {} in {:.1} s",
        config.metric.short_name(),
        output.display(),
        started.elapsed().as_secs_f64() - imported
    );
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

fn all_unit_length(vectors: &[f32], dimension: usize) -> bool {
    vectors.chunks_exact(dimension).all(|row| {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        (norm - 1.0).abs() < 1e-3
    })
}

fn spinner(message: String) -> ProgressBar {
    terminal::spinner("{spinner} {msg}").with_message(message)
}

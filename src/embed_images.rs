//! Embedding a photo set (a folder, a CSV list, tar archives) with an [`ImageEncoder`]:
//! into one `.npy` file, or one shard of a split run into a resumable part that
//! [`EmbeddingParts`] later joins for a database build (`g3 embed-images`).
//!
//! Every output appears only once complete (temporary files renamed into place): the matrix
//! `stem.npy` ([photos, dimension], rows in input order), `stem.rows.csv` (`row,file,id` of
//! each row) and, when photos were skipped, `stem.skipped.csv` (`file,error`). A shard writes
//! its photos a block at a time into `DIR/.part-I-of-N/`, so a killed shard resumes after its
//! last finished block; its manifest `part-I-of-N.json` appears last.
//!
//! ```no_run
//! use std::path::Path;
//! use g3::align::{ImageEmbeddingKind, ModelSpec, ModelOptions};
//! use g3::data::{PhotoSet, WorkShard};
//! use g3::embed_images::{EmbeddingTarget, EmbedImagesOptions, embed_photo_set};
//!
//! let device = g3::align::ComputeDevice::Cpu.to_device()?;
//! let spec = ModelSpec::from_source(
//!     g3::published::resolve_model("openai/clip-vit-large-patch14")?,
//!     ModelOptions::default(),
//!     ImageEmbeddingKind::Clip,
//! )?;
//! let encoder = spec.load(&device)?.image_encoder(ImageEmbeddingKind::Clip, 32)?;
//! let photos = PhotoSet::open(Some(Path::new("photos/")), None, &[])?;
//! let target = EmbeddingTarget::Shard {
//!     directory: "parts/".into(),
//!     shard: WorkShard { index: 0, count: 4 },
//! };
//! let summary = embed_photo_set(&encoder, &photos, &target, &EmbedImagesOptions::default(), &())?;
//! println!("{} rows in {}", summary.rows, summary.output.display());
//! # Ok::<(), g3::Error>(())
//! ```

use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use g3_align::{AlignError, ImageEncoder};
use g3_core::Embeddings;
use g3_core::Progress;
use g3_core::atomic::{AtomicFile, write_atomically};
use g3_core::npy::GrowingEmbeddingFile;
use g3_data::{PartHeader, PartManifest, PartSet, PhotoSet, WorkShard};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a photo set is embedded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbedImagesOptions {
    /// Photos per forward pass of the encoder.
    pub batch: usize,
    /// List photos that cannot be read or decoded in the skipped CSV and go on, instead of
    /// stopping at the first.
    pub skip_bad: bool,
    /// Photos per block of a shard: the unit a restarted shard skips when finished.
    pub block_photos: usize,
    /// The model's name as the user gave it, recorded in a part's manifest so that parts of
    /// different models are never joined.
    pub model: String,
    /// Which embedding (`clip`, `database`, `gps`, `geoclip`), recorded the same way.
    pub kind: String,
}

impl Default for EmbedImagesOptions {
    fn default() -> Self {
        EmbedImagesOptions {
            batch: 32,
            skip_bad: false,
            block_photos: 4096,
            model: String::new(),
            kind: String::new(),
        }
    }
}

/// Where the embeddings go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingTarget {
    /// Every photo into one `.npy` file (with its `rows.csv` and `skipped.csv` beside).
    File(PathBuf),
    /// One shard of a split run into `directory/part-I-of-N.*`, resumable.
    Shard {
        /// The directory every shard writes into.
        directory: PathBuf,
        /// Which shard.
        shard: WorkShard,
    },
}

/// What an embedding run did.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSummary {
    /// The `.npy` file written (or found complete).
    pub output: PathBuf,
    /// Rows written: photos embedded.
    pub rows: usize,
    /// The embedding's dimension.
    pub dimension: usize,
    /// Photos skipped (listed in [`skipped_list`](Self::skipped_list)).
    pub skipped: usize,
    /// The CSV listing skipped photos (written only when some were skipped).
    pub skipped_list: PathBuf,
    /// Seconds the run took.
    pub seconds: f64,
    /// The part was already complete: nothing was done.
    pub already_complete: bool,
    /// Blocks of an interrupted shard that were found finished and not redone.
    pub resumed_blocks: usize,
    /// Blocks of the shard in all.
    pub blocks: usize,
    /// Where the run's time went (zero for parts already complete).
    pub stages: StageSeconds,
}

/// Where an embedding run's time went, stage by stage, in wall-clock seconds. Reading and
/// preprocessing (on every core) overlap with the model, so the model's share of the run is
/// what a faster device can shorten: when `waiting_for_photos` is large, decoding is the
/// bottleneck, not the model.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StageSeconds {
    /// Reading and preprocessing photos (decoding, resizing, normalising) on the worker
    /// threads, a chunk at a time ahead of the model.
    pub reading_photos: f64,
    /// The encoder's forward passes, host-to-device copies and read-back included.
    pub model: f64,
    /// The part of `model` spent on the first chunk of photos, which on a GPU includes
    /// compiling and tuning the kernels for the batch's shapes (tens of seconds for ViT-L/14
    /// on an H200 machine, once per process).
    pub first_chunk: f64,
    /// The model's thread waiting for the next chunk of preprocessed photos.
    pub waiting_for_photos: f64,
    /// Gathering pixels into batches and appending rows to the outputs.
    pub writing: f64,
}

impl StageSeconds {
    /// The share of `total` seconds the model was busy.
    pub fn model_share(&self, total: f64) -> f64 {
        self.model / total.max(1e-9)
    }
}

impl std::ops::AddAssign for StageSeconds {
    fn add_assign(&mut self, other: Self) {
        self.reading_photos += other.reading_photos;
        self.model += other.model;
        if self.first_chunk == 0.0 {
            self.first_chunk = other.first_chunk;
        }
        self.waiting_for_photos += other.waiting_for_photos;
        self.writing += other.writing;
    }
}

/// What a finished embedding part records: enough to join parts safely and to name a
/// missing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingPartManifest {
    /// Which part of which run ([`EMBEDDING_PART_FORMAT`]; inputs fingerprinted by
    /// [`PhotoSet::fingerprint`]).
    #[serde(flatten)]
    pub header: PartHeader,
    /// Photos in the whole input.
    pub photos: usize,
    /// Rows written (photos minus skipped ones).
    pub rows: usize,
    /// Photos skipped.
    pub skipped: usize,
    /// The embedding's dimension.
    pub dimension: usize,
    /// Which embedding.
    pub kind: String,
}

/// The format of an embedding part's manifest.
pub const EMBEDDING_PART_FORMAT: &str = "g3-embedding-part v1";

impl PartManifest for EmbeddingPartManifest {
    const FORMAT: &'static str = EMBEDDING_PART_FORMAT;
    const NOUN: &'static str = "parts";
    const RUN_FIELDS: &'static str = "shard count, inputs, model or kind";

    fn header(&self) -> &PartHeader {
        &self.header
    }

    fn same_contents(&self, other: &Self) -> bool {
        self.dimension == other.dimension && self.kind == other.kind
    }

    fn how_to_make(shards: usize) -> String {
        format!(
            "Run `g3 embed-images` with the same inputs and `--shard I/{shards}` for each (a shard reruns alone; a killed one resumes)"
        )
    }
}

/// Embeds `photos` with `encoder` into `target`.
pub fn embed_photo_set(
    encoder: &ImageEncoder,
    photos: &PhotoSet,
    target: &EmbeddingTarget,
    options: &EmbedImagesOptions,
    progress: &dyn Progress,
) -> Result<EmbeddingSummary> {
    if options.batch == 0 || options.block_photos == 0 {
        return Err(Error::InvalidInput(
            "the batch and the block size must be at least 1".into(),
        ));
    }
    if photos.is_empty() {
        return Err(Error::InvalidInput("no images to embed".into()));
    }
    match target {
        EmbeddingTarget::File(path) => embed_to_file(encoder, photos, path, options, progress),
        EmbeddingTarget::Shard { directory, shard } => {
            embed_shard(encoder, photos, directory, *shard, options, progress)
        }
    }
}

/// The photos of one chunk, read and preprocessed: (position, pixels or why not).
type PreparedChunk = Vec<(usize, std::result::Result<Vec<f32>, AlignError>)>;

fn prepare(encoder: &ImageEncoder, photos: &PhotoSet, positions: Range<usize>) -> PreparedChunk {
    positions
        .into_par_iter()
        .map(|position| {
            let pixels = photos
                .read(position)
                .map_err(|error| AlignError::ImageDecode {
                    name: photos.location(position),
                    reason: error.to_string(),
                })
                .and_then(|image| encoder.processor().preprocess(image.encoded(), image.id()));
            (position, pixels)
        })
        .collect()
}

/// Embeds the photos at `positions` into `output`, reading and preprocessing the next chunk
/// on all cores while the model runs on this one; returns where the time went.
fn embed_positions(
    encoder: &ImageEncoder,
    photos: &PhotoSet,
    positions: Range<usize>,
    options: &EmbedImagesOptions,
    progress: &dyn Progress,
    output: &mut EmbeddingOutput,
) -> Result<StageSeconds> {
    let chunk_size = (options.batch * 4).max(64);
    let mut stages = StageSeconds::default();
    std::thread::scope(|scope| -> Result<()> {
        let (sender, receiver) = sync_channel::<PreparedChunk>(1);
        let chunk_starts = positions.clone().step_by(chunk_size);
        let reader = scope.spawn(move || {
            let mut reading = 0.0;
            for start in chunk_starts {
                let end = (start + chunk_size).min(positions.end);
                let started = Instant::now();
                let chunk = prepare(encoder, photos, start..end);
                reading += started.elapsed().as_secs_f64();
                if sender.send(chunk).is_err() {
                    break;
                }
            }
            reading
        });
        loop {
            let waiting = Instant::now();
            let Ok(prepared) = receiver.recv() else { break };
            stages.waiting_for_photos += waiting.elapsed().as_secs_f64();
            let gathering = Instant::now();
            let mut pixels =
                Vec::with_capacity(prepared.len() * encoder.processor().values_per_image());
            let mut embedded = Vec::with_capacity(prepared.len());
            for (position, result) in prepared {
                match result {
                    Ok(values) => {
                        pixels.extend(values);
                        embedded.push(position);
                    }
                    Err(error) if options.skip_bad => {
                        output.skip(&photos.location(position), &error.to_string())?;
                        progress.advance(1);
                    }
                    Err(source) => {
                        return Err(Error::UnreadablePhoto {
                            source: Box::new(source),
                        });
                    }
                }
            }
            stages.writing += gathering.elapsed().as_secs_f64();
            if embedded.is_empty() {
                continue;
            }
            let running = Instant::now();
            let embeddings = encoder.embed_pixels(&pixels, embedded.len())?;
            let seconds = running.elapsed().as_secs_f64();
            if stages.model == 0.0 {
                stages.first_chunk = seconds;
            }
            stages.model += seconds;
            let writing = Instant::now();
            let rows: Vec<(String, &str)> = embedded
                .iter()
                .map(|&position| (photos.location(position), photos.id(position)))
                .collect();
            output.append(
                &embeddings,
                rows.iter().map(|(file, id)| (file.as_str(), *id)),
            )?;
            stages.writing += writing.elapsed().as_secs_f64();
            progress.advance(embedded.len() as u64);
        }
        drop(receiver);
        stages.reading_photos = match reader.join() {
            Ok(seconds) => seconds,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok(())
    })?;
    Ok(stages)
}

/// A CSV beside the output, written to a temporary file and renamed into place at the end.
struct SidecarCsv {
    path: PathBuf,
    file: BufWriter<AtomicFile>,
}

impl SidecarCsv {
    fn create(path: PathBuf, header: &str) -> Result<Self> {
        let mut sidecar = SidecarCsv {
            file: BufWriter::new(AtomicFile::create(&path)?),
            path,
        };
        sidecar.line(header)?;
        Ok(sidecar)
    }

    fn line(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn row(&mut self, fields: &[&str]) -> Result<()> {
        let quoted: Vec<String> = fields
            .iter()
            .map(|field| g3_core::table::csv_field(field).into_owned())
            .collect();
        self.line(&quoted.join(","))
    }

    fn commit(self) -> Result<()> {
        let path = self.path;
        let file = self.file.into_inner().map_err(|error| Error::Io {
            path,
            source: error.into_error(),
        })?;
        Ok(file.commit()?)
    }
}

const ROWS_HEADER: &str = "row,file,id";
const SKIPPED_HEADER: &str = "file,error";

/// An embeddings file with its rows and skipped sidecars, all appearing only on commit.
struct EmbeddingOutput {
    matrix: GrowingEmbeddingFile,
    rows: SidecarCsv,
    skipped: SidecarCsv,
    skipped_count: usize,
}

impl EmbeddingOutput {
    /// `stem.npy`, `stem.rows.csv` and `stem.skipped.csv`.
    fn create(npy: &Path, dimension: usize) -> Result<Self> {
        Ok(EmbeddingOutput {
            matrix: GrowingEmbeddingFile::create(npy, dimension)?,
            rows: SidecarCsv::create(sidecar(npy, "rows.csv"), ROWS_HEADER)?,
            skipped: SidecarCsv::create(sidecar(npy, "skipped.csv"), SKIPPED_HEADER)?,
            skipped_count: 0,
        })
    }

    /// Appends `embeddings`, one row per `(file, id)`.
    fn append<'a>(
        &mut self,
        embeddings: &Embeddings,
        rows: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        let first_row = self.matrix.rows();
        for (offset, (file, id)) in rows.enumerate() {
            self.rows
                .row(&[&(first_row + offset).to_string(), file, id])?;
        }
        self.matrix.write(embeddings)?;
        Ok(())
    }

    fn skip(&mut self, file: &str, error: &str) -> Result<()> {
        self.skipped_count += 1;
        self.skipped.row(&[file, error])
    }

    /// Commits the matrix, then the skipped list only when something was skipped, then the
    /// rows CSV last (a block's completion marker); returns (rows written, skipped).
    fn commit(self) -> Result<(usize, usize)> {
        let written = self.matrix.rows();
        self.matrix.finish()?;
        if self.skipped_count > 0 {
            self.skipped.commit()?;
        }
        self.rows.commit()?;
        Ok((written, self.skipped_count))
    }
}

/// `output` with `suffix` in place of its extension (`emb.npy` → `emb.rows.csv`).
pub fn sidecar(output: &Path, suffix: &str) -> PathBuf {
    output.with_extension(suffix)
}

/// Every photo into one `.npy` file.
fn embed_to_file(
    encoder: &ImageEncoder,
    photos: &PhotoSet,
    path: &Path,
    options: &EmbedImagesOptions,
    progress: &dyn Progress,
) -> Result<EmbeddingSummary> {
    let dimension = encoder.dimension();
    let mut output = EmbeddingOutput::create(path, dimension)?;
    progress.start("embedding", "images", Some(photos.len() as u64));
    let started = Instant::now();
    let stages = embed_positions(
        encoder,
        photos,
        0..photos.len(),
        options,
        progress,
        &mut output,
    )?;
    if output.matrix.rows() == 0 {
        return Err(Error::InvalidInput(format!(
            "no image could be embedded (all {} were skipped)",
            photos.len()
        )));
    }
    let (rows, skipped) = output.commit()?;
    progress.finish();
    Ok(EmbeddingSummary {
        output: path.to_owned(),
        rows,
        dimension,
        skipped,
        skipped_list: sidecar(path, "skipped.csv"),
        seconds: started.elapsed().as_secs_f64(),
        already_complete: false,
        resumed_blocks: 0,
        blocks: 1,
        stages,
    })
}

/// One shard's photos into `directory/part-I-of-N.*`, a block at a time: each finished block
/// is kept in `directory/.part-I-of-N/`, so a killed shard resumes after its last finished
/// block; the part appears (its manifest last) once every block is done.
fn embed_shard(
    encoder: &ImageEncoder,
    photos: &PhotoSet,
    directory: &Path,
    shard: WorkShard,
    options: &EmbedImagesOptions,
    progress: &dyn Progress,
) -> Result<EmbeddingSummary> {
    std::fs::create_dir_all(directory).map_err(|source| Error::Io {
        path: directory.to_owned(),
        source,
    })?;
    let name = shard.part_name();
    let manifest_path = directory.join(format!("{name}.json"));
    let part = directory.join(format!("{name}.npy"));
    let range = shard.range(photos.len());
    let dimension = encoder.dimension();
    let expected = EmbeddingPartManifest {
        header: PartHeader::new(
            EMBEDDING_PART_FORMAT,
            shard,
            photos.fingerprint(),
            photos.len(),
            options.model.clone(),
        ),
        photos: photos.len(),
        rows: 0,
        skipped: 0,
        dimension,
        kind: options.kind.clone(),
    };
    let started = Instant::now();
    if manifest_path.exists() {
        let done = PartSet::<EmbeddingPartManifest>::read_manifest(&manifest_path)?;
        if (EmbeddingPartManifest {
            rows: 0,
            skipped: 0,
            ..done.clone()
        }) == expected
        {
            progress.notice(&format!(
                "{name} is already complete ({} rows): nothing to do",
                done.rows
            ));
            return Ok(EmbeddingSummary {
                output: part.clone(),
                rows: done.rows,
                dimension,
                skipped: done.skipped,
                skipped_list: sidecar(&part, "skipped.csv"),
                seconds: started.elapsed().as_secs_f64(),
                already_complete: true,
                resumed_blocks: 0,
                blocks: 0,
                stages: StageSeconds::default(),
            });
        }
        return Err(Error::InvalidInput(format!(
            "{} was written for other inputs or another model; delete it (and {name}.*) to embed this shard again",
            manifest_path.display()
        )));
    }
    // The blocks of an unfinished run, kept only if they were made from the same inputs.
    let blocks = directory.join(format!(".{name}"));
    let started_path = blocks.join("started.json");
    let started_record = serde_json::to_vec_pretty(&(&expected, options.block_photos))
        .expect("a manifest serializes");
    match std::fs::read(&started_path) {
        Ok(recorded) if recorded == started_record => {}
        Ok(_) => {
            return Err(Error::InvalidInput(format!(
                "{} holds an unfinished run of other inputs, another model or block size; delete it to start this shard afresh",
                blocks.display()
            )));
        }
        Err(_) => {
            std::fs::create_dir_all(&blocks).map_err(|source| Error::Io {
                path: blocks.clone(),
                source,
            })?;
            write_atomically(&started_path, &started_record)?;
        }
    }
    progress.start("embedding", "images", Some(range.len() as u64));
    let block_starts: Vec<usize> = range.clone().step_by(options.block_photos).collect();
    let mut resumed = 0;
    let mut stages = StageSeconds::default();
    for (block, &start) in block_starts.iter().enumerate() {
        let end = (start + options.block_photos).min(range.end);
        let npy = blocks.join(format!("block-{block}.npy"));
        // The rows CSV is committed last: its presence marks a finished block.
        if sidecar(&npy, "rows.csv").is_file() {
            progress.advance((end - start) as u64);
            resumed += 1;
            continue;
        }
        let mut output = EmbeddingOutput::create(&npy, dimension)?;
        stages += embed_positions(encoder, photos, start..end, options, progress, &mut output)?;
        output.commit()?;
    }
    progress.finish();
    if resumed > 0 {
        progress.notice(&format!(
            "resumed {name}: {resumed} of {} blocks were already done",
            block_starts.len()
        ));
    }

    // The blocks joined into the part.
    let mut output = EmbeddingOutput::create(&part, dimension)?;
    for block in 0..block_starts.len() {
        let npy = blocks.join(format!("block-{block}.npy"));
        let rows = read_rows_csv(&sidecar(&npy, "rows.csv"))?;
        if !rows.is_empty() {
            let embeddings = g3_core::npy::read_embeddings_npy(&npy)?;
            output.append(
                &embeddings,
                rows.iter().map(|(file, id)| (file.as_str(), id.as_str())),
            )?;
        }
        let skipped = sidecar(&npy, "skipped.csv");
        if skipped.is_file() {
            for (file, error) in read_two_columns(&skipped, 0, 1)? {
                output.skip(&file, &error)?;
            }
        }
    }
    let (rows, skipped) = output.commit()?;
    let manifest = EmbeddingPartManifest {
        rows,
        skipped,
        ..expected
    };
    write_atomically(
        &manifest_path,
        &serde_json::to_vec_pretty(&manifest).expect("a manifest serializes"),
    )?;
    std::fs::remove_dir_all(&blocks).map_err(|source| Error::Io {
        path: blocks.clone(),
        source,
    })?;
    Ok(EmbeddingSummary {
        output: part.clone(),
        rows,
        dimension,
        skipped,
        skipped_list: sidecar(&part, "skipped.csv"),
        seconds: started.elapsed().as_secs_f64(),
        already_complete: false,
        resumed_blocks: resumed,
        blocks: block_starts.len(),
        stages,
    })
}

/// The `(file, id)` of each row of a rows CSV.
fn read_rows_csv(path: &Path) -> Result<Vec<(String, String)>> {
    read_two_columns(path, 1, 2)
}

/// Two columns of every record of a CSV with a header.
fn read_two_columns(path: &Path, first: usize, second: usize) -> Result<Vec<(String, String)>> {
    let csv_error = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    reader
        .records()
        .map(|record| {
            let record = record.map_err(csv_error)?;
            Ok((
                record.get(first).unwrap_or_default().to_owned(),
                record.get(second).unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The embeddings files a database build reads, in order: plain `.npy` files, or the parts
/// of one split run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingParts {
    /// The `.npy` files, in order (shard order for parts).
    pub files: Vec<PathBuf>,
    /// Whether they are the parts of one split run (each with its `rows.csv`).
    pub parts: bool,
}

impl EmbeddingParts {
    /// The `.npy` files named by `paths`: plain files as given, or parts
    /// (`part-I-of-N.npy` beside its `part-I-of-N.json`, or a directory holding them),
    /// checked to cover the inputs exactly once. A missing, repeated or foreign part is an
    /// error naming it and how to make it.
    pub fn gather(paths: &[PathBuf]) -> Result<Self> {
        let mut manifests: Vec<(PathBuf, EmbeddingPartManifest)> = Vec::new();
        let mut plain = Vec::new();
        for path in paths {
            if path.is_dir() {
                let found = PartSet::<EmbeddingPartManifest>::manifests_in(path)?;
                if found.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "{} holds no finished part (part-I-of-N.json): run `g3 embed-images --shard I/N --output {}` for each shard",
                        path.display(),
                        path.display()
                    )));
                }
                manifests.extend(found);
            } else if is_part_npy(path) && path.with_extension("json").is_file() {
                let manifest_path = path.with_extension("json");
                let manifest = PartSet::read_manifest(&manifest_path)?;
                manifests.push((manifest_path, manifest));
            } else {
                plain.push(path.clone());
            }
        }
        if manifests.is_empty() {
            return Ok(EmbeddingParts {
                files: plain,
                parts: false,
            });
        }
        if let Some(file) = plain.first() {
            return Err(Error::InvalidInput(format!(
                "{} is not a part of a split run, but other inputs are: give the parts only",
                file.display()
            )));
        }
        let set = PartSet::join(manifests, None)?;
        let mut files = Vec::with_capacity(set.shards());
        for (manifest, _) in set.parts() {
            let npy = manifest.with_extension("npy");
            if !npy.is_file() {
                return Err(Error::InvalidInput(format!(
                    "{} is missing beside its manifest",
                    npy.display()
                )));
            }
            files.push(npy);
        }
        Ok(EmbeddingParts { files, parts: true })
    }
}

fn is_part_npy(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("part-") && name.ends_with(".npy"))
}

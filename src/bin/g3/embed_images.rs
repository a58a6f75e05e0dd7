//! `g3 embed-images`: CLIP, G3 or GeoCLIP embeddings of a folder or list of photos, as `.npy`.

use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::common::{csv_field, resolve_model};
use crate::terminal;
use g3::GrowingEmbeddingFile;
use g3::align::{
    AlignError, ClipFiles, ComputeDevice, Device, ImageEmbeddingKind, ImageEncoder, ModelOptions,
    ModelSpec, Precision,
};
use g3::core::Embeddings;
use g3::core::atomic::AtomicFile;
use g3::data::{PhotoSet, WorkShard};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Args)]
pub struct EmbedImagesArgs {
    /// The model: an HF CLIP directory (config.json, model.safetensors or pytorch_model.bin,
    /// preprocessor_config.json), an HF repo id found in the local HF cache
    /// (openai/clip-vit-large-patch14), or a G3 checkpoint (g3.pth).
    #[arg(long, value_name = "DIR_OR_PTH")]
    model: String,

    /// CLIP's towers for a Geo-alignment checkpoint from `g3 train` given as --model (which
    /// holds only the heads, the GPS encoder and the temperatures): an HF CLIP directory or
    /// repo id, as G3 starts from openai/clip-vit-large-patch14.
    #[arg(long, value_name = "DIR_OR_REPO")]
    clip_model: Option<String>,

    /// CLIP architecture of a G3 checkpoint (an HF config.json); default: ViT-L/14, as G3.
    #[arg(long, value_name = "config.json")]
    clip_config: Option<PathBuf>,

    /// Preprocessing of a G3 checkpoint (an HF preprocessor_config.json); default: OpenAI
    /// CLIP's.
    #[arg(long, value_name = "preprocessor_config.json")]
    preprocessor_config: Option<PathBuf>,

    /// GeoCLIP's image MLP for --kind geoclip; default: the geoclip wheel's, from the asset
    /// cache (scripts/fetch-assets.sh).
    #[arg(long, value_name = "PTH")]
    geoclip_mlp: Option<PathBuf>,

    /// A directory (its image files in file-name order) or a CSV with a `path`, `IMG_ID` or
    /// `file` column. With --archive, a CSV of the ids to take from the archives, in its
    /// order (default: every image member, in archive order).
    #[arg(
        long,
        value_name = "DIR|list.csv",
        required_unless_present = "archives"
    )]
    input: Option<PathBuf>,

    /// A tar archive of photos (MP16-Pro's `mp-16-images.tar`, or WebDataset-style shards;
    /// repeat for several), read in place: a member `a/b/IMG_ID` has the id `IMG_ID`. Its index
    /// is built once and saved beside the first archive.
    #[arg(long = "archive", value_name = "A.tar")]
    archives: Vec<PathBuf>,

    /// Directory that relative paths of a CSV input are relative to (default: the CSV's).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Output: float32 .npy [images, dimension], L2-normalised rows in input order. A sidecar
    /// OUTPUT.rows.csv names the file and id of each row. For a shard, a directory that
    /// receives part-I-of-N.npy, its rows and skipped CSVs and part-I-of-N.json.
    #[arg(long, value_name = "emb.npy|DIR")]
    output: PathBuf,

    /// Which embedding: clip (CLIP image feature), database (G3's 2304-d vector), gps (G3's
    /// image-GPS embedding), geoclip (GeoCLIP's 512-d image embedding).
    #[arg(long, value_enum)]
    kind: KindArg,

    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,

    /// Where the model runs: cpu, flex (build with --features flex) or wgpu (build with
    /// --features wgpu).
    #[arg(long, default_value_t = ComputeDevice::Cpu)]
    device: ComputeDevice,

    /// Floating-point format of the model: f32, or f16/bf16 on a GPU (half the memory
    /// traffic; tensor cores with --features vulkan). The CPU computes in f32.
    #[arg(long, default_value_t = Precision::F32)]
    precision: Precision,

    /// Skip images that cannot be read or decoded, listing them in OUTPUT.skipped.csv,
    /// instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,

    /// Embed only shard I of N (from 0): the photos at positions [I·n/N, (I+1)·n/N) of the
    /// input order, written as OUTPUT/part-I-of-N.* and resumable. Without it, a Slurm job
    /// array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX, with --shards) gives the shard; else all photos go to one file.
    #[arg(long, value_name = "I/N", value_parser = WorkShard::parse)]
    shard: Option<WorkShard>,

    /// The number of shards when the scheduler gives only the index (a Kubernetes Indexed
    /// Job's completions), or to override SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,

    /// Photos per block of a shard: the unit a restarted shard skips when finished.
    #[arg(long, default_value_t = 4096, hide = true)]
    block_photos: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Clip,
    Database,
    Gps,
    Geoclip,
}

fn load_encoder(args: &EmbedImagesArgs, device: &Device) -> anyhow::Result<ImageEncoder> {
    let kind = match args.kind {
        KindArg::Clip => ImageEmbeddingKind::Clip,
        KindArg::Database => ImageEmbeddingKind::Database,
        KindArg::Gps => ImageEmbeddingKind::Gps,
        KindArg::Geoclip => ImageEmbeddingKind::GeoClip,
    };
    let options = ModelOptions {
        aligned_clip: args.clip_model.as_deref().map(resolve_model).transpose()?,
        clip_files: ClipFiles {
            config: args.clip_config.clone(),
            preprocessor: args.preprocessor_config.clone(),
            tokenizer: None,
        },
        geoclip_image_mlp: args.geoclip_mlp.clone(),
    };
    let spec = ModelSpec::from_source(resolve_model(&args.model)?, options, kind)?;
    let model = spec
        .load(device)
        .with_context(|| format!("cannot load {spec}"))?;
    Ok(model
        .image_encoder(kind, args.batch)?
        .with_precision(args.precision)?)
}

/// The photos of one chunk, read and preprocessed: (position, pixels or why not).
type PreparedChunk = Vec<(usize, Result<Vec<f32>, AlignError>)>;

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

/// What one run of [`embed_positions`] reports, chunk by chunk.
trait EmbeddingSink {
    /// Embeddings of the photos at `positions`, in order.
    fn embedded(&mut self, embeddings: &Embeddings, positions: &[usize]) -> anyhow::Result<()>;
    /// A photo that could not be read or decoded (only with --skip-bad).
    fn skipped(&mut self, position: usize, error: &str) -> anyhow::Result<()>;
}

/// Embeds the photos at `positions`, reading and preprocessing the next chunk on all cores
/// while the model runs on this one.
fn embed_positions(
    encoder: &ImageEncoder,
    photos: &PhotoSet,
    positions: Range<usize>,
    batch: usize,
    skip_bad: bool,
    progress: &indicatif::ProgressBar,
    sink: &mut dyn EmbeddingSink,
) -> anyhow::Result<()> {
    let chunk_size = (batch * 4).max(64);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (sender, receiver) = sync_channel::<PreparedChunk>(1);
        let chunk_starts = positions.clone().step_by(chunk_size);
        scope.spawn(move || {
            for start in chunk_starts {
                let end = (start + chunk_size).min(positions.end);
                if sender.send(prepare(encoder, photos, start..end)).is_err() {
                    break;
                }
            }
        });
        for prepared in receiver {
            let mut pixels =
                Vec::with_capacity(prepared.len() * encoder.processor().values_per_image());
            let mut embedded = Vec::with_capacity(prepared.len());
            for (position, result) in prepared {
                match result {
                    Ok(values) => {
                        pixels.extend(values);
                        embedded.push(position);
                    }
                    Err(error) if skip_bad => {
                        sink.skipped(position, &error.to_string())?;
                        progress.inc(1);
                    }
                    Err(error) => {
                        return Err(anyhow::Error::new(error)
                            .context("stopping (pass --skip-bad to skip undecodable images)"));
                    }
                }
            }
            if embedded.is_empty() {
                continue;
            }
            let embeddings = encoder.embed_pixels(&pixels, embedded.len())?;
            sink.embedded(&embeddings, &embedded)?;
            progress.inc(embedded.len() as u64);
        }
        Ok(())
    })
}

/// A CSV beside the output, written to a temporary file and renamed into place at the end.
struct SidecarCsv {
    file: BufWriter<AtomicFile>,
}

impl SidecarCsv {
    fn create(path: PathBuf, header: &str) -> anyhow::Result<Self> {
        let mut file = BufWriter::new(AtomicFile::create(&path)?);
        writeln!(file, "{header}").with_context(|| format!("cannot write {}", path.display()))?;
        Ok(SidecarCsv { file })
    }

    fn row(&mut self, fields: &[&str]) -> anyhow::Result<()> {
        let quoted: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        writeln!(self.file, "{}", quoted.join(","))?;
        Ok(())
    }

    fn commit(self) -> anyhow::Result<()> {
        let file = self.file.into_inner().map_err(|error| error.into_error())?;
        file.commit()?;
        Ok(())
    }
}

const ROWS_HEADER: &str = "row,file,id";
const SKIPPED_HEADER: &str = "file,error";

/// An embeddings file with its rows and skipped sidecars, all appearing only on commit.
struct EmbeddingOutput<'a> {
    photos: &'a PhotoSet,
    matrix: GrowingEmbeddingFile,
    rows: SidecarCsv,
    skipped: SidecarCsv,
    skipped_count: usize,
}

impl<'a> EmbeddingOutput<'a> {
    /// `stem.npy`, `stem.rows.csv` and `stem.skipped.csv`.
    fn create(photos: &'a PhotoSet, npy: &Path, dimension: usize) -> anyhow::Result<Self> {
        Ok(EmbeddingOutput {
            photos,
            matrix: GrowingEmbeddingFile::create(npy, dimension)?,
            rows: SidecarCsv::create(sidecar(npy, "rows.csv"), ROWS_HEADER)?,
            skipped: SidecarCsv::create(sidecar(npy, "skipped.csv"), SKIPPED_HEADER)?,
            skipped_count: 0,
        })
    }

    /// Commits the rows and the matrix, then the skipped list only when something was
    /// skipped (the rows CSV is written last by callers that need a completion marker).
    fn commit(self) -> anyhow::Result<(usize, usize)> {
        let written = self.matrix.rows();
        self.matrix.finish()?;
        if self.skipped_count > 0 {
            self.skipped.commit()?;
        }
        self.rows.commit()?;
        Ok((written, self.skipped_count))
    }
}

impl EmbeddingSink for EmbeddingOutput<'_> {
    fn embedded(&mut self, embeddings: &Embeddings, positions: &[usize]) -> anyhow::Result<()> {
        let first_row = self.matrix.rows();
        for (offset, &position) in positions.iter().enumerate() {
            self.rows.row(&[
                &(first_row + offset).to_string(),
                &self.photos.location(position),
                self.photos.id(position),
            ])?;
        }
        self.matrix.write(embeddings)?;
        Ok(())
    }

    fn skipped(&mut self, position: usize, error: &str) -> anyhow::Result<()> {
        self.skipped_count += 1;
        self.skipped.row(&[&self.photos.location(position), error])
    }
}

fn sidecar(output: &Path, suffix: &str) -> PathBuf {
    output.with_extension(suffix)
}

/// What a finished part records: enough to join parts safely and to name a missing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    pub format: String,
    pub shard: usize,
    pub shards: usize,
    /// The fingerprint of the inputs' ids, in order ([`PhotoSet::fingerprint`]).
    pub inputs: String,
    /// Photos in the whole input, and this part's positions among them.
    pub photos: usize,
    pub first: usize,
    pub end: usize,
    /// Rows written (photos minus skipped ones).
    pub rows: usize,
    pub skipped: usize,
    pub dimension: usize,
    pub kind: String,
    pub model: String,
}

pub const PART_FORMAT: &str = "g3-embedding-part v1";

pub fn run(args: EmbedImagesArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.block_photos == 0 {
        bail!("--batch and the block size must be at least 1");
    }
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => WorkShard::from_environment(args.shards).map_err(anyhow::Error::msg)?,
    };
    let device = args.device.to_device()?;
    let spinner = terminal::spinner("{spinner} {msg} ({elapsed})");
    spinner.set_message("listing the photos (an archive is indexed once)");
    let photos = PhotoSet::open(args.input.as_deref(), args.root.as_deref(), &args.archives);
    spinner.finish_and_clear();
    let photos = photos?;
    if photos.is_empty() {
        bail!("no images to embed");
    }
    let encoder = load_encoder(&args, &device)?;
    match shard {
        None => embed_to_file(&args, &encoder, &photos),
        Some(shard) => embed_shard(&args, &encoder, &photos, shard),
    }
}

/// Every photo into one `.npy` file.
fn embed_to_file(
    args: &EmbedImagesArgs,
    encoder: &ImageEncoder,
    photos: &PhotoSet,
) -> anyhow::Result<()> {
    let dimension = encoder.dimension();
    let mut output = EmbeddingOutput::create(photos, &args.output, dimension)?;
    let progress = terminal::progress_bar(
        photos.len() as u64,
        "{spinner} embedding {bar:40} {pos}/{len} images ({per_sec}, {eta})",
    );
    let started = Instant::now();
    embed_positions(
        encoder,
        photos,
        0..photos.len(),
        args.batch,
        args.skip_bad,
        &progress,
        &mut output,
    )?;
    if output.matrix.rows() == 0 {
        bail!(
            "no image could be embedded (all {} were skipped)",
            photos.len()
        );
    }
    let (written, skipped) = output.commit()?;
    progress.finish_and_clear();
    report(
        &args.output,
        written,
        dimension,
        skipped,
        started,
        &sidecar(&args.output, "skipped.csv"),
    );
    Ok(())
}

/// One shard's photos into `OUTPUT/part-I-of-N.*`, a block at a time: each finished block is
/// kept in `OUTPUT/.part-I-of-N/`, so a killed shard resumes after its last finished block;
/// the part appears (its manifest last) once every block is done.
fn embed_shard(
    args: &EmbedImagesArgs,
    encoder: &ImageEncoder,
    photos: &PhotoSet,
    shard: WorkShard,
) -> anyhow::Result<()> {
    let directory = &args.output;
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create the output directory {}", directory.display()))?;
    let name = shard.part_name();
    let manifest_path = directory.join(format!("{name}.json"));
    let range = shard.range(photos.len());
    let dimension = encoder.dimension();
    let expected = PartManifest {
        format: PART_FORMAT.into(),
        shard: shard.index,
        shards: shard.count,
        inputs: photos.fingerprint(),
        photos: photos.len(),
        first: range.start,
        end: range.end,
        rows: 0,
        skipped: 0,
        dimension,
        kind: format!("{:?}", args.kind).to_lowercase(),
        model: args.model.clone(),
    };
    if let Ok(text) = std::fs::read(&manifest_path) {
        let done: PartManifest = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a part manifest", manifest_path.display()))?;
        if (PartManifest {
            rows: 0,
            skipped: 0,
            ..done.clone()
        }) == expected
        {
            eprintln!(
                "{name} is already complete ({} rows): nothing to do",
                done.rows
            );
            return Ok(());
        }
        bail!(
            "{} was written for other inputs or another model; delete it (and {name}.*) to embed this shard again",
            manifest_path.display()
        );
    }
    // The blocks of an unfinished run, kept only if they were made from the same inputs.
    let blocks = directory.join(format!(".{name}"));
    let started_path = blocks.join("started.json");
    let started_record = serde_json::to_vec_pretty(&(&expected, args.block_photos))?;
    match std::fs::read(&started_path) {
        Ok(recorded) if recorded == started_record => {}
        Ok(_) => bail!(
            "{} holds an unfinished run of other inputs, another model or block size; delete it to start this shard afresh",
            blocks.display()
        ),
        Err(_) => {
            std::fs::create_dir_all(&blocks)
                .with_context(|| format!("cannot create {}", blocks.display()))?;
            g3::core::atomic::write_atomically(&started_path, &started_record)?;
        }
    }
    let progress = terminal::progress_bar(
        range.len() as u64,
        "{spinner} embedding {bar:40} {pos}/{len} images ({per_sec}, {eta})",
    );
    let started = Instant::now();
    let block_starts: Vec<usize> = range.clone().step_by(args.block_photos).collect();
    let mut resumed = 0;
    for (block, &start) in block_starts.iter().enumerate() {
        let end = (start + args.block_photos).min(range.end);
        let npy = blocks.join(format!("block-{block}.npy"));
        // The rows CSV is committed last: its presence marks a finished block.
        if sidecar(&npy, "rows.csv").is_file() {
            progress.inc((end - start) as u64);
            resumed += 1;
            continue;
        }
        let mut output = EmbeddingOutput::create(photos, &npy, dimension)?;
        embed_positions(
            encoder,
            photos,
            start..end,
            args.batch,
            args.skip_bad,
            &progress,
            &mut output,
        )?;
        output.commit()?;
    }
    progress.finish_and_clear();
    if resumed > 0 {
        eprintln!(
            "resumed {name}: {resumed} of {} blocks were already done",
            block_starts.len()
        );
    }

    // The blocks joined into the part.
    let part = directory.join(format!("{name}.npy"));
    let mut output = EmbeddingOutput::create(photos, &part, dimension)?;
    for block in 0..block_starts.len() {
        let npy = blocks.join(format!("block-{block}.npy"));
        let rows = read_rows_csv(&sidecar(&npy, "rows.csv"))?;
        if !rows.is_empty() {
            let embeddings = g3::read_embeddings_npy(&npy)?;
            for (offset, (file, id)) in rows.iter().enumerate() {
                output
                    .rows
                    .row(&[&(output.matrix.rows() + offset).to_string(), file, id])?;
            }
            output.matrix.write(&embeddings)?;
        }
        let skipped = sidecar(&npy, "skipped.csv");
        if skipped.is_file() {
            let mut reader = csv::Reader::from_path(&skipped)
                .with_context(|| format!("cannot read {}", skipped.display()))?;
            for record in reader.records() {
                let record =
                    record.with_context(|| format!("cannot read {}", skipped.display()))?;
                output.skipped_count += 1;
                output.skipped.row(&[&record[0], &record[1]])?;
            }
        }
    }
    let (written, skipped) = output.commit()?;
    let manifest = PartManifest {
        rows: written,
        skipped,
        ..expected
    };
    g3::core::atomic::write_atomically(&manifest_path, &serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::remove_dir_all(&blocks)
        .with_context(|| format!("cannot remove {}", blocks.display()))?;
    report(
        &part,
        written,
        dimension,
        skipped,
        started,
        &sidecar(&part, "skipped.csv"),
    );
    Ok(())
}

/// The `(file, id)` of each row of a rows CSV.
fn read_rows_csv(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    reader
        .records()
        .map(|record| {
            let record = record.with_context(|| format!("cannot read {}", path.display()))?;
            Ok((record[1].to_owned(), record[2].to_owned()))
        })
        .collect()
}

fn report(
    output: &Path,
    written: usize,
    dimension: usize,
    skipped: usize,
    started: Instant,
    skipped_list: &Path,
) {
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} [{written} x {dimension}] in {seconds:.1} s ({:.2} images/s){}",
        output.display(),
        written as f64 / seconds.max(1e-9),
        if skipped > 0 {
            format!("; skipped {skipped} (listed in {})", skipped_list.display())
        } else {
            String::new()
        }
    );
}

//! `g3 embed-images`: CLIP, G3 or GeoCLIP embeddings of a folder or list of photos, as `.npy`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::common::{csv_field, resolve_model};
use crate::terminal;
use g3::align::{
    AlignError, ClipFiles, ComputeDevice, Device, ImageEmbeddingKind, ImageEncoder, ModelOptions,
    ModelSpec, Precision,
};
use g3::core::atomic::AtomicFile;
use g3::{GrowingEmbeddingFile, ImageInput, list_images};
use rayon::prelude::*;

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
    /// `file` column.
    #[arg(long, value_name = "DIR|list.csv")]
    input: PathBuf,

    /// Directory that relative paths of a CSV input are relative to (default: the CSV's).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Output: float32 .npy [images, dimension], L2-normalised rows in input order. A sidecar
    /// OUTPUT.rows.csv names the file of each row.
    #[arg(long, value_name = "emb.npy")]
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
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

/// The images of one chunk, read and preprocessed: (file, pixels or why not).
type PreparedChunk = Vec<(PathBuf, Result<Vec<f32>, AlignError>)>;

fn prepare(encoder: &ImageEncoder, files: &[PathBuf]) -> PreparedChunk {
    files
        .par_iter()
        .map(|path| {
            let name = path.display().to_string();
            let pixels = std::fs::read(path)
                .map_err(|error| AlignError::ImageDecode {
                    name: name.clone(),
                    reason: error.to_string(),
                })
                .and_then(|bytes| {
                    let image = ImageInput::from_bytes(name, bytes);
                    encoder.processor().preprocess(image.encoded(), image.id())
                });
            (path.clone(), pixels)
        })
        .collect()
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

fn sidecar(output: &Path, suffix: &str) -> PathBuf {
    output.with_extension(suffix)
}

pub fn run(args: EmbedImagesArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let device = args.device.to_device()?;
    let files = list_images(&args.input, args.root.as_deref())?;
    if files.is_empty() {
        bail!("{}: no images to embed", args.input.display());
    }
    let encoder = load_encoder(&args, &device)?;
    let dimension = encoder.dimension();
    let mut output = GrowingEmbeddingFile::create(&args.output, dimension)?;
    let mut rows = SidecarCsv::create(sidecar(&args.output, "rows.csv"), "row,file")?;
    let mut skipped = if args.skip_bad {
        Some(SidecarCsv::create(
            sidecar(&args.output, "skipped.csv"),
            "file,error",
        )?)
    } else {
        None
    };
    let progress = terminal::progress_bar(
        files.len() as u64,
        "{spinner} embedding {bar:40} {pos}/{len} images ({per_sec}, {eta})",
    );
    let started = Instant::now();
    let mut skipped_count = 0usize;
    // Decoding the next chunk (all cores) overlaps the model's pass over this one.
    let chunk_size = (args.batch * 4).max(64);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (sender, receiver) = sync_channel::<PreparedChunk>(1);
        let encoder = &encoder;
        let files = &files;
        scope.spawn(move || {
            for chunk in files.chunks(chunk_size) {
                if sender.send(prepare(encoder, chunk)).is_err() {
                    break;
                }
            }
        });
        for prepared in receiver {
            let mut pixels =
                Vec::with_capacity(prepared.len() * encoder.processor().values_per_image());
            let mut names = Vec::with_capacity(prepared.len());
            for (path, result) in prepared {
                match (result, skipped.as_mut()) {
                    (Ok(values), _) => {
                        pixels.extend(values);
                        names.push(path);
                    }
                    (Err(error), Some(list)) => {
                        skipped_count += 1;
                        list.row(&[&path.display().to_string(), &error.to_string()])?;
                        progress.inc(1);
                    }
                    (Err(error), None) => {
                        return Err(anyhow::Error::new(error)
                            .context("stopping (pass --skip-bad to skip undecodable images)"));
                    }
                }
            }
            if names.is_empty() {
                continue;
            }
            let embeddings = encoder.embed_pixels(&pixels, names.len())?;
            let first_row = output.rows();
            for (offset, path) in names.iter().enumerate() {
                rows.row(&[
                    &(first_row + offset).to_string(),
                    &path.display().to_string(),
                ])?;
            }
            output.write(&embeddings)?;
            progress.inc(names.len() as u64);
        }
        Ok(())
    })?;
    let written = output.rows();
    if written == 0 {
        bail!(
            "no image could be embedded (see {})",
            sidecar(&args.output, "skipped.csv").display()
        );
    }
    output.finish()?;
    rows.commit()?;
    if let Some(list) = skipped {
        list.commit()?;
    }
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} [{written} x {dimension}] in {seconds:.1} s ({:.2} images/s){}",
        args.output.display(),
        written as f64 / seconds.max(1e-9),
        if skipped_count > 0 {
            format!(
                "; skipped {skipped_count} (listed in {})",
                sidecar(&args.output, "skipped.csv").display()
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

//! `g3 embed-images`: CLIP, G3 or GeoCLIP embeddings of a folder or list of photos, as `.npy`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::terminal;
use g3::align::clip::AttentionKernel;
use g3::align::{
    ClipFiles, ComputeDevice, Device, ImageEmbeddingKind, ImageEncoder, ModelOptions, ModelSpec,
    Precision,
};
use g3::data::{PhotoSet, WorkShard};
use g3::embed_images::{EmbedImagesOptions, EmbeddingTarget, embed_photo_set};
use g3::published::resolve_model;

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

    /// How the CLIP tower computes attention on a GPU: explicit (two matrix products and a
    /// softmax), fused (burn's attention operation) or fused-padded (the queries padded so
    /// that cubecl's flash-attention kernels run; for f16/bf16).
    #[arg(long, value_enum, default_value_t = AttentionArg::Explicit)]
    attention: AttentionArg,

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
        .with_precision(args.precision)?
        .with_attention_kernel(args.attention.into()))
}

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
    let target = match shard {
        None => EmbeddingTarget::File(args.output.clone()),
        Some(shard) => EmbeddingTarget::Shard {
            directory: args.output.clone(),
            shard,
        },
    };
    let options = EmbedImagesOptions {
        batch: args.batch,
        skip_bad: args.skip_bad,
        block_photos: args.block_photos,
        model: args.model.clone(),
        kind: format!("{:?}", args.kind).to_lowercase(),
    };
    let summary = embed_photo_set(
        &encoder,
        &photos,
        &target,
        &options,
        &terminal::Bars::default(),
    )?;
    if !summary.already_complete {
        eprintln!(
            "wrote {} [{} x {}] in {:.1} s ({:.2} images/s){}",
            summary.output.display(),
            summary.rows,
            summary.dimension,
            summary.seconds,
            summary.rows as f64 / summary.seconds.max(1e-9),
            if summary.skipped > 0 {
                format!(
                    "; skipped {} (listed in {})",
                    summary.skipped,
                    summary.skipped_list.display()
                )
            } else {
                String::new()
            }
        );
        let stages = summary.stages;
        eprintln!(
            "time: model {:.1} s ({:.0}% of the run; its first chunk {:.1} s, kernel compilation and tuning included), reading and preprocessing photos {:.1} s on {} threads ahead of the model, waiting for photos {:.1} s, batching and writing {:.1} s",
            stages.model,
            100.0 * stages.model_share(summary.seconds),
            stages.first_chunk,
            stages.reading_photos,
            rayon::current_num_threads(),
            stages.waiting_for_photos,
            stages.writing
        );
    }
    Ok(())
}

/// `--attention`: the CLIP tower's attention kernel.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AttentionArg {
    Explicit,
    Fused,
    FusedPadded,
}

impl From<AttentionArg> for AttentionKernel {
    fn from(kernel: AttentionArg) -> Self {
        match kernel {
            AttentionArg::Explicit => AttentionKernel::Explicit,
            AttentionArg::Fused => AttentionKernel::Fused,
            AttentionArg::FusedPadded => AttentionKernel::FusedPadded,
        }
    }
}

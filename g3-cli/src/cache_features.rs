//! `g3 cache-features`: CLIP's projected image and text features of a dataset, computed once
//! for Geo-alignment training (`g3 train`), in resumable parts.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};

use crate::terminal;
use g3::align::{
    ClipFiles, ComputeDevice, Device, ImageEmbeddingKind, LoadedModel, ModelOptions, ModelSpec,
};
use g3::cache_features::{CacheFeaturesOptions, FeatureRow, cache_features};
use g3::data::{
    DatasetKind, DescriptionTemplate, FolderImageSource, ImageSource, MetadataOptions,
    MetadataReader, TarShardImageSource, WorkShard,
};
use g3::published::resolve_model;

#[derive(Debug, Args)]
pub struct CacheFeaturesArgs {
    /// The CLIP model: an HF CLIP directory, an HF repo id found in the local HF cache
    /// (openai/clip-vit-large-patch14, as G3), or a G3 checkpoint (g3.pth).
    #[arg(long, value_name = "DIR_OR_PTH")]
    model: String,

    /// CLIP architecture of a G3 checkpoint (an HF config.json); default: ViT-L/14.
    #[arg(long, value_name = "config.json")]
    clip_config: Option<PathBuf>,

    /// Preprocessing of a G3 checkpoint (an HF preprocessor_config.json); default: OpenAI
    /// CLIP's.
    #[arg(long, value_name = "preprocessor_config.json")]
    preprocessor_config: Option<PathBuf>,

    /// The dataset's metadata CSV (`IMG_ID, LAT, LON`, and the location names G3's
    /// descriptions use: `city, state, country`).
    #[arg(long, value_name = "CSV")]
    metadata: PathBuf,

    /// Which reference filters apply: mp16-pro drops rows without a country and reads
    /// `IMG_ID`s with `/` as `_`, as G3's loader does.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mp16Pro)]
    dataset: DatasetArg,

    /// Directory holding the images, named by `IMG_ID`.
    #[arg(long, value_name = "DIR", required_unless_present = "archives")]
    images: Option<PathBuf>,

    /// A tar archive holding the images instead (MP16-Pro's `mp-16-images.tar`, or shards;
    /// repeatable), read in place by `IMG_ID`; its index is saved beside the first.
    #[arg(long = "archive", value_name = "A.tar", conflicts_with = "images")]
    archives: Vec<PathBuf>,

    /// Output directory: image_features.npy, text_features.npy and metadata.csv (IMG_ID,
    /// LAT, LON, description), row-aligned, plus the parts of an unfinished run. For a
    /// shard, OUTPUT/part-I-of-N/ holds them and OUTPUT/part-I-of-N.json marks it finished;
    /// `g3 train` joins the parts.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,

    /// Cache only shard I of N (from 0): the metadata rows at positions [I·n/N, (I+1)·n/N)
    /// after the dataset's filters. Without it, a Slurm job array or a Kubernetes Indexed
    /// Job (with --shards) gives the shard; else the whole dataset is one cache.
    #[arg(long, value_name = "I/N", value_parser = WorkShard::parse)]
    shard: Option<WorkShard>,

    /// The number of shards when the scheduler gives only the index (a Kubernetes Indexed
    /// Job's completions), or to override SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,

    /// Images (and texts) per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,

    /// Where the model runs: cpu, flex (build with --features flex) or wgpu (build with
    /// --features wgpu).
    #[arg(long, default_value_t = ComputeDevice::Cpu)]
    device: ComputeDevice,

    /// Only image features (for the image-gps variant).
    #[arg(long)]
    no_text: bool,

    /// Leave out rows whose image cannot be read or decoded (listed in skipped.csv) instead of
    /// stopping at the first.
    #[arg(long)]
    skip_bad: bool,

    /// Metadata rows per part: the unit of work a restarted run skips when finished.
    #[arg(long, default_value_t = 2048, hide = true)]
    part_rows: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DatasetArg {
    Mp16Pro,
    Im2gps3k,
    Yfcc4k,
}

/// The model of `args`, loaded when the job first needs it.
fn load_model(args: &CacheFeaturesArgs, device: &Device) -> g3::Result<LoadedModel> {
    let options = ModelOptions {
        clip_files: ClipFiles {
            config: args.clip_config.clone(),
            preprocessor: args.preprocessor_config.clone(),
            tokenizer: None,
        },
        ..ModelOptions::default()
    };
    let spec = ModelSpec::from_source(
        resolve_model(&args.model)?,
        options,
        ImageEmbeddingKind::ClipFeatures,
    )?;
    spec.load(device).map_err(|source| g3::Error::Load {
        what: spec.to_string(),
        source: source.into(),
    })
}

fn read_rows(args: &CacheFeaturesArgs) -> anyhow::Result<Vec<FeatureRow>> {
    let dataset = match args.dataset {
        DatasetArg::Mp16Pro => DatasetKind::Mp16Pro,
        DatasetArg::Im2gps3k => DatasetKind::Im2gps3k,
        DatasetArg::Yfcc4k => DatasetKind::Yfcc4k,
    };
    let template = DescriptionTemplate::default();
    let reader = MetadataReader::open(&args.metadata, MetadataOptions::for_dataset(dataset))?;
    let mut rows = Vec::new();
    for record in reader {
        let record = record?;
        rows.push(FeatureRow {
            description: template.describe(&record.names),
            image_id: record.image_id,
            latitude: record.location.lat_deg(),
            longitude: record.location.lon_deg(),
        });
    }
    Ok(rows)
}

pub fn run(args: CacheFeaturesArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.part_rows == 0 {
        bail!("--batch and --part-rows must be at least 1");
    }
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => WorkShard::from_environment(args.shards).map_err(anyhow::Error::msg)?,
    };
    let rows = read_rows(&args)?;
    if rows.is_empty() {
        bail!("{}: no rows to cache", args.metadata.display());
    }
    let spinner = terminal::spinner("{spinner} {msg} ({elapsed})");
    spinner.set_message("opening the images (an archive is indexed once)");
    let source: anyhow::Result<Box<dyn ImageSource>> = match &args.images {
        Some(folder) => Ok(Box::new(FolderImageSource::new(folder)?)),
        None => Ok(Box::new(TarShardImageSource::open_beside(&args.archives)?)),
    };
    spinner.finish_and_clear();
    let source = source?;
    let device = args.device.to_device()?;
    let options = CacheFeaturesOptions {
        batch: args.batch,
        text: !args.no_text,
        skip_bad: args.skip_bad,
        part_rows: args.part_rows,
        model: args.model.clone(),
    };
    let mut load = || load_model(&args, &device);
    cache_features(
        &rows,
        source.as_ref(),
        &args.output,
        shard,
        &options,
        &mut load,
        &terminal::Bars::default(),
    )?;
    Ok(())
}

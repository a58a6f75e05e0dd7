//! `g3 cache-features`: CLIP's projected image and text features of a dataset, computed once
//! for Geo-alignment training (`g3 train`), in resumable parts.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::common::{csv_field, resolve_model};
use crate::terminal;
use g3::align::{
    ClipFiles, ComputeDevice, Device, ImageEmbeddingKind, ImageEncoder, LoadedModel, ModelOptions,
    ModelSpec,
};
use g3::core::atomic::write_atomically;
use g3::data::{
    DatasetKind, DescriptionTemplate, FolderImageSource, ImageSource, MetadataOptions,
    MetadataReader, TarShardImageSource, WorkShard,
};
use g3::{EmbeddingFileWriter, GrowingEmbeddingFile, read_embeddings_npy};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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

/// One metadata row to cache.
struct Row {
    image_id: String,
    latitude: f64,
    longitude: f64,
    description: String,
}

fn part_path(output: &Path, part: usize, suffix: &str) -> PathBuf {
    output.join("parts").join(format!("{part:06}.{suffix}"))
}

/// The model, loaded on first use and kept for the second pass.
fn model<'a>(
    slot: &'a mut Option<LoadedModel>,
    args: &CacheFeaturesArgs,
    device: &Device,
) -> anyhow::Result<&'a LoadedModel> {
    let model = match slot.take() {
        Some(model) => model,
        None => {
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
            spec.load(device)
                .with_context(|| format!("cannot load {spec}"))?
        }
    };
    Ok(slot.insert(model))
}

fn read_rows(args: &CacheFeaturesArgs) -> anyhow::Result<Vec<Row>> {
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
        rows.push(Row {
            description: template.describe(&record.names),
            image_id: record.image_id,
            latitude: record.location.lat_deg(),
            longitude: record.location.lon_deg(),
        });
    }
    Ok(rows)
}

fn progress_bar(length: usize, what: &str) -> ProgressBar {
    terminal::progress_bar(
        length as u64,
        &format!("{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} rows ({{per_sec}}, {{eta}})"),
    )
}

/// Image features of one part: writes `NNNNNN.image.npy`, then `NNNNNN.rows.csv` (the kept
/// rows), which marks the part as done.
fn cache_image_part(
    args: &CacheFeaturesArgs,
    output: &Path,
    source: &dyn ImageSource,
    encoder: &ImageEncoder,
    rows: &[Row],
    part: usize,
) -> anyhow::Result<()> {
    let mut skipped = String::new();
    let prepared: Vec<_> = rows
        .par_iter()
        .map(|row| {
            source
                .get(&row.image_id)
                .map_err(|error| error.to_string())
                .and_then(|image| {
                    encoder
                        .processor()
                        .preprocess(image.encoded(), image.id())
                        .map_err(|error| error.to_string())
                })
        })
        .collect();
    let mut pixels = Vec::with_capacity(rows.len() * encoder.processor().values_per_image());
    let mut kept = String::from("IMG_ID,LAT,LON,description\n");
    let mut count = 0;
    for (row, result) in rows.iter().zip(prepared) {
        match result {
            Ok(values) => {
                pixels.extend(values);
                kept.push_str(&format!(
                    "{},{},{},{}\n",
                    csv_field(&row.image_id),
                    row.latitude,
                    row.longitude,
                    csv_field(&row.description)
                ));
                count += 1;
            }
            Err(reason) if args.skip_bad => {
                skipped.push_str(&format!(
                    "{},{}\n",
                    csv_field(&row.image_id),
                    csv_field(&reason)
                ));
            }
            Err(reason) => {
                bail!("{reason} (pass --skip-bad to leave out undecodable images)")
            }
        }
    }
    if count > 0 {
        let embeddings = encoder.embed_pixels(&pixels, count)?;
        let mut writer = EmbeddingFileWriter::create(
            &part_path(output, part, "image.npy"),
            count,
            encoder.dimension(),
        )?;
        writer.write(&embeddings)?;
        writer.finish()?;
    }
    if !skipped.is_empty() {
        write_atomically(&part_path(output, part, "skipped.csv"), skipped.as_bytes())?;
    }
    Ok(write_atomically(
        &part_path(output, part, "rows.csv"),
        kept.as_bytes(),
    )?)
}

/// The kept rows of a finished part: (image id, latitude, longitude, description) lines.
fn part_rows(output: &Path, part: usize) -> anyhow::Result<Vec<csv::StringRecord>> {
    let path = part_path(output, part, "rows.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    reader
        .records()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

/// What a finished shard of the cache records, for `g3 train` to join the shards safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturePartManifest {
    pub format: String,
    pub shard: usize,
    pub shards: usize,
    /// The fingerprint of the dataset's image ids, in order, after its filters.
    pub inputs: String,
    /// Metadata rows in the whole dataset and in this shard; rows cached (minus skipped).
    pub rows: usize,
    pub first: usize,
    pub end: usize,
    pub cached: usize,
    pub text: bool,
    pub model: String,
}

pub const FEATURE_PART_FORMAT: &str = "g3-feature-part v1";

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
    let Some(shard) = shard else {
        return cache_rows(&args, &args.output, source.as_ref(), &rows).map(drop);
    };
    let name = shard.part_name();
    let manifest_path = args.output.join(format!("{name}.json"));
    let range = shard.range(rows.len());
    let mut fingerprint = blake3::Hasher::new();
    for row in &rows {
        fingerprint.update(row.image_id.as_bytes());
        fingerprint.update(b"\n");
    }
    let expected = FeaturePartManifest {
        format: FEATURE_PART_FORMAT.into(),
        shard: shard.index,
        shards: shard.count,
        inputs: fingerprint.finalize().to_hex()[..32].to_owned(),
        rows: rows.len(),
        first: range.start,
        end: range.end,
        cached: 0,
        text: !args.no_text,
        model: args.model.clone(),
    };
    if let Ok(text) = std::fs::read(&manifest_path) {
        let done: FeaturePartManifest = serde_json::from_slice(&text).with_context(|| {
            format!("{} is not a feature part manifest", manifest_path.display())
        })?;
        if (FeaturePartManifest {
            cached: 0,
            ..done.clone()
        }) == expected
        {
            eprintln!(
                "g3 cache-features: {name} is already complete ({} rows)",
                done.cached
            );
            return Ok(());
        }
        bail!(
            "{} was written for another dataset, model or shard count; delete it and {name}/ to cache this shard again",
            manifest_path.display()
        );
    }
    let directory = args.output.join(&name);
    let cached = cache_rows(&args, &directory, source.as_ref(), &rows[range])?;
    let manifest = FeaturePartManifest { cached, ..expected };
    write_atomically(&manifest_path, &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(())
}

/// Caches `rows` into `output` (image_features.npy, text_features.npy, metadata.csv), in
/// resumable parts; returns the rows cached.
fn cache_rows(
    args: &CacheFeaturesArgs,
    output: &Path,
    source: &dyn ImageSource,
    rows: &[Row],
) -> anyhow::Result<usize> {
    let device = args.device.to_device()?;
    let mut loaded = None;
    let parts_directory = output.join("parts");
    std::fs::create_dir_all(&parts_directory)
        .with_context(|| format!("creating {}", parts_directory.display()))?;
    let parts: Vec<&[Row]> = rows.chunks(args.part_rows).collect();
    let done = |part: usize, suffix: &str| part_path(output, part, suffix).is_file();

    // Pass 1: image features.
    let todo: Vec<usize> = (0..parts.len())
        .filter(|&part| !done(part, "rows.csv"))
        .collect();
    if !todo.is_empty() {
        eprintln!(
            "g3 cache-features: {} rows, {} of {} parts of image features to compute",
            rows.len(),
            todo.len(),
            parts.len()
        );
        let encoder = model(&mut loaded, args, &device)?
            .image_encoder(ImageEmbeddingKind::ClipFeatures, args.batch)?;
        let bar = progress_bar(todo.iter().map(|&part| parts[part].len()).sum(), "images");
        for &part in &todo {
            cache_image_part(args, output, source, &encoder, parts[part], part)?;
            bar.inc(parts[part].len() as u64);
        }
        bar.finish_and_clear();
    }

    // Pass 2: text features of the kept rows' descriptions.
    if !args.no_text {
        let todo: Vec<usize> = (0..parts.len())
            .filter(|&part| !done(part, "text.npy"))
            .collect();
        if !todo.is_empty() {
            let encoder = model(&mut loaded, args, &device)?.text_encoder(args.batch)?;
            let bar = progress_bar(todo.iter().map(|&part| parts[part].len()).sum(), "texts");
            for &part in &todo {
                let kept = part_rows(output, part)?;
                if !kept.is_empty() {
                    let texts: Vec<&str> = kept
                        .iter()
                        .map(|record| record.get(3).unwrap_or(""))
                        .collect();
                    let features = encoder.features(&texts)?;
                    let mut writer = EmbeddingFileWriter::create(
                        &part_path(output, part, "text.npy"),
                        kept.len(),
                        features.dimension(),
                    )?;
                    writer.write(&features)?;
                    writer.finish()?;
                }
                bar.inc(parts[part].len() as u64);
            }
            bar.finish_and_clear();
        }
    }

    // Assembly: one row-aligned set of files.
    let mut metadata = String::from("IMG_ID,LAT,LON,description\n");
    let mut image_output: Option<GrowingEmbeddingFile> = None;
    let mut text_output: Option<GrowingEmbeddingFile> = None;
    let mut skipped = String::new();
    for part in 0..parts.len() {
        if let Ok(list) = std::fs::read_to_string(part_path(output, part, "skipped.csv")) {
            skipped.push_str(&list);
        }
        let kept = part_rows(output, part)?;
        if kept.is_empty() {
            continue;
        }
        for record in &kept {
            let fields: Vec<String> = record.iter().map(csv_field).collect();
            metadata.push_str(&fields.join(","));
            metadata.push('\n');
        }
        let append = |suffix: &str, output_file: &mut Option<GrowingEmbeddingFile>, name: &str| {
            let embeddings = read_embeddings_npy(&part_path(output, part, suffix))?;
            if embeddings.len() != kept.len() {
                bail!(
                    "{}: {} rows for {} kept images; delete the part to recompute it",
                    part_path(output, part, suffix).display(),
                    embeddings.len(),
                    kept.len()
                );
            }
            let file = match output_file {
                Some(file) => file,
                None => output_file.insert(GrowingEmbeddingFile::create(
                    &output.join(name),
                    embeddings.dimension(),
                )?),
            };
            file.write(&embeddings)?;
            Ok(())
        };
        append("image.npy", &mut image_output, "image_features.npy")?;
        if !args.no_text {
            append("text.npy", &mut text_output, "text_features.npy")?;
        }
    }
    let Some(image_output) = image_output else {
        bail!("no image could be read: nothing to cache");
    };
    let cached = image_output.rows();
    image_output.finish()?;
    if let Some(text_output) = text_output {
        text_output.finish()?;
    }
    write_atomically(&output.join("metadata.csv"), metadata.as_bytes())?;
    let skipped_count = skipped.lines().count();
    if skipped_count > 0 {
        write_atomically(
            &output.join("skipped.csv"),
            format!("IMG_ID,error\n{skipped}").as_bytes(),
        )?;
    }
    std::fs::remove_dir_all(&parts_directory)
        .with_context(|| format!("removing {}", parts_directory.display()))?;
    eprintln!(
        "g3 cache-features: {cached} rows in {} (image_features.npy{}, metadata.csv){}",
        output.display(),
        if args.no_text {
            ""
        } else {
            ", text_features.npy"
        },
        if skipped_count == 0 {
            String::new()
        } else {
            format!("; {skipped_count} unreadable images listed in skipped.csv")
        }
    );
    Ok(cached)
}

//! `g3 cache-features`: CLIP's projected image and text features of a dataset, computed once
//! for Geo-alignment training (`g3 train`), in resumable parts.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::common::{DeviceArg, csv_field, resolve_model};
use crate::terminal;
use g3::align::clip::{ClipConfig, ClipImageProcessor, ClipImageProcessorConfig, ClipTokenizer};
use g3::align::pretrained::{HfClipDirectory, ModelSource};
use g3::align::{
    Device, G3Model, ImageEmbeddingKind, ImageEncoder, ImageModel, TextEncoder, TextModel,
};
use g3::core::assets::Asset;
use g3::data::{DatasetKind, DescriptionTemplate, MetadataOptions, MetadataReader};
use g3::{EmbeddingFileWriter, GrowingEmbeddingFile, ImageInput, read_embeddings_npy};
use indicatif::ProgressBar;
use rayon::prelude::*;

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
    #[arg(long, value_name = "DIR")]
    images: PathBuf,

    /// Output directory: image_features.npy, text_features.npy and metadata.csv (IMG_ID,
    /// LAT, LON, description), row-aligned, plus the parts of an unfinished run.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,

    /// Images (and texts) per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,

    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,

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

/// Writes `text` to `path` through a temporary file renamed into place.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".g3-")
        .suffix(".tmp")
        .tempfile_in(directory)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn image_encoder(args: &CacheFeaturesArgs, device: &Device) -> anyhow::Result<ImageEncoder> {
    let (model, processor) = match resolve_model(&args.model)? {
        ModelSource::HfDirectory(directory) => {
            let clip = HfClipDirectory::open(&directory)?;
            (
                ImageModel::Clip(clip.load_model(device)?),
                clip.image_processor()?,
            )
        }
        ModelSource::Checkpoint(path) => {
            let processor = match &args.preprocessor_config {
                Some(path) => {
                    ClipImageProcessor::new(ClipImageProcessorConfig::from_json_file(path)?)
                }
                None => ClipImageProcessor::default(),
            };
            (ImageModel::G3(load_g3(args, &path, device)?), processor)
        }
    };
    Ok(ImageEncoder::new(
        model,
        ImageEmbeddingKind::ClipFeatures,
        processor,
        device.clone(),
        args.batch,
    )?)
}

fn text_encoder(args: &CacheFeaturesArgs, device: &Device) -> anyhow::Result<TextEncoder> {
    let (model, tokenizer) = match resolve_model(&args.model)? {
        ModelSource::HfDirectory(directory) => {
            let clip = HfClipDirectory::open(&directory)?;
            (TextModel::Clip(clip.load_model(device)?), clip.tokenizer()?)
        }
        ModelSource::Checkpoint(path) => {
            let vocabulary = Asset::CLIP_BPE_VOCABULARY.require().context(
                "a G3 checkpoint carries no tokenizer: fetch CLIP's vocabulary with \
                 scripts/fetch-assets.sh",
            )?;
            (
                TextModel::G3(load_g3(args, &path, device)?),
                ClipTokenizer::from_bpe_vocabulary(&vocabulary)?,
            )
        }
    };
    Ok(TextEncoder::new(model, tokenizer, args.batch)?)
}

fn load_g3(args: &CacheFeaturesArgs, path: &Path, device: &Device) -> anyhow::Result<G3Model> {
    let config = match &args.clip_config {
        Some(path) => ClipConfig::from_json_file(path)?,
        None => ClipConfig::vit_large_patch14(),
    };
    G3Model::load(path, &config, device)
        .with_context(|| format!("cannot load the G3 checkpoint {}", path.display()))
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
    encoder: &ImageEncoder,
    rows: &[Row],
    part: usize,
) -> anyhow::Result<()> {
    let mut skipped = String::new();
    let prepared: Vec<_> = rows
        .par_iter()
        .map(|row| {
            let path = args.images.join(&row.image_id);
            let name = path.display().to_string();
            std::fs::read(&path)
                .map_err(|error| format!("{name}: {error}"))
                .and_then(|bytes| {
                    let image = ImageInput::from_bytes(name.clone(), bytes);
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
            &part_path(&args.output, part, "image.npy"),
            count,
            encoder.dimension(),
        )?;
        writer.write(&embeddings)?;
        writer.finish()?;
    }
    if !skipped.is_empty() {
        write_atomically(&part_path(&args.output, part, "skipped.csv"), &skipped)?;
    }
    write_atomically(&part_path(&args.output, part, "rows.csv"), &kept)
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

pub fn run(args: CacheFeaturesArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.part_rows == 0 {
        bail!("--batch and --part-rows must be at least 1");
    }
    let device = args.device.to_device()?;
    let rows = read_rows(&args)?;
    if rows.is_empty() {
        bail!("{}: no rows to cache", args.metadata.display());
    }
    let parts_directory = args.output.join("parts");
    std::fs::create_dir_all(&parts_directory)
        .with_context(|| format!("creating {}", parts_directory.display()))?;
    let parts: Vec<&[Row]> = rows.chunks(args.part_rows).collect();
    let done = |part: usize, suffix: &str| part_path(&args.output, part, suffix).is_file();

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
        let encoder = image_encoder(&args, &device)?;
        let bar = progress_bar(todo.iter().map(|&part| parts[part].len()).sum(), "images");
        for &part in &todo {
            cache_image_part(&args, &encoder, parts[part], part)?;
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
            let encoder = text_encoder(&args, &device)?;
            let bar = progress_bar(todo.iter().map(|&part| parts[part].len()).sum(), "texts");
            for &part in &todo {
                let kept = part_rows(&args.output, part)?;
                if !kept.is_empty() {
                    let texts: Vec<&str> = kept
                        .iter()
                        .map(|record| record.get(3).unwrap_or(""))
                        .collect();
                    let features = encoder.features(&texts)?;
                    let mut writer = EmbeddingFileWriter::create(
                        &part_path(&args.output, part, "text.npy"),
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
        if let Ok(list) = std::fs::read_to_string(part_path(&args.output, part, "skipped.csv")) {
            skipped.push_str(&list);
        }
        let kept = part_rows(&args.output, part)?;
        if kept.is_empty() {
            continue;
        }
        for record in &kept {
            let fields: Vec<String> = record.iter().map(csv_field).collect();
            metadata.push_str(&fields.join(","));
            metadata.push('\n');
        }
        let append = |suffix: &str, output: &mut Option<GrowingEmbeddingFile>, name: &str| {
            let embeddings = read_embeddings_npy(&part_path(&args.output, part, suffix))?;
            if embeddings.len() != kept.len() {
                bail!(
                    "{}: {} rows for {} kept images; delete the part to recompute it",
                    part_path(&args.output, part, suffix).display(),
                    embeddings.len(),
                    kept.len()
                );
            }
            let file = match output {
                Some(file) => file,
                None => output.insert(GrowingEmbeddingFile::create(
                    &args.output.join(name),
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
    write_atomically(&args.output.join("metadata.csv"), &metadata)?;
    let skipped_count = skipped.lines().count();
    if skipped_count > 0 {
        write_atomically(
            &args.output.join("skipped.csv"),
            &format!("IMG_ID,error\n{skipped}"),
        )?;
    }
    std::fs::remove_dir_all(&parts_directory)
        .with_context(|| format!("removing {}", parts_directory.display()))?;
    eprintln!(
        "g3 cache-features: {cached} rows in {} (image_features.npy{}, metadata.csv){}",
        args.output.display(),
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
    Ok(())
}

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
        write_atomically(
            &part_path(&args.output, part, "skipped.csv"),
            skipped.as_bytes(),
        )?;
    }
    Ok(write_atomically(
        &part_path(&args.output, part, "rows.csv"),
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

pub fn run(args: CacheFeaturesArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.part_rows == 0 {
        bail!("--batch and --part-rows must be at least 1");
    }
    let device = args.device.to_device()?;
    let mut loaded = None;
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
        let encoder = model(&mut loaded, &args, &device)?
            .image_encoder(ImageEmbeddingKind::ClipFeatures, args.batch)?;
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
            let encoder = model(&mut loaded, &args, &device)?.text_encoder(args.batch)?;
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
    write_atomically(&args.output.join("metadata.csv"), metadata.as_bytes())?;
    let skipped_count = skipped.lines().count();
    if skipped_count > 0 {
        write_atomically(
            &args.output.join("skipped.csv"),
            format!("IMG_ID,error\n{skipped}").as_bytes(),
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

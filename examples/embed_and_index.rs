//! A database of photo embeddings built through the library alone: a folder of photos
//! embedded in shards (as a cluster would, each shard resumable), the parts gathered and
//! checked, then streamed into a database matched to the metadata by photo id.
//!
//! ```sh
//! cargo run --release --example embed_and_index -- MODEL PHOTOS_DIR METADATA.csv OUTPUT_DIR [SHARDS]
//! # with the test fixtures:
//! cargo run --release --example embed_and_index -- g3-align/tests/fixtures/clip/model \
//!     g3-align/tests/fixtures/clip/images examples/data/fixture_photos.csv /tmp/photos-db 3
//! ```
//!
//! MODEL is an HF CLIP directory or repo id in the HF cache, or a G3 checkpoint; the metadata
//! CSV has `IMG_ID` (the photos' file names), `LAT` and `LON` columns.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use g3::align::{ComputeDevice, ImageEmbeddingKind, ModelOptions, ModelSpec};
use g3::core::Progress;
use g3::data::{PhotoSet, WorkShard};
use g3::embed_images::{EmbedImagesOptions, EmbeddingParts, EmbeddingTarget, embed_photo_set};
use g3::index::{MetadataCsvOptions, MetadataSource, Metric, StoreConfig, build_from_embeddings};
use g3::published::resolve_model;

/// Progress as log lines: what a batch job's log wants.
struct LogLines;

impl Progress for LogLines {
    fn start(&self, phase: &str, unit: &str, total: Option<u64>) {
        eprintln!(
            "{phase}: {} {unit}",
            total.map_or("?".into(), |n| n.to_string())
        );
    }
    fn notice(&self, message: &str) {
        eprintln!("{message}");
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [model, photos, metadata, output, rest @ ..] = arguments.as_slice() else {
        return Err(
            "usage: embed_and_index MODEL PHOTOS_DIR METADATA.csv OUTPUT_DIR [SHARDS]".into(),
        );
    };
    let shards: usize = rest.first().map_or(Ok(2), |text| text.parse())?;
    let output = Path::new(output);

    // 1. The encoder: CLIP image features, as a G3 database of CLIP embeddings would hold.
    let kind = ImageEmbeddingKind::Clip;
    let device = ComputeDevice::Cpu.to_device()?;
    let spec = ModelSpec::from_source(resolve_model(model)?, ModelOptions::default(), kind)?;
    let encoder = spec.load(&device)?.image_encoder(kind, 16)?;

    // 2. Every shard into its part; on a cluster each would be its own process or node.
    let photos = PhotoSet::open(Some(Path::new(photos)), None, &[])?;
    let parts = output.join("parts");
    let options = EmbedImagesOptions {
        model: model.clone(),
        kind: "clip".into(),
        ..EmbedImagesOptions::default()
    };
    for index in 0..shards {
        let target = EmbeddingTarget::Shard {
            directory: parts.clone(),
            shard: WorkShard {
                index,
                count: shards,
            },
        };
        let summary = embed_photo_set(&encoder, &photos, &target, &options, &LogLines)?;
        eprintln!("{}: {} rows", summary.output.display(), summary.rows);
    }

    // 3. The parts gathered (every shard once, from the same run) and streamed into a
    //    database, each embedding matched to its metadata row by photo id.
    let files = EmbeddingParts::gather(&[parts])?.files;
    let database: PathBuf = output.join("database");
    let summary = build_from_embeddings(
        &files,
        MetadataSource {
            path: Path::new(metadata),
            options: &MetadataCsvOptions::default(),
        },
        Some("IMG_ID"),
        &StoreConfig::exact(Metric::InnerProduct),
        &database,
        &LogLines,
    )?;
    eprintln!(
        "{} vectors of dimension {} in {}",
        summary.vectors,
        summary.dimension,
        database.display()
    );
    Ok(())
}

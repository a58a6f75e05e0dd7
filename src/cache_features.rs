//! CLIP's projected image and text features of a dataset, computed once for Geo-alignment
//! training (`g3 cache-features`, read by [`FeatureCache`](g3_align::training::FeatureCache)).
//!
//! The work goes in resumable pieces of [`CacheFeaturesOptions::part_rows`] metadata rows:
//! image features first (a piece is finished when its `rows.csv` appears), then the text
//! features of the rows kept, then one assembly into the cache's files
//! ([`FeatureCacheWriter`]). A split run caches one [`WorkShard`] of the rows into
//! `DIR/part-I-of-N/` and marks it finished with `DIR/part-I-of-N.json`;
//! [`join_feature_parts`] joins the shards into one cache.

use std::path::{Path, PathBuf};

use g3_align::training::{
    FeatureCacheWriter, IMAGE_FEATURES_FILE, METADATA_FILE, SKIPPED_FILE, TEXT_FEATURES_FILE,
};
use g3_align::{ImageEmbeddingKind, LoadedModel};
use g3_core::Progress;
use g3_core::atomic::write_atomically;
use g3_core::npy::{EmbeddingFileWriter, MappedMatrix, read_embeddings_npy};
use g3_core::table::csv_field;
use g3_data::{ImageSource, PartHeader, PartManifest, PartSet, WorkShard};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One metadata row to cache.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// The image's id in the image source.
    pub image_id: String,
    /// Where it was taken, in degrees.
    pub latitude: f64,
    /// Where it was taken, in degrees.
    pub longitude: f64,
    /// Its description, which the text features encode.
    pub description: String,
}

/// How the features are cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheFeaturesOptions {
    /// Images (and texts) per forward pass.
    pub batch: usize,
    /// Cache text features too (the IMG+GPS+TEXT variant); off for image-GPS training.
    pub text: bool,
    /// Leave out rows whose image cannot be read (listed in `skipped.csv`) instead of
    /// stopping at the first.
    pub skip_bad: bool,
    /// Metadata rows per piece: the unit of work a restarted run skips when finished.
    pub part_rows: usize,
    /// The model's name as the user gave it, recorded in a shard's manifest.
    pub model: String,
}

impl Default for CacheFeaturesOptions {
    fn default() -> Self {
        CacheFeaturesOptions {
            batch: 32,
            text: true,
            skip_bad: false,
            part_rows: 2048,
            model: String::new(),
        }
    }
}

/// What a caching run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSummary {
    /// Rows cached (metadata rows minus skipped ones).
    pub cached: usize,
    /// Rows left out because their image could not be read.
    pub skipped: usize,
    /// The shard was already complete: nothing was done.
    pub already_complete: bool,
}

/// What a finished shard of the cache records, for joining the shards safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturePartManifest {
    /// Which part of which run ([`FEATURE_PART_FORMAT`]; inputs fingerprinted from the
    /// dataset's image ids, in order, after its filters).
    #[serde(flatten)]
    pub header: PartHeader,
    /// Metadata rows in the whole dataset.
    pub rows: usize,
    /// Rows cached (minus skipped).
    pub cached: usize,
    /// Whether text features were cached.
    pub text: bool,
}

/// The format of a feature cache shard's manifest.
pub const FEATURE_PART_FORMAT: &str = "g3-feature-part v1";

impl PartManifest for FeaturePartManifest {
    const FORMAT: &'static str = FEATURE_PART_FORMAT;
    const NOUN: &'static str = "feature parts";
    const RUN_FIELDS: &'static str = "shard count, dataset, model or text";

    fn header(&self) -> &PartHeader {
        &self.header
    }

    fn same_contents(&self, other: &Self) -> bool {
        self.text == other.text
    }

    fn how_to_make(shards: usize) -> String {
        format!(
            "Run `g3 cache-features` with the same dataset and `--shard I/{shards}` for each (a shard reruns alone; a killed one resumes)"
        )
    }
}

/// The model, loaded on first use: a finished cache needs none.
struct LazyModel<'a> {
    load: &'a mut dyn FnMut() -> Result<LoadedModel>,
    loaded: Option<LoadedModel>,
}

impl LazyModel<'_> {
    fn get(&mut self) -> Result<&LoadedModel> {
        if self.loaded.is_none() {
            self.loaded = Some((self.load)()?);
        }
        Ok(self.loaded.as_ref().expect("loaded above"))
    }
}

/// Caches `rows` of a dataset whose images `source` holds, into `output` or, for a shard,
/// into `output/part-I-of-N/`. `load_model` is called only when features remain to be
/// computed (a finished shard or cache needs no model).
pub fn cache_features(
    rows: &[FeatureRow],
    source: &dyn ImageSource,
    output: &Path,
    shard: Option<WorkShard>,
    options: &CacheFeaturesOptions,
    load_model: &mut dyn FnMut() -> Result<LoadedModel>,
    progress: &dyn Progress,
) -> Result<CacheSummary> {
    if options.batch == 0 || options.part_rows == 0 {
        return Err(Error::InvalidInput(
            "the batch and the part size must be at least 1".into(),
        ));
    }
    if rows.is_empty() {
        return Err(Error::InvalidInput("no rows to cache".into()));
    }
    let mut model = LazyModel {
        load: load_model,
        loaded: None,
    };
    let Some(shard) = shard else {
        let (cached, skipped) = cache_rows(rows, source, output, options, &mut model, progress)?;
        return Ok(CacheSummary {
            cached,
            skipped,
            already_complete: false,
        });
    };
    let name = shard.part_name();
    let manifest_path = output.join(format!("{name}.json"));
    let mut fingerprint = blake3::Hasher::new();
    for row in rows {
        fingerprint.update(row.image_id.as_bytes());
        fingerprint.update(b"\n");
    }
    let expected = FeaturePartManifest {
        header: PartHeader::new(
            FEATURE_PART_FORMAT,
            shard,
            fingerprint.finalize().to_hex()[..32].to_owned(),
            rows.len(),
            options.model.clone(),
        ),
        rows: rows.len(),
        cached: 0,
        text: options.text,
    };
    if manifest_path.exists() {
        let done = PartSet::<FeaturePartManifest>::read_manifest(&manifest_path)?;
        if (FeaturePartManifest {
            cached: 0,
            ..done.clone()
        }) == expected
        {
            progress.notice(&format!(
                "g3 cache-features: {name} is already complete ({} rows)",
                done.cached
            ));
            return Ok(CacheSummary {
                cached: done.cached,
                skipped: 0,
                already_complete: true,
            });
        }
        return Err(Error::InvalidInput(format!(
            "{} was written for another dataset, model or shard count; delete it and {name}/ to cache this shard again",
            manifest_path.display()
        )));
    }
    let (cached, skipped) = cache_rows(
        &rows[expected.header.first..expected.header.end],
        source,
        &output.join(&name),
        options,
        &mut model,
        progress,
    )?;
    let manifest = FeaturePartManifest { cached, ..expected };
    write_atomically(
        &manifest_path,
        &serde_json::to_vec_pretty(&manifest).expect("a manifest serializes"),
    )?;
    Ok(CacheSummary {
        cached,
        skipped,
        already_complete: false,
    })
}

fn piece_path(output: &Path, piece: usize, suffix: &str) -> PathBuf {
    output.join("parts").join(format!("{piece:06}.{suffix}"))
}

/// Image features of one piece: writes `NNNNNN.image.npy`, then `NNNNNN.rows.csv` (the kept
/// rows), which marks the piece as done.
fn cache_image_piece(
    output: &Path,
    source: &dyn ImageSource,
    encoder: &g3_align::ImageEncoder,
    rows: &[FeatureRow],
    piece: usize,
    skip_bad: bool,
) -> Result<()> {
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
    let mut kept = format!("{}\n", g3_align::training::METADATA_HEADER);
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
            Err(reason) if skip_bad => {
                skipped.push_str(&format!(
                    "{},{}\n",
                    csv_field(&row.image_id),
                    csv_field(&reason)
                ));
            }
            Err(reason) => {
                return Err(Error::InvalidInput(format!(
                    "{reason} (pass --skip-bad to leave out undecodable images)"
                )));
            }
        }
    }
    if count > 0 {
        let embeddings = encoder.embed_pixels(&pixels, count)?;
        let mut writer = EmbeddingFileWriter::create(
            &piece_path(output, piece, "image.npy"),
            count,
            encoder.dimension(),
        )?;
        writer.write(&embeddings)?;
        writer.finish()?;
    }
    if !skipped.is_empty() {
        write_atomically(
            &piece_path(output, piece, "skipped.csv"),
            skipped.as_bytes(),
        )?;
    }
    Ok(write_atomically(
        &piece_path(output, piece, "rows.csv"),
        kept.as_bytes(),
    )?)
}

/// The kept rows of a finished piece, as records `IMG_ID,LAT,LON,description`.
fn piece_rows(output: &Path, piece: usize) -> Result<Vec<csv::StringRecord>> {
    let path = piece_path(output, piece, "rows.csv");
    let csv_error = |source| Error::Csv {
        path: path.clone(),
        source,
    };
    let mut reader = csv::Reader::from_path(&path).map_err(csv_error)?;
    reader
        .records()
        .collect::<std::result::Result<_, _>>()
        .map_err(csv_error)
}

/// Caches `rows` into `output` in resumable pieces; returns (rows cached, rows skipped).
fn cache_rows(
    rows: &[FeatureRow],
    source: &dyn ImageSource,
    output: &Path,
    options: &CacheFeaturesOptions,
    model: &mut LazyModel,
    progress: &dyn Progress,
) -> Result<(usize, usize)> {
    let pieces_directory = output.join("parts");
    std::fs::create_dir_all(&pieces_directory).map_err(|source| Error::Io {
        path: pieces_directory.clone(),
        source,
    })?;
    let pieces: Vec<&[FeatureRow]> = rows.chunks(options.part_rows).collect();
    let done = |piece: usize, suffix: &str| piece_path(output, piece, suffix).is_file();
    let rows_of = |todo: &[usize]| todo.iter().map(|&piece| pieces[piece].len() as u64).sum();

    // Pass 1: image features.
    let todo: Vec<usize> = (0..pieces.len())
        .filter(|&piece| !done(piece, "rows.csv"))
        .collect();
    if !todo.is_empty() {
        progress.notice(&format!(
            "g3 cache-features: {} rows, {} of {} parts of image features to compute",
            rows.len(),
            todo.len(),
            pieces.len()
        ));
        let encoder = model
            .get()?
            .image_encoder(ImageEmbeddingKind::ClipFeatures, options.batch)?;
        progress.start("images", "rows", Some(rows_of(&todo)));
        for &piece in &todo {
            cache_image_piece(
                output,
                source,
                &encoder,
                pieces[piece],
                piece,
                options.skip_bad,
            )?;
            progress.advance(pieces[piece].len() as u64);
        }
        progress.finish();
    }

    // Pass 2: text features of the kept rows' descriptions.
    if options.text {
        let todo: Vec<usize> = (0..pieces.len())
            .filter(|&piece| !done(piece, "text.npy"))
            .collect();
        if !todo.is_empty() {
            let encoder = model.get()?.text_encoder(options.batch)?;
            progress.start("texts", "rows", Some(rows_of(&todo)));
            for &piece in &todo {
                let kept = piece_rows(output, piece)?;
                if !kept.is_empty() {
                    let texts: Vec<&str> = kept
                        .iter()
                        .map(|record| record.get(3).unwrap_or(""))
                        .collect();
                    let features = encoder.features(&texts)?;
                    let mut writer = EmbeddingFileWriter::create(
                        &piece_path(output, piece, "text.npy"),
                        kept.len(),
                        features.dimension(),
                    )?;
                    writer.write(&features)?;
                    writer.finish()?;
                }
                progress.advance(pieces[piece].len() as u64);
            }
            progress.finish();
        }
    }

    // Assembly: one row-aligned set of files.
    let mut cache = FeatureCacheWriter::create(output, options.text)?;
    for piece in 0..pieces.len() {
        if let Ok(list) = std::fs::read_to_string(piece_path(output, piece, "skipped.csv")) {
            for line in list.lines() {
                cache.skip(line)?;
            }
        }
        let kept = piece_rows(output, piece)?;
        if kept.is_empty() {
            continue;
        }
        let lines: Vec<String> = kept
            .iter()
            .map(|record| {
                record
                    .iter()
                    .map(|field| csv_field(field).into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let read = |suffix: &str| -> Result<g3_core::Embeddings> {
            let path = piece_path(output, piece, suffix);
            let embeddings = read_embeddings_npy(&path)?;
            if embeddings.len() != kept.len() {
                return Err(Error::InvalidInput(format!(
                    "{}: {} rows for {} kept images; delete the part to recompute it",
                    path.display(),
                    embeddings.len(),
                    kept.len()
                )));
            }
            Ok(embeddings)
        };
        let image = read("image.npy")?;
        let text = if options.text {
            Some(read("text.npy")?)
        } else {
            None
        };
        cache.append(&image, text.as_ref(), &lines)?;
    }
    let (cached, skipped) = cache.finish()?;
    std::fs::remove_dir_all(&pieces_directory).map_err(|source| Error::Io {
        path: pieces_directory.clone(),
        source,
    })?;
    progress.notice(&format!(
        "g3 cache-features: {cached} rows in {} ({IMAGE_FEATURES_FILE}{}, {METADATA_FILE}){}",
        output.display(),
        if options.text {
            format!(", {TEXT_FEATURES_FILE}")
        } else {
            String::new()
        },
        if skipped == 0 {
            String::new()
        } else {
            format!("; {skipped} unreadable images listed in {SKIPPED_FILE}")
        }
    ));
    Ok((cached, skipped))
}

/// Joins the shards of a split run (`DIR/part-I-of-N/` with `DIR/part-I-of-N.json`) into one
/// cache in `DIR`, in shard order, after checking that every shard is there once and all
/// come from the same dataset and model. Returns false when `DIR` holds no parts. The joined
/// files appear atomically, so an interrupted join is redone.
pub fn join_feature_parts(directory: &Path, progress: &dyn Progress) -> Result<bool> {
    let manifests = PartSet::<FeaturePartManifest>::manifests_in(directory)?;
    if manifests.is_empty() {
        return Ok(false);
    }
    let set = PartSet::join(manifests, Some(directory))?;
    let first = set.first().clone();
    let parts: Vec<PathBuf> = set
        .parts()
        .map(|(manifest, _)| manifest.with_extension(""))
        .collect();
    let mut cache = FeatureCacheWriter::create(directory, first.text)?;
    for part in &parts {
        if let Ok(list) = std::fs::read_to_string(part.join(SKIPPED_FILE)) {
            for line in list.lines().skip(1) {
                cache.skip(line)?;
            }
        }
        let Ok(metadata) = std::fs::read_to_string(part.join(METADATA_FILE)) else {
            continue;
        };
        let lines: Vec<String> = metadata.lines().skip(1).map(str::to_owned).collect();
        let image = MappedMatrix::open(&part.join(IMAGE_FEATURES_FILE))?;
        let text = first
            .text
            .then(|| MappedMatrix::open(&part.join(TEXT_FEATURES_FILE)))
            .transpose()?;
        for start in (0..image.rows()).step_by(4096) {
            let end = (start + 4096).min(image.rows());
            let block = |matrix: &MappedMatrix| {
                let values: Vec<f32> = (start..end)
                    .flat_map(|row| matrix.row(row).iter().copied())
                    .collect();
                // Copied out: the mapped pages need not stay resident (12.7 GB at
                // MP16-Pro's size).
                matrix.release_pages();
                g3_core::Embeddings::new(matrix.columns(), values)
            };
            let image_rows = block(&image)?;
            let text_rows = text.as_ref().map(block).transpose()?;
            let lines = lines.get(start..end).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: {} rows of features but {} metadata rows",
                    part.display(),
                    image.rows(),
                    lines.len()
                ))
            })?;
            cache.append(&image_rows, text_rows.as_ref(), lines)?;
        }
    }
    cache.finish()?;
    progress.notice(&format!(
        "g3 train: joined {} feature parts of {} into {}",
        first.header.shards,
        parts
            .first()
            .and_then(|part| part.parent())
            .map_or_else(String::new, |parent| parent.display().to_string()),
        directory.display()
    ));
    Ok(true)
}

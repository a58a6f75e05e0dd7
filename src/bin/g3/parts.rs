//! The parts of a split run, joined for their consumer: `g3 embed-images` parts for
//! `g3 index build`, `g3 cache-features` parts for `g3 train`. Every shard exactly once, all
//! from the same inputs and model, in shard order; a missing one is named with the command
//! that makes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use g3::core::Embeddings;
use g3::core::atomic::write_atomically;
use g3::{GrowingEmbeddingFile, MappedMatrix};

use crate::cache_features::{FEATURE_PART_FORMAT, FeaturePartManifest};
use crate::embed_images::{PART_FORMAT, PartManifest};

/// The embeddings files a build reads, in order, and whether they are the parts of one
/// split run.
pub struct EmbeddingFiles {
    pub files: Vec<PathBuf>,
    pub parts: bool,
}

/// The `.npy` files named by `paths`: plain files as given, or parts (`part-I-of-N.npy`
/// beside its `part-I-of-N.json`, or a directory holding them), checked to cover the
/// inputs exactly once. A missing, repeated or foreign part is an error naming it and the
/// command that makes it.
pub fn gather(paths: &[PathBuf]) -> anyhow::Result<EmbeddingFiles> {
    let mut parts: Vec<(PathBuf, PartManifest)> = Vec::new();
    let mut plain = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = 0;
            let entries = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?;
            for entry in entries {
                let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("part-") && name.ends_with(".json") {
                    let manifest = entry.path();
                    parts.push((manifest.with_extension("npy"), read_manifest(&manifest)?));
                    found += 1;
                }
            }
            if found == 0 {
                bail!(
                    "{} holds no finished part (part-I-of-N.json): run `g3 embed-images --shard I/N --output {}` for each shard",
                    path.display(),
                    path.display()
                );
            }
        } else if path.with_extension("json").is_file() && is_part_name(path) {
            parts.push((path.clone(), read_manifest(&path.with_extension("json"))?));
        } else {
            plain.push(path.clone());
        }
    }
    if parts.is_empty() {
        return Ok(EmbeddingFiles {
            files: plain,
            parts: false,
        });
    }
    if let Some(file) = plain.first() {
        bail!(
            "{} is not a part of a split run, but other inputs are: give the parts only",
            file.display()
        );
    }
    let (first_path, first) = &parts[0];
    let mut by_shard: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    for (path, manifest) in &parts {
        let same_run = manifest.shards == first.shards
            && manifest.inputs == first.inputs
            && manifest.dimension == first.dimension
            && manifest.kind == first.kind
            && manifest.model == first.model;
        if !same_run {
            bail!(
                "{} and {} come from different runs (shard count, inputs, model or kind differ): parts join only with parts of the same run",
                first_path.display(),
                path.display()
            );
        }
        if let Some(other) = by_shard.insert(manifest.shard, path) {
            bail!(
                "part {} of {} is given twice: {} and {}",
                manifest.shard,
                manifest.shards,
                other.display(),
                path.display()
            );
        }
        if !path.is_file() {
            bail!("{} is missing beside its manifest", path.display());
        }
    }
    let missing = missing_parts(first.shards, |shard| by_shard.contains_key(&shard));
    if !missing.is_empty() {
        bail!(
            "missing {} of {} parts: {}. Run `g3 embed-images` with the same inputs and `--shard I/{}` for each (a shard reruns alone; a killed one resumes)",
            missing.len(),
            first.shards,
            missing.join(", "),
            first.shards
        );
    }
    Ok(EmbeddingFiles {
        files: by_shard.into_values().cloned().collect(),
        parts: true,
    })
}

/// The names of the parts of `shards` that `present` says are not there.
fn missing_parts(shards: usize, present: impl Fn(usize) -> bool) -> Vec<String> {
    (0..shards)
        .filter(|&shard| !present(shard))
        .map(|shard| format!("part-{shard}-of-{shards}"))
        .collect()
}

fn is_part_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("part-") && name.ends_with(".npy"))
}

fn read_manifest(path: &Path) -> anyhow::Result<PartManifest> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: PartManifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a part manifest", path.display()))?;
    if manifest.format != PART_FORMAT {
        bail!(
            "{}: format {:?}, expected {PART_FORMAT:?}",
            path.display(),
            manifest.format
        );
    }
    Ok(manifest)
}

/// Joins the shards of a split `g3 cache-features` run (`DIR/part-I-of-N/` with
/// `DIR/part-I-of-N.json`) into one cache in `DIR` (image_features.npy, text_features.npy
/// when cached, metadata.csv, skipped.csv), in shard order, after checking that every shard
/// is there once and all come from the same dataset and model. Returns false when `DIR`
/// holds no parts; the joined files appear atomically, so an interrupted join is redone.
pub fn join_feature_parts(directory: &Path) -> anyhow::Result<bool> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Ok(false);
    };
    let mut manifests = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", directory.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") && name.ends_with(".json") {
            let path = entry.path();
            let text =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let manifest: FeaturePartManifest = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a feature part manifest", path.display()))?;
            if manifest.format != FEATURE_PART_FORMAT {
                continue;
            }
            manifests.push((path, manifest));
        }
    }
    if manifests.is_empty() {
        return Ok(false);
    }
    let (first_path, first) = manifests[0].clone();
    let mut by_shard: BTreeMap<usize, PathBuf> = BTreeMap::new();
    for (path, manifest) in &manifests {
        if manifest.shards != first.shards
            || manifest.inputs != first.inputs
            || manifest.model != first.model
            || manifest.text != first.text
        {
            bail!(
                "{} and {} come from different cache-features runs (shard count, dataset, model or text differ)",
                first_path.display(),
                path.display()
            );
        }
        by_shard.insert(manifest.shard, path.with_extension(""));
    }
    let missing = missing_parts(first.shards, |shard| by_shard.contains_key(&shard));
    if !missing.is_empty() {
        bail!(
            "{}: missing {} of {} feature parts: {}. Run `g3 cache-features` with the same dataset and `--shard I/{}` for each (a shard reruns alone; a killed one resumes)",
            directory.display(),
            missing.len(),
            first.shards,
            missing.join(", "),
            first.shards
        );
    }
    let mut files = vec!["image_features.npy"];
    if first.text {
        files.push("text_features.npy");
    }
    for name in files {
        let mut joined: Option<GrowingEmbeddingFile> = None;
        for part in by_shard.values() {
            let path = part.join(name);
            let matrix = MappedMatrix::open(&path)?;
            let output = match &mut joined {
                Some(output) => output,
                None => joined.insert(GrowingEmbeddingFile::create(
                    &directory.join(name),
                    matrix.columns(),
                )?),
            };
            for start in (0..matrix.rows()).step_by(4096) {
                let end = (start + 4096).min(matrix.rows());
                let values: Vec<f32> = (start..end)
                    .flat_map(|row| matrix.row(row).iter().copied())
                    .collect();
                output.write(&Embeddings::new(matrix.columns(), values)?)?;
                // Copied out: the mapped pages need not stay resident (12.7 GB at MP16-Pro's size).
                matrix.release_pages();
            }
        }
        if let Some(output) = joined {
            output.finish()?;
        }
    }
    for (name, header) in [
        ("metadata.csv", "IMG_ID,LAT,LON,description"),
        ("skipped.csv", "IMG_ID,error"),
    ] {
        let mut text = format!("{header}\n");
        let mut any = false;
        for part in by_shard.values() {
            if let Ok(content) = std::fs::read_to_string(part.join(name)) {
                any = true;
                text.extend(content.lines().skip(1).map(|line| format!("{line}\n")));
            }
        }
        if any {
            write_atomically(&directory.join(name), text.as_bytes())?;
        }
    }
    eprintln!(
        "g3 train: joined {} feature parts of {} into {}",
        first.shards,
        first_path
            .parent()
            .map_or_else(String::new, |parent| parent.display().to_string()),
        directory.display()
    );
    Ok(true)
}

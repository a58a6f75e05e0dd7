//! The parts of a split run, joined for their consumer: embedding parts for a database
//! build, feature-cache parts for training. A job split with [`WorkShard`] writes one part
//! per shard (`part-I-of-N`, finished when its manifest `part-I-of-N.json` appears); a
//! [`PartSet`] gathers the manifests and checks that every shard is there exactly once and
//! that all come from the same run, naming a missing part and what makes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{DataError, Result, WorkShard};

/// What every part of a split run records, whatever the part holds: which shard of which
/// run it is, so that only parts of the same run join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHeader {
    /// The kind of part and its version ([`PartManifest::FORMAT`]).
    pub format: String,
    /// This part's shard index.
    pub shard: usize,
    /// How many shards the run has.
    pub shards: usize,
    /// A fingerprint of the run's inputs (the ids of its items, in order).
    pub inputs: String,
    /// This part's first position among the inputs.
    pub first: usize,
    /// This part's end position among the inputs.
    pub end: usize,
    /// The model, as the user named it.
    pub model: String,
}

impl PartHeader {
    /// The header of `shard`'s part of a run over `items` inputs with this fingerprint.
    pub fn new(
        format: &str,
        shard: WorkShard,
        inputs: String,
        items: usize,
        model: String,
    ) -> Self {
        let range = shard.range(items);
        PartHeader {
            format: format.to_owned(),
            shard: shard.index,
            shards: shard.count,
            inputs,
            first: range.start,
            end: range.end,
            model,
        }
    }

    /// Which shard of how many.
    pub fn work_shard(&self) -> WorkShard {
        WorkShard {
            index: self.shard,
            count: self.shards,
        }
    }

    /// Whether `other` comes from the same run: the same inputs, model and shard count.
    pub fn same_run(&self, other: &PartHeader) -> bool {
        self.shards == other.shards && self.inputs == other.inputs && self.model == other.model
    }
}

/// The manifest a finished part writes last: its [`PartHeader`] (flattened into the same
/// JSON object) and what the part holds.
pub trait PartManifest: Serialize + DeserializeOwned + Clone {
    /// The format every manifest of this kind carries (`"g3-embedding-part v1"`); manifests
    /// of other formats are not parts of this kind.
    const FORMAT: &'static str;
    /// What the parts are called in messages ("parts", "feature parts").
    const NOUN: &'static str;
    /// What differs between runs, for the message when parts of two runs are mixed
    /// ("shard count, inputs, model or kind").
    const RUN_FIELDS: &'static str;

    /// Which part of which run this is.
    fn header(&self) -> &PartHeader;
    /// Whether the parts' contents agree beyond their headers (the same embedding kind and
    /// dimension, text features or not), so that the two join.
    fn same_contents(&self, other: &Self) -> bool;
    /// How to make a missing part of `shards`, for the message naming it.
    fn how_to_make(shards: usize) -> String;
}

/// Every part of one split run, in shard order.
#[derive(Debug, Clone)]
pub struct PartSet<M> {
    /// (manifest path, manifest) by shard index.
    parts: BTreeMap<usize, (PathBuf, M)>,
}

/// `part-I-of-N.json`: the manifest file name of a shard.
pub fn is_manifest_name(name: &str) -> bool {
    name.starts_with("part-") && name.ends_with(".json")
}

impl<M: PartManifest> PartSet<M> {
    /// Reads one manifest, refusing another format.
    pub fn read_manifest(path: &Path) -> Result<M> {
        let text = std::fs::read(path).map_err(|source| DataError::io(path, source))?;
        let manifest: M = serde_json::from_slice(&text).map_err(|error| DataError::Part {
            path: path.to_owned(),
            message: format!("not a part manifest ({error})"),
        })?;
        let format = &manifest.header().format;
        if format != M::FORMAT {
            return Err(DataError::Part {
                path: path.to_owned(),
                message: format!("format {format:?}, expected {:?}", M::FORMAT),
            });
        }
        Ok(manifest)
    }

    /// The manifests of this kind in `directory` (others, and files of other formats, are
    /// left alone); none when the directory does not exist.
    pub fn manifests_in(directory: &Path) -> Result<Vec<(PathBuf, M)>> {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return Ok(Vec::new());
        };
        let mut manifests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| DataError::io(directory, source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_manifest_name(&name) {
                continue;
            }
            let path = entry.path();
            match Self::read_manifest(&path) {
                Ok(manifest) => manifests.push((path, manifest)),
                // A manifest of another kind of part shares the directory.
                Err(DataError::Part { message, .. }) if message.starts_with("format ") => {}
                Err(error) => return Err(error),
            }
        }
        manifests.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(manifests)
    }

    /// Joins `manifests` (path, manifest): all from one run, each shard once, none missing.
    /// `location` prefixes the message about missing parts (the directory they were
    /// looked for in), when given.
    pub fn join(manifests: Vec<(PathBuf, M)>, location: Option<&Path>) -> Result<Self> {
        let Some((first_path, first)) = manifests.first().cloned() else {
            return Err(DataError::Part {
                path: location.map(Path::to_owned).unwrap_or_default(),
                message: "no parts to join".into(),
            });
        };
        let mut parts: BTreeMap<usize, (PathBuf, M)> = BTreeMap::new();
        for (path, manifest) in manifests {
            if !(manifest.header().same_run(first.header()) && manifest.same_contents(&first)) {
                return Err(DataError::PartsOfDifferentRuns {
                    first: first_path,
                    other: path,
                    fields: M::RUN_FIELDS,
                });
            }
            let shard = manifest.header().work_shard();
            if let Some((other, _)) = parts.get(&shard.index) {
                return Err(DataError::PartGivenTwice {
                    shard,
                    first: other.clone(),
                    second: path,
                });
            }
            parts.insert(shard.index, (path, manifest));
        }
        let shards = first.header().shards;
        let missing: Vec<String> = (0..shards)
            .filter(|shard| !parts.contains_key(shard))
            .map(|index| {
                WorkShard {
                    index,
                    count: shards,
                }
                .part_name()
            })
            .collect();
        if !missing.is_empty() {
            return Err(DataError::MissingParts {
                location: location
                    .map(|path| format!("{}: ", path.display()))
                    .unwrap_or_default(),
                missing: missing.len(),
                shards,
                noun: M::NOUN,
                names: missing.join(", "),
                how_to_make: M::how_to_make(shards),
            });
        }
        Ok(PartSet { parts })
    }

    /// The parts in shard order: each manifest's path and content.
    pub fn parts(&self) -> impl Iterator<Item = (&Path, &M)> {
        self.parts
            .values()
            .map(|(path, manifest)| (path.as_path(), manifest))
    }

    /// The first part's manifest (every part agrees on the run's fields).
    pub fn first(&self) -> &M {
        &self
            .parts
            .values()
            .next()
            .expect("a part set is never empty")
            .1
    }

    /// How many shards the run had.
    pub fn shards(&self) -> usize {
        self.parts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct TestPart {
        #[serde(flatten)]
        header: PartHeader,
    }

    impl PartManifest for TestPart {
        const FORMAT: &'static str = "test-part v1";
        const NOUN: &'static str = "test parts";
        const RUN_FIELDS: &'static str = "shard count or inputs";
        fn header(&self) -> &PartHeader {
            &self.header
        }
        fn same_contents(&self, _other: &Self) -> bool {
            true
        }
        fn how_to_make(shards: usize) -> String {
            format!("Make each with --shard I/{shards}")
        }
    }

    fn part(shard: usize, shards: usize, inputs: &str) -> (PathBuf, TestPart) {
        (
            PathBuf::from(format!("part-{shard}-of-{shards}.json")),
            TestPart {
                header: PartHeader::new(
                    TestPart::FORMAT,
                    WorkShard {
                        index: shard,
                        count: shards,
                    },
                    inputs.into(),
                    10,
                    "model".into(),
                ),
            },
        )
    }

    #[test]
    fn joins_in_shard_order_and_names_what_is_wrong() {
        let set = PartSet::join(
            vec![part(2, 3, "a"), part(0, 3, "a"), part(1, 3, "a")],
            None,
        )
        .unwrap();
        let order: Vec<usize> = set
            .parts()
            .map(|(_, manifest)| manifest.header.shard)
            .collect();
        assert_eq!(order, [0, 1, 2]);
        assert_eq!(set.shards(), 3);

        let missing = PartSet::join(vec![part(1, 3, "a")], Some(Path::new("dir")))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("dir: missing 2 of 3 test parts: part-0-of-3, part-2-of-3. Make each with --shard I/3"),
            "{missing}"
        );
        let twice = PartSet::join(vec![part(0, 2, "a"), part(0, 2, "a")], None)
            .unwrap_err()
            .to_string();
        assert!(twice.contains("part 0 of 2 is given twice"), "{twice}");
        let mixed = PartSet::join(vec![part(0, 2, "a"), part(1, 2, "b")], None)
            .unwrap_err()
            .to_string();
        assert!(
            mixed.contains("come from different runs (shard count or inputs differ)"),
            "{mixed}"
        );
    }

    #[test]
    fn reads_manifests_of_its_kind_only() {
        let directory = tempfile::tempdir().unwrap();
        let (name, manifest) = part(0, 1, "a");
        std::fs::write(
            directory.path().join(&name),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let mut other = manifest;
        other.header.format = "other v1".into();
        std::fs::write(
            directory.path().join("part-0-of-2.json"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        std::fs::write(directory.path().join("part-1-of-2.json"), "{").unwrap();
        let error = PartSet::<TestPart>::manifests_in(directory.path())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("part-1-of-2.json: not a part manifest"),
            "{error}"
        );
        std::fs::remove_file(directory.path().join("part-1-of-2.json")).unwrap();
        let found = PartSet::<TestPart>::manifests_in(directory.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert!(
            PartSet::<TestPart>::manifests_in(&directory.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }
}

//! [`PhotoSet`]: the photos a command works on, in order, wherever they lie (a folder, a CSV
//! list of files, or tar archives), and [`WorkShard`]: one deterministic slice of them, so
//! that a long job splits across processes, GPUs and machines under any scheduler.

use std::ops::Range;
use std::path::{Path, PathBuf};

use g3_core::ImageInput;

use crate::error::{DataError, Result};
use crate::image_list::{list_image_names, list_images};
use crate::images::{ImageSource, TarShardImageSource};

/// Where the bytes of the photos come from.
enum PhotoBytes {
    /// One file per photo.
    Files(Vec<PathBuf>),
    /// Members of tar archives, looked up by id.
    Archives(TarShardImageSource),
}

/// An ordered list of photos, each with an id (what row files and metadata name it by).
///
/// | input | order | id |
/// |---|---|---|
/// | a folder | file names, byte order | the file name |
/// | a CSV list | its rows | the `path`, `IMG_ID` or `file` value |
/// | tar archives | archive order | the member's file name (`a/b/IMG_ID` → `IMG_ID`) |
/// | a CSV list and tar archives | its rows | the value, looked up in the archives |
pub struct PhotoSet {
    ids: Vec<String>,
    bytes: PhotoBytes,
}

impl PhotoSet {
    /// The photos of `input` (a folder or a CSV list; relative paths against `root`, else the
    /// CSV's directory) and/or `archives` (tar files, indexed once beside the first).
    pub fn open(input: Option<&Path>, root: Option<&Path>, archives: &[PathBuf]) -> Result<Self> {
        if !archives.is_empty() {
            let source = TarShardImageSource::open_beside(archives)?;
            let ids: Vec<String> = match input {
                None => source.ids().map(str::to_owned).collect(),
                Some(list) if list.is_dir() => {
                    return Err(DataError::io(
                        list,
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "with tar archives, the input must be a CSV list of ids, not a folder",
                        ),
                    ));
                }
                Some(list) => list_image_names(list)?
                    .into_iter()
                    .map(|name| archive_id(&source, name))
                    .collect(),
            };
            // Which member an ambiguous id means cannot be told: refuse before any work.
            for id in &ids {
                source.check_unambiguous(id)?;
            }
            return Ok(PhotoSet {
                ids,
                bytes: PhotoBytes::Archives(source),
            });
        }
        let input = input.ok_or_else(|| {
            DataError::io(
                "--input",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "give a folder, a CSV list or tar archives",
                ),
            )
        })?;
        let files = list_images(input, root)?;
        let ids = if input.is_dir() {
            files
                .iter()
                .map(|path| {
                    path.file_name()
                        .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
                })
                .collect()
        } else {
            list_image_names(input)?
        };
        Ok(PhotoSet {
            ids,
            bytes: PhotoBytes::Files(files),
        })
    }

    /// Number of photos.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of photo `index`.
    pub fn id(&self, index: usize) -> &str {
        &self.ids[index]
    }

    /// Where photo `index` is read from, for messages: its file, or its id in the archives.
    pub fn location(&self, index: usize) -> String {
        match &self.bytes {
            PhotoBytes::Files(files) => files[index].display().to_string(),
            PhotoBytes::Archives(_) => self.ids[index].clone(),
        }
    }

    /// The encoded bytes of photo `index`, named by its id. A missing file or member, or an
    /// id two archive members share, is an error naming it.
    pub fn read(&self, index: usize) -> Result<ImageInput> {
        match &self.bytes {
            PhotoBytes::Files(files) => {
                let path = &files[index];
                let bytes = std::fs::read(path).map_err(|error| DataError::io(path, error))?;
                Ok(ImageInput::from_bytes(self.ids[index].clone(), bytes))
            }
            PhotoBytes::Archives(source) => source.get(&self.ids[index]),
        }
    }

    /// A digest of the ids in order: the inputs' fingerprint, which every part of a split job
    /// records so that parts of different inputs are never joined.
    pub fn fingerprint(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(self.ids.len() as u64).to_le_bytes());
        for id in &self.ids {
            hasher.update(&(id.len() as u64).to_le_bytes());
            hasher.update(id.as_bytes());
        }
        hasher.finalize().to_hex()[..32].to_owned()
    }
}

/// A CSV value as an archive id: itself when the archives hold it, else with `/` as `_` (how
/// G3 names MP16-Pro's photos inside its archive), else its file name (the reference keys
/// `a/b/IMG_ID` members by `IMG_ID`).
fn archive_id(source: &TarShardImageSource, name: String) -> String {
    if source.contains(&name) {
        return name;
    }
    let underscored = name.replace('/', "_");
    if source.contains(&underscored) {
        return underscored;
    }
    match Path::new(&name).file_name() {
        Some(file) if file.len() != name.len() => file.to_string_lossy().into_owned(),
        _ => name,
    }
}

/// One of `count` slices of a job: the photos at positions `[index·n/count, (index+1)·n/count)`
/// of the input order, so that every photo belongs to exactly one shard and the shards,
/// joined in order, are the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkShard {
    /// Which slice, from 0.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl WorkShard {
    /// The whole job as one shard.
    pub const WHOLE: WorkShard = WorkShard { index: 0, count: 1 };

    /// Parses `I/N` (0 ≤ I < N).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let invalid = || format!("{text:?} is not a shard I/N with 0 <= I < N (for example 0/4)");
        let (index, count) = text.split_once('/').ok_or_else(invalid)?;
        let index: usize = index.trim().parse().map_err(|_| invalid())?;
        let count: usize = count.trim().parse().map_err(|_| invalid())?;
        if count == 0 || index >= count {
            return Err(invalid());
        }
        Ok(WorkShard { index, count })
    }

    /// The shard a scheduler gave this process, when no `--shard` was given: a Slurm job
    /// array (`SLURM_ARRAY_TASK_ID` counted from `SLURM_ARRAY_TASK_MIN`, of
    /// `SLURM_ARRAY_TASK_COUNT`), or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, of
    /// `count`, which the Job's `completions` sets and the pod does not see). `None` outside
    /// both.
    pub fn from_environment(count: Option<usize>) -> std::result::Result<Option<Self>, String> {
        let variable = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .map(|value| {
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("{name}={value:?} is not a number"))
                })
                .transpose()
        };
        let (index, count) = if let Some(task) = variable("SLURM_ARRAY_TASK_ID")? {
            let first = variable("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let tasks = match count {
                Some(count) => count,
                None => variable("SLURM_ARRAY_TASK_COUNT")?.ok_or(
                    "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT: pass --shards N",
                )?,
            };
            let index = task.checked_sub(first).ok_or_else(|| {
                format!("SLURM_ARRAY_TASK_ID {task} is below SLURM_ARRAY_TASK_MIN {first}")
            })?;
            (index, tasks)
        } else if let Some(index) = variable("JOB_COMPLETION_INDEX")? {
            let count = count
                .ok_or("JOB_COMPLETION_INDEX is set: pass --shards N (the Job's completions)")?;
            (index, count)
        } else {
            return Ok(None);
        };
        WorkShard::parse(&format!("{index}/{count}")).map(Some)
    }

    /// The positions of this shard's items among `items`.
    pub fn range(&self, items: usize) -> Range<usize> {
        let bound = |shard: usize| (items as u128 * shard as u128 / self.count as u128) as usize;
        bound(self.index)..bound(self.index + 1)
    }

    /// `part-I-of-N`: the stem of this shard's output files.
    pub fn part_name(&self) -> String {
        format!("part-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for WorkShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_item_once_in_order() {
        for items in [0, 1, 7, 100, 4_120_000] {
            for count in [1, 2, 3, 7, 64] {
                let mut next = 0;
                for index in 0..count {
                    let range = WorkShard { index, count }.range(items);
                    assert_eq!(range.start, next);
                    next = range.end;
                }
                assert_eq!(next, items);
            }
        }
    }

    #[test]
    fn shard_specs_parse_or_say_why_not() {
        assert_eq!(
            WorkShard::parse("2/5"),
            Ok(WorkShard { index: 2, count: 5 })
        );
        for bad in ["5/5", "1", "a/3", "0/0", "-1/2"] {
            assert!(WorkShard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(WorkShard { index: 3, count: 8 }.part_name(), "part-3-of-8");
    }
}

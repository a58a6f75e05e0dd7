//! A repository's file listing at one commit: what lets a fetch find a published file by its
//! name wherever the authors put it, instead of guessing a path.
//!
//! Online the hub answers `GET {endpoint}/api/{models|datasets}/{id}/revision/{revision}`
//! (what `huggingface_hub`'s `model_info` reads): the commit (`sha`) and every file
//! (`siblings[].rfilename`). Offline the snapshot in the cache is listed instead.

use std::path::Path;

use serde::Deserialize;

/// The files of a repository at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoListing {
    /// The commit the revision pointed to; `None` for files placed by hand in the cache
    /// (`snapshots/local/`), which belong to no known commit.
    pub commit: Option<String>,
    /// Every file's path in the repository (`/`-separated), sorted.
    pub files: Vec<String>,
    /// Where the listing came from: the hub, or the cache when the hub could not be asked.
    pub source: ListingSource,
}

/// Where a [`RepoListing`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingSource {
    /// The hub's answer for the revision.
    Hub,
    /// A snapshot in the local cache (offline, or the hub unreachable).
    Cache,
}

impl RepoListing {
    /// The files whose last path component is `name` (`g3.pth` finds `g3.pth` and
    /// `checkpoints/g3.pth`).
    pub fn named(&self, name: &str) -> Vec<&str> {
        self.files
            .iter()
            .map(String::as_str)
            .filter(|file| file.rsplit('/').next() == Some(name))
            .collect()
    }

    /// The files whose name ends with `.{extension}`.
    pub fn with_extension(&self, extension: &str) -> Vec<&str> {
        let suffix = format!(".{extension}");
        self.files
            .iter()
            .map(String::as_str)
            .filter(|file| {
                let name = file.rsplit('/').next().unwrap_or(file);
                name.len() > suffix.len() && name.ends_with(&suffix)
            })
            .collect()
    }

    /// Whether the repository has exactly the path `file`.
    pub fn contains(&self, file: &str) -> bool {
        self.files
            .binary_search_by(|path| path.as_str().cmp(file))
            .is_ok()
    }

    /// The commit for messages: its hash, or "files placed by hand".
    pub fn commit_label(&self) -> String {
        match &self.commit {
            Some(commit) => format!("commit {commit}"),
            None => "files placed by hand".to_owned(),
        }
    }
}

/// The part of the hub's repository info that a listing needs.
#[derive(Deserialize)]
pub(crate) struct RepoInfo {
    pub(crate) sha: String,
    #[serde(default)]
    pub(crate) siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
pub(crate) struct Sibling {
    pub(crate) rfilename: String,
}

/// Every file under `directory` (following the cache's symlinks), as sorted `/`-separated
/// paths relative to it.
pub(crate) fn list_directory(directory: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file()
                && let Ok(relative) = path.strip_prefix(directory)
            {
                let parts: Vec<String> = relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect();
                files.push(parts.join("/"));
            }
        }
    }
    files.sort();
    files
}

/// A revision as one URL path segment (a branch may hold `/`).
pub(crate) fn encode_revision(revision: &str) -> String {
    let mut encoded = String::with_capacity(revision.len());
    for byte in revision.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(files: &[&str]) -> RepoListing {
        let mut files: Vec<String> = files.iter().map(|file| (*file).to_owned()).collect();
        files.sort();
        RepoListing {
            commit: Some("c".repeat(40)),
            files,
            source: ListingSource::Hub,
        }
    }

    #[test]
    fn files_are_found_by_name_or_extension_wherever_they_sit() {
        let listing = listing(&[
            "README.md",
            "g3.pth",
            "index/g3.index",
            "old/g3.index.bak",
            ".index",
            "checkpoints/other.pth",
        ]);
        assert_eq!(listing.named("g3.pth"), ["g3.pth"]);
        assert_eq!(listing.with_extension("index"), ["index/g3.index"]);
        assert_eq!(
            listing.with_extension("pth"),
            ["checkpoints/other.pth", "g3.pth"]
        );
        assert!(listing.contains("index/g3.index"));
        assert!(!listing.contains("g3.index"));
        assert!(listing.named("missing.bin").is_empty());
    }

    #[test]
    fn revisions_are_one_path_segment() {
        assert_eq!(encode_revision("main"), "main");
        assert_eq!(encode_revision("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_revision("v1.0"), "v1.0");
    }

    #[test]
    fn a_snapshot_directory_lists_relative_paths() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("index")).unwrap();
        std::fs::write(root.path().join("g3.pth"), b"w").unwrap();
        std::fs::write(root.path().join("index/g3.index"), b"i").unwrap();
        assert_eq!(list_directory(root.path()), ["g3.pth", "index/g3.index"]);
    }
}

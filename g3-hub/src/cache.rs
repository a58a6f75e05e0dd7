//! The HF hub cache on disk, laid out as `huggingface_hub` lays it out, so both share files:
//!
//! ```text
//! <cache>/models--owner--name/
//!     blobs/<etag>                  the content, named by its ETag (sha256 for LFS files)
//!     refs/main                     the commit `main` pointed to when last fetched
//!     snapshots/<commit>/<file>     a relative symlink to ../../blobs/<etag>
//! ```
//!
//! Reading the cache needs no network.

use std::path::{Path, PathBuf};

use crate::error::{HubError, Result};
use crate::listing::{ListingSource, RepoListing, list_directory};
use crate::repo::{Repo, is_commit_hash};

/// The snapshot name under which a file placed by hand is found (see
/// [`HubCache::manual_location`]).
const MANUAL_SNAPSHOT: &str = "local";

/// An HF hub cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// The cache at `root` (it need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HubCache { root: root.into() }
    }

    /// The cache `huggingface_hub` uses: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`.
    pub fn from_env() -> Self {
        let variable = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        let root = if let Some(cache) = variable("HF_HUB_CACHE") {
            PathBuf::from(cache)
        } else if let Some(home) = variable("HF_HOME") {
            PathBuf::from(home).join("hub")
        } else {
            match variable("HOME") {
                Some(home) => PathBuf::from(home).join(".cache/huggingface/hub"),
                None => PathBuf::from(".cache/huggingface/hub"),
            }
        };
        HubCache { root }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository's directory (`models--owner--name`).
    pub fn repo_dir(&self, repo: &Repo) -> PathBuf {
        self.root.join(repo.cache_folder())
    }

    /// The commit the repository's revision resolves to in the cache: the revision itself
    /// when it is a commit hash, else what `refs/<revision>` says.
    pub fn commit(&self, repo: &Repo) -> Option<String> {
        if is_commit_hash(repo.revision()) {
            return Some(repo.revision().to_owned());
        }
        let reference = self.repo_dir(repo).join("refs").join(repo.revision());
        let commit = std::fs::read_to_string(reference).ok()?;
        let commit = commit.trim();
        (!commit.is_empty()).then(|| commit.to_owned())
    }

    /// The snapshot directory of the revision's commit, if it was fetched.
    pub fn snapshot_dir(&self, repo: &Repo) -> Option<PathBuf> {
        let commit = self.commit(repo)?;
        let directory = self.repo_dir(repo).join("snapshots").join(commit);
        directory.is_dir().then_some(directory)
    }

    /// `file` of the repository in the cache: in the snapshot of the revision's commit, or,
    /// for the default revision, in any snapshot that holds it (the newest first), which
    /// includes files placed by hand at [`manual_location`](Self::manual_location).
    pub fn cached_file(&self, repo: &Repo, file: &str) -> Option<PathBuf> {
        if let Some(directory) = self.snapshot_dir(repo) {
            let path = directory.join(file);
            if path.is_file() {
                return Some(path);
            }
        }
        if repo.revision() != "main" {
            return None;
        }
        let snapshots = std::fs::read_dir(self.repo_dir(repo).join("snapshots")).ok()?;
        snapshots
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join(file)))
            .filter(|path| path.is_file())
            .max_by_key(|path| {
                std::fs::metadata(path)
                    .and_then(|metadata| metadata.modified())
                    .ok()
            })
    }

    /// Where to put `file` by hand (copied from another machine) so that
    /// [`cached_file`](Self::cached_file) finds it: `snapshots/local/<file>`.
    pub fn manual_location(&self, repo: &Repo, file: &str) -> PathBuf {
        self.repo_dir(repo)
            .join("snapshots")
            .join(MANUAL_SNAPSHOT)
            .join(file)
    }

    /// The repository's files as the cache holds them: the snapshot of the revision's commit,
    /// else (for the default revision) the snapshot of files placed by hand. `None` when
    /// neither exists.
    pub fn cached_listing(&self, repo: &Repo) -> Option<RepoListing> {
        if let Some(directory) = self.snapshot_dir(repo) {
            return Some(RepoListing {
                commit: self.commit(repo),
                files: list_directory(&directory),
                source: ListingSource::Cache,
            });
        }
        let manual = self.repo_dir(repo).join("snapshots").join(MANUAL_SNAPSHOT);
        (repo.revision() == "main" && manual.is_dir()).then(|| RepoListing {
            commit: None,
            files: list_directory(&manual),
            source: ListingSource::Cache,
        })
    }

    /// The directory of files placed by hand (see [`manual_location`](Self::manual_location)).
    pub fn manual_directory(&self, repo: &Repo) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(MANUAL_SNAPSHOT)
    }

    /// The blob named `etag`.
    pub(crate) fn blob_path(&self, repo: &Repo, etag: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(etag)
    }

    /// Where a blob's download grows until it is verified.
    pub(crate) fn incomplete_path(&self, repo: &Repo, etag: &str) -> PathBuf {
        self.repo_dir(repo)
            .join("blobs")
            .join(format!("{etag}.incomplete"))
    }

    /// Records that `revision` pointed to `commit` (atomically), unless the revision is the
    /// commit itself.
    pub(crate) fn write_ref(&self, repo: &Repo, commit: &str) -> Result<()> {
        if repo.revision() == commit {
            return Ok(());
        }
        let path = self.repo_dir(repo).join("refs").join(repo.revision());
        if std::fs::read_to_string(&path).is_ok_and(|current| current.trim() == commit) {
            return Ok(());
        }
        create_parent(&path)?;
        g3_core::atomic::write_atomically(&path, commit.as_bytes()).map_err(|error| HubError::Io {
            path: path.clone(),
            source: std::io::Error::other(error.to_string()),
        })
    }

    /// Points `snapshots/<commit>/<file>` at the blob `etag` (a relative symlink where the
    /// system has them, as `huggingface_hub` makes, else a copy) and returns its path.
    pub(crate) fn link_snapshot(
        &self,
        repo: &Repo,
        commit: &str,
        file: &str,
        etag: &str,
    ) -> Result<PathBuf> {
        let link = self
            .repo_dir(repo)
            .join("snapshots")
            .join(commit)
            .join(file);
        create_parent(&link)?;
        let blob = self.blob_path(repo, etag);
        if link.is_file() && same_file(&link, &blob) {
            return Ok(link);
        }
        // A stale link (an older blob) or a broken one is replaced.
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).map_err(HubError::io(&link))?;
        }
        // From snapshots/<commit>/<file> up to the repository directory.
        let depth = 2 + file.matches('/').count();
        let target = Path::new(&"../".repeat(depth)).join("blobs").join(etag);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &link).map_err(HubError::io(&link))?;
        #[cfg(not(unix))]
        {
            let _ = target;
            std::fs::copy(&blob, &link).map_err(HubError::io(&link))?;
        }
        Ok(link)
    }
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(HubError::io(parent)),
        None => Ok(()),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_through_refs_or_in_a_snapshot_placed_by_hand() {
        let root = tempfile::tempdir().unwrap();
        let cache = HubCache::new(root.path());
        let repo = Repo::model("owner/name").unwrap();
        assert_eq!(cache.cached_file(&repo, "g3.pth"), None);

        let manual = cache.manual_location(&repo, "g3.pth");
        std::fs::create_dir_all(manual.parent().unwrap()).unwrap();
        std::fs::write(&manual, b"weights").unwrap();
        assert_eq!(cache.cached_file(&repo, "g3.pth"), Some(manual.clone()));
        // A pinned revision is only what that commit's snapshot holds.
        let pinned = repo.clone().with_revision(&"a".repeat(40));
        assert_eq!(cache.cached_file(&pinned, "g3.pth"), None);

        let commit = "b".repeat(40);
        let blobs = cache.repo_dir(&repo).join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("etag1"), b"fetched").unwrap();
        cache.write_ref(&repo, &commit).unwrap();
        let link = cache
            .link_snapshot(&repo, &commit, "index/g3.index", "etag1")
            .unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"fetched");
        assert_eq!(cache.commit(&repo), Some(commit));
        assert_eq!(cache.cached_file(&repo, "index/g3.index"), Some(link));
        // The commit's snapshot lacks g3.pth: the hand-placed copy is still found.
        assert_eq!(cache.cached_file(&repo, "g3.pth"), Some(manual));
    }
}

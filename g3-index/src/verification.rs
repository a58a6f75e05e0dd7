//! The stamp of a database's verified state (`verified.json`), so that opening it needs no
//! checksum pass.
//!
//! Hashing every byte on every open costs a full read of the database (G3's is 38 GB), and
//! the memory maps lose their point. So the digests are checked when a database is written,
//! and on demand (`Database::verify`); afterwards the stamp records, for each file, what the
//! file system says about it: size, modification and status-change times, inode. An open
//! compares those (a `stat` per file) and hashes only the files whose entry differs: a file
//! truncated, rewritten or replaced since (even with its modification time set back, which
//! changes the status-change time) is hashed again and refused if its digest is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The stamp's file name inside a database directory.
pub(crate) const STAMP: &str = "verified.json";

/// What the file system said about each file when its digest last matched the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    /// blake3 of the manifest the files were verified against.
    manifest: String,
    files: BTreeMap<String, FileState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileState {
    bytes: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
    device: u64,
}

impl Stamp {
    /// The current state of `names` in `directory`, verified against `manifest` (its bytes).
    pub(crate) fn of_files<'a>(
        directory: &Path,
        manifest: &[u8],
        names: impl IntoIterator<Item = &'a str>,
    ) -> std::io::Result<Self> {
        let files = names
            .into_iter()
            .map(|name| Ok((name.to_owned(), file_state(&directory.join(name))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Stamp {
            manifest: blake3::hash(manifest).to_hex().to_string(),
            files,
        })
    }

    /// The stamp in `directory` if it was made for this `manifest`; `None` when absent,
    /// unreadable or made for another manifest.
    pub(crate) fn read(directory: &Path, manifest: &[u8]) -> Option<Self> {
        let text = std::fs::read(directory.join(STAMP)).ok()?;
        let stamp: Stamp = serde_json::from_slice(&text).ok()?;
        (stamp.manifest == blake3::hash(manifest).to_hex().as_str()).then_some(stamp)
    }

    /// Whether `name` in `directory` is in the state it was verified in.
    pub(crate) fn vouches_for(&self, directory: &Path, name: &str) -> bool {
        match (self.files.get(name), file_state(&directory.join(name))) {
            (Some(recorded), Ok(current)) => *recorded == current,
            _ => false,
        }
    }

    /// Writes the stamp into `directory` atomically.
    pub(crate) fn write(&self, directory: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("a stamp always serialises");
        g3_core::atomic::write_atomically(&directory.join(STAMP), &text)
            .map_err(|error| std::io::Error::other(error.to_string()))
    }
}

#[cfg(unix)]
fn file_state(path: &Path) -> std::io::Result<FileState> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    let nanoseconds =
        |seconds: i64, nanos: i64| i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    Ok(FileState {
        bytes: metadata.len(),
        modified_ns: nanoseconds(metadata.mtime(), metadata.mtime_nsec()),
        changed_ns: nanoseconds(metadata.ctime(), metadata.ctime_nsec()),
        inode: metadata.ino(),
        device: metadata.dev(),
    })
}

#[cfg(not(unix))]
fn file_state(path: &Path) -> std::io::Result<FileState> {
    let metadata = std::fs::metadata(path)?;
    let modified = metadata
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as i128);
    Ok(FileState {
        bytes: metadata.len(),
        modified_ns: modified,
        changed_ns: modified,
        inode: 0,
        device: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_loses_the_stamp() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("keys.u64");
        std::fs::write(&file, [1u8; 16]).unwrap();
        let stamp = Stamp::of_files(directory.path(), b"manifest", ["keys.u64"]).unwrap();
        stamp.write(directory.path()).unwrap();
        let read = Stamp::read(directory.path(), b"manifest").unwrap();
        assert!(read.vouches_for(directory.path(), "keys.u64"));
        assert!(Stamp::read(directory.path(), b"another manifest").is_none());
        assert!(!read.vouches_for(directory.path(), "text.utf8"));

        // Same size, same modification time: the status-change time or inode still differ.
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, [2u8; 16]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert!(!read.vouches_for(directory.path(), "keys.u64"));
    }
}

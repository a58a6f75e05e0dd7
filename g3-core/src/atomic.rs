//! Files that appear complete or not at all, for every crate and command that writes one.
//!
//! One durability rule: the data goes to a temporary file beside the target (so the rename
//! stays on one file system), the file is synced, renamed over the target, and the directory
//! is synced so the rename itself survives a power loss. A writer dropped before
//! [`AtomicFile::commit`] (an error, Ctrl-C) deletes its temporary file and leaves the target
//! as it was.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary file in the directory of its target; see the [module documentation](self).
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temporary: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary file for `target` (whose directory must exist).
    pub fn create(target: &Path) -> Result<Self> {
        let temporary = tempfile::Builder::new()
            .prefix(".g3-")
            .suffix(".tmp")
            .tempfile_in(directory_of(target))
            .map_err(Error::io(target))?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temporary,
        })
    }

    /// The temporary file, to write to (or to clone for a buffered writer).
    pub fn file(&self) -> &File {
        self.temporary.as_file()
    }

    /// The temporary file's path, for libraries that write to a path rather than to a file.
    pub fn temporary_path(&self) -> &Path {
        self.temporary.path()
    }

    /// Where the file goes on [`commit`](Self::commit).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the data, renames the file over its target (replacing any old file) and syncs
    /// the directory.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        // Synced through its path: a library writing by path may have replaced the file.
        File::open(self.temporary.path())
            .and_then(|file| file.sync_all())
            .map_err(Error::io(&target))?;
        self.temporary
            .persist(&target)
            .map_err(|error| Error::io(&target)(error.error))?;
        sync_directory(directory_of(&target)).map_err(Error::io(&target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.temporary.write(buffer)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temporary.flush()
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(target)?;
    file.write_all(bytes).map_err(Error::io(target))?;
    file.commit()
}

/// Syncs a directory, so that renames and new entries in it survive a power loss. A no-op
/// where directories cannot be opened as files (Windows).
pub fn sync_directory(directory: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}

/// The directory `path` lives in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_changes_only_on_commit() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("out.txt");
        std::fs::write(&target, "old").unwrap();
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");

        let abandoned = AtomicFile::create(&target).unwrap();
        std::fs::write(abandoned.temporary_path(), "half").unwrap();
        drop(abandoned);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_file_written_by_path_is_committed() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("model.bin");
        let file = AtomicFile::create(&target).unwrap();
        // A library that replaces the file at the path instead of writing into it.
        std::fs::remove_file(file.temporary_path()).unwrap();
        std::fs::write(file.temporary_path(), b"weights").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"weights");
        write_atomically(&target, b"again").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"again");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let error = write_atomically(Path::new("/nonexistent-g3-dir/out.txt"), b"x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent-g3-dir/out.txt"), "{error}");
    }
}

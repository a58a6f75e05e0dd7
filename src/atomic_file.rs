//! Files that appear complete or not at all: written to a temporary file beside the target,
//! synced, then renamed over it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary file in the directory of `target` (so the final rename stays on one file
/// system). Dropped without [`AtomicFile::commit`], it is deleted.
pub(crate) struct AtomicFile {
    target: PathBuf,
    temporary: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary file for `target`.
    pub(crate) fn create(target: &Path) -> Result<Self> {
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temporary = tempfile::Builder::new()
            .prefix(".g3-")
            .suffix(".tmp")
            .tempfile_in(directory)
            .map_err(|source| io_error(target, source))?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temporary,
        })
    }

    /// The temporary file, to write to.
    pub(crate) fn file(&self) -> &std::fs::File {
        self.temporary.as_file()
    }

    /// Syncs the data to disk and renames the file to its target, replacing any old file.
    pub(crate) fn commit(self) -> Result<()> {
        self.temporary
            .as_file()
            .sync_all()
            .map_err(|source| io_error(&self.target, source))?;
        self.temporary
            .persist(&self.target)
            .map_err(|error| io_error(&self.target, error.error))?;
        Ok(())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

//! Files that appear complete or not at all: written under a temporary name beside the target
//! (so the rename stays on one file system), then renamed over it.

use std::path::Path;

use crate::error::AlignError;

/// A fresh temporary path in the directory of `target`, deleted when dropped unless
/// [`rename_into_place`] moved it.
pub(crate) fn temporary_sibling(target: &Path) -> Result<tempfile::TempPath, AlignError> {
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".g3-")
        .suffix(".tmp")
        .tempfile_in(directory)
        .map(tempfile::NamedTempFile::into_temp_path)
        .map_err(|source| AlignError::Io {
            path: target.to_path_buf(),
            source,
        })
}

/// Renames a finished temporary file over `target`.
pub(crate) fn rename_into_place(
    temporary: tempfile::TempPath,
    target: &Path,
) -> Result<(), AlignError> {
    temporary.persist(target).map_err(|error| AlignError::Io {
        path: target.to_path_buf(),
        source: error.error,
    })
}

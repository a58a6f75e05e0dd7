//! Fixed-width columns that live either in memory or in a memory-mapped file.

use std::fs::File;
use std::marker::PhantomData;
use std::path::Path;

use bytemuck::Pod;
use memmap2::Mmap;

use crate::error::{IndexError, Result};

/// A slice of `T` owned in memory or borrowed from a read-only memory map.
pub(crate) enum Column<T: Pod> {
    Owned(Vec<T>),
    Mapped { map: Mmap, marker: PhantomData<T> },
}

impl<T: Pod> Column<T> {
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Column::Owned(values) => values,
            // `map_file` checked size and alignment when the map was made.
            Column::Mapped { map, .. } => bytemuck::cast_slice(map),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    /// Maps `path`, checks that it holds a whole number of `T` and, unless `expected_digest`
    /// is `None` (the file was verified before and has not changed since, see
    /// `crate::verification`), that its blake3 digest is `expected_digest`, all before any
    /// value is read through it.
    pub(crate) fn map_file(path: &Path, expected_digest: Option<&str>) -> Result<Self> {
        let map = map_verified(path, expected_digest)?;
        let width = std::mem::size_of::<T>();
        if map.len() % width != 0 {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "{} bytes is not a whole number of {width}-byte values",
                    map.len()
                ),
            ));
        }
        if bytemuck::try_cast_slice::<u8, T>(&map).is_err() {
            return Err(IndexError::corrupt(path, "the memory map is misaligned"));
        }
        Ok(Column::Mapped {
            map,
            marker: PhantomData,
        })
    }
}

/// Maps a whole file read-only and verifies its blake3 digest against the manifest's (unless
/// `expected_digest` is `None`: verified earlier and unchanged since).
///
/// The digest is computed over the very mapping that is handed back, so what was verified
/// is what is used.
pub(crate) fn map_verified(path: &Path, expected_digest: Option<&str>) -> Result<Mmap> {
    let file = File::open(path).map_err(IndexError::io(path))?;
    let length = file.metadata().map_err(IndexError::io(path))?.len();
    // SAFETY: the map is read-only. Like every memory map, it assumes nobody truncates or
    // rewrites the file while it is open; databases are written to a new directory and
    // renamed into place, never modified where they lie. (memmap2 maps empty files too.)
    let map = unsafe { Mmap::map(&file) }.map_err(IndexError::io(path))?;
    if map.len() as u64 != length {
        return Err(IndexError::corrupt(
            path,
            "the file changed while it was being mapped",
        ));
    }
    let Some(expected_digest) = expected_digest else {
        return Ok(map);
    };
    let digest = digest_bytes(&map);
    if digest != expected_digest {
        return Err(IndexError::corrupt(
            path,
            format!(
                "checksum mismatch (blake3 {digest}, manifest says {expected_digest}): the file is corrupted or was changed after the database was written"
            ),
        ));
    }
    Ok(map)
}

/// The blake3 digest of `bytes` as lowercase hex, hashed on all cores for large inputs.
pub(crate) fn digest_bytes(bytes: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    if bytes.len() >= 1 << 20 {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
    hasher.finalize().to_hex().to_string()
}

/// The size and blake3 digest of a file, hashed through a memory map on all cores.
pub(crate) fn digest_file(path: &Path) -> Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap_rayon(path)
        .map_err(IndexError::io(path))?;
    Ok((hasher.count(), hasher.finalize().to_hex().to_string()))
}

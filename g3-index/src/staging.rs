//! A database directory being written: every file goes into a staging directory beside the
//! target with its size and digest recorded as it is written; committing writes the manifest
//! and the verification stamp and renames the directory into place, so a crash never leaves
//! a half-written database and nothing is read back to be hashed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use g3_core::atomic::sync_directory;

use crate::database::{FileRecord, MANIFEST, Manifest, is_replaceable, replace_directory};
use crate::error::{IndexError, Result};
use crate::verification::Stamp;

pub(crate) struct StagedDatabase {
    target: PathBuf,
    parent: PathBuf,
    staging: tempfile::TempDir,
    files: BTreeMap<String, FileRecord>,
}

impl StagedDatabase {
    /// Starts writing the database `target` (an existing `target` must be a database or an
    /// empty directory; it is replaced only on commit).
    pub(crate) fn create(target: &Path) -> Result<Self> {
        let parent = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if target.exists() && !is_replaceable(target) {
            return Err(IndexError::InvalidConfig(format!(
                "{} exists and is not a g3 database or an empty directory; refusing to replace it",
                target.display()
            )));
        }
        let staging = tempfile::Builder::new()
            .prefix(".g3-index-")
            .tempdir_in(&parent)
            .map_err(IndexError::io(&parent))?;
        Ok(StagedDatabase {
            target: target.to_path_buf(),
            parent,
            staging,
            files: BTreeMap::new(),
        })
    }

    /// Where the staged file `name` lives until commit.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.staging.path().join(name)
    }

    /// Writes the file `name` whole.
    pub(crate) fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut file = self.create_file(name)?;
        file.write(bytes)?;
        self.add(name, file.finish()?);
        Ok(())
    }

    /// A file to write a piece at a time, hashed as it goes; [`add`](Self::add) its record
    /// once finished.
    pub(crate) fn create_file(&self, name: &str) -> Result<HashedFile> {
        HashedFile::create(&self.path(name))
    }

    /// Records a finished file.
    pub(crate) fn add(&mut self, name: &str, record: FileRecord) {
        self.files.insert(name.to_owned(), record);
    }

    /// Records a file that a library wrote by path (usearch), hashing it once.
    pub(crate) fn add_written(&mut self, name: &str) -> Result<()> {
        let path = self.path(name);
        fs::File::open(&path)
            .and_then(|file| file.sync_all())
            .map_err(IndexError::io(&path))?;
        let (bytes, blake3) = crate::column::digest_file(&path)?;
        self.add(name, FileRecord { bytes, blake3 });
        Ok(())
    }

    /// Writes the manifest (with the recorded files) and the stamp, and moves the directory
    /// into place, durably.
    pub(crate) fn commit(self, mut manifest: Manifest) -> Result<()> {
        manifest.files = self.files;
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest always serialises");
        let mut file = HashedFile::create(&self.staging.path().join(MANIFEST))?;
        file.write(&text)?;
        file.finish()?;
        // Every file was hashed as it was written: the stamp vouches for them from here on.
        let stamp = Stamp::of_files(
            self.staging.path(),
            &text,
            manifest.files.keys().map(String::as_str),
        )
        .map_err(IndexError::io(self.staging.path()))?;
        stamp
            .write(self.staging.path())
            .map_err(IndexError::io(self.staging.path()))?;
        sync_directory(self.staging.path()).map_err(IndexError::io(self.staging.path()))?;
        let staged = self.staging.keep();
        let result = replace_directory(&staged, &self.target)
            .and_then(|()| sync_directory(&self.parent).map_err(IndexError::io(&self.parent)));
        if result.is_err() {
            let _ = fs::remove_dir_all(&staged);
        }
        result
    }
}

/// A file written through a buffer, its blake3 digest computed on the way.
pub(crate) struct HashedFile {
    path: PathBuf,
    writer: BufWriter<fs::File>,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl HashedFile {
    fn create(path: &Path) -> Result<Self> {
        let file = fs::File::create(path).map_err(IndexError::io(path))?;
        Ok(HashedFile {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() >= 1 << 20 {
            self.hasher.update_rayon(bytes);
        } else {
            self.hasher.update(bytes);
        }
        self.bytes += bytes.len() as u64;
        self.writer
            .write_all(bytes)
            .map_err(IndexError::io(&self.path))
    }

    /// Flushes and syncs the file; its size and digest.
    pub(crate) fn finish(self) -> Result<FileRecord> {
        let file = self.writer.into_inner().map_err(|error| IndexError::Io {
            path: self.path.clone(),
            source: error.into_error(),
        })?;
        file.sync_all().map_err(IndexError::io(&self.path))?;
        Ok(FileRecord {
            bytes: self.bytes,
            blake3: self.hasher.finalize().to_hex().to_string(),
        })
    }
}

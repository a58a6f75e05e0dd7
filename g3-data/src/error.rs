//! What can go wrong reading data files.

use std::path::PathBuf;

/// Errors of g3-data. Every error about a file names it, and the line when there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The header lacks a column the reader needs.
    #[error("{path}: the header has no {column} column (found: {found})", path = path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column looked for.
        column: String,
        /// The columns the header has.
        found: String,
    },
    /// A row is malformed: a bad number, a wrong field count, invalid UTF-8.
    #[error("{path}:{line}: {message}", path = path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong, naming the column when one is at fault.
        message: String,
    },
    /// A file that must hold records holds none.
    #[error("{path}: no records", path = path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Two archive members have the same id: which one is meant cannot be told.
    #[error(
        "image id {image_id} is held by more than one archive member ({places}): ids must be unique, remove or rename the duplicates"
    )]
    DuplicateImageId {
        /// The id.
        image_id: String,
        /// Where each member lies.
        places: String,
    },
    /// An image could not be decoded (corrupt, unsupported, or over the size limits).
    #[error("{image_id}: {message}")]
    Decode {
        /// The image's id.
        image_id: String,
        /// The decoder's reason.
        message: String,
    },
    /// A part of a split run that cannot be read as one (bad JSON, another format).
    #[error("{path}: {message}", path = path.display())]
    Part {
        /// The part's manifest.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Parts of two different runs were given to one join: delete the stale ones, or give
    /// the parts of one run only.
    #[error(
        "{first} and {other} come from different runs ({fields} differ): parts join only with parts of the same run",
        first = first.display(),
        other = other.display()
    )]
    PartsOfDifferentRuns {
        /// The first part's manifest.
        first: PathBuf,
        /// The part that does not match it.
        other: PathBuf,
        /// What differs between runs.
        fields: &'static str,
    },
    /// The same shard was given twice: give each part once.
    #[error(
        "part {index} of {count} is given twice: {first} and {second}",
        index = shard.index,
        count = shard.count,
        first = first.display(),
        second = second.display()
    )]
    PartGivenTwice {
        /// The shard.
        shard: crate::WorkShard,
        /// One of its manifests.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// Shards of a split run have not finished (or were not given): run them, then join.
    #[error("{location}missing {missing} of {shards} {noun}: {names}. {how_to_make}")]
    MissingParts {
        /// Where the parts were looked for (`"DIR: "`), or nothing.
        location: String,
        /// How many are missing.
        missing: usize,
        /// How many shards the run has.
        shards: usize,
        /// What the parts are called.
        noun: &'static str,
        /// The missing parts' names (`part-1-of-3, part-2-of-3`).
        names: String,
        /// How to make them.
        how_to_make: String,
    },
    /// An error of a shared file format or the asset cache (a missing asset, a CSV of
    /// points, an atomic write).
    #[error(transparent)]
    Core(#[from] g3_core::Error),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A csv error at the line a user sees (the file is scanned again for the exact line).
    pub(crate) fn csv(path: impl Into<PathBuf>, error: &csv::Error) -> Self {
        let path = path.into();
        let line = error
            .position()
            .map_or(1, |position| line_of(&path, position));
        DataError::csv_at(path, error, line)
    }

    /// A csv error at a line the caller already knows.
    pub(crate) fn csv_at(path: impl Into<PathBuf>, error: &csv::Error, line: u64) -> Self {
        let path = path.into();
        if let csv::ErrorKind::Io(io) = error.kind() {
            return DataError::Io {
                path,
                source: std::io::Error::new(io.kind(), io.to_string()),
            };
        }
        let message = match error.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} fields where the header has {expected_len}"),
            csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_string(),
            _ => error.to_string(),
        };
        DataError::Row {
            path,
            line,
            message,
        }
    }
}

/// The 1-based line on which the record at `position` starts.
pub(crate) fn line_of(path: &std::path::Path, position: &csv::Position) -> u64 {
    g3_core::line_number_at(path, position.byte()).unwrap_or(position.line())
}

/// Results of g3-data.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

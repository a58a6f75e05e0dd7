//! [`IndexError`]: everything that can go wrong building, saving, opening or searching a store.

use std::path::PathBuf;

/// Errors of `g3-index`. Each variant names the file, row or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A vector or query of the wrong width.
    #[error("{what}: expected dimension {expected}, found {found}")]
    DimensionMismatch {
        /// What was being checked (`"query"`, `"vectors"`, ...).
        what: &'static str,
        /// The store's dimension.
        expected: usize,
        /// The width given.
        found: usize,
    },

    /// A flat buffer that is not a whole number of rows, or a dimension of zero.
    #[error("{what}: {len} values do not make whole rows of dimension {dimension}")]
    Shape {
        /// What was being checked.
        what: &'static str,
        /// The row width.
        dimension: usize,
        /// The number of values given.
        len: usize,
    },

    /// A NaN or infinite component: it would poison every score it touches.
    #[error("{what} row {row}, component {component} is {value} (vectors must be finite)")]
    NonFiniteValue {
        /// `"vector"` or `"query"`.
        what: &'static str,
        /// Row of the offending value in the batch given.
        row: usize,
        /// Column of the offending value.
        component: usize,
        /// The value itself.
        value: f32,
    },

    /// A zero vector under the cosine metric, which has no direction to compare.
    #[error("{what} row {row} is all zeros, which has no cosine similarity to anything")]
    ZeroVector {
        /// `"vector"` or `"query"`.
        what: &'static str,
        /// Row in the batch given.
        row: usize,
    },

    /// A component outside [-1, 1] for i8 storage, which maps [-1, 1] onto [-127, 127]
    /// and would clip anything larger. Normalise the vectors (G3's are unit length) or use
    /// f16/f32 storage.
    #[error(
        "vector row {row}, component {component} is {value}: i8 storage holds components in [-1, 1] only (normalise the vectors or use f16/f32)"
    )]
    OutOfI8Range {
        /// Row in the batch given.
        row: usize,
        /// Column of the offending value.
        component: usize,
        /// The value itself.
        value: f32,
    },

    /// A component beyond f16's range (±65504) for f16 storage, where it would become
    /// infinite and every score with it NaN.
    #[error(
        "vector row {row}, component {component} is {value}: f16 storage holds components up to ±65504 (scale the vectors or use f32)"
    )]
    OutOfF16Range {
        /// Row in the batch given.
        row: usize,
        /// Column of the offending value.
        component: usize,
        /// The value itself.
        value: f32,
    },

    /// Two entries with the same key; keys must identify entries.
    #[error("key {key} appears at rows {first_row} and {second_row}; keys must be unique")]
    DuplicateKey {
        /// The repeated key.
        key: u64,
        /// First row holding it.
        first_row: usize,
        /// Second row holding it.
        second_row: usize,
    },

    /// Vectors and metadata disagree on the number of entries.
    #[error("{vectors} vectors but {metadata} metadata rows: they must match row for row")]
    CountMismatch {
        /// Number of vectors.
        vectors: usize,
        /// Number of metadata rows.
        metadata: usize,
    },

    /// A setting that cannot work (connectivity 1, a store kind that does not support a
    /// storage precision, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A CSV or `.npy` input that cannot be read: the message names the line and column.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadInput {
        /// The file.
        path: PathBuf,
        /// The 1-based line, where one applies.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },

    /// A database directory or file that is not what its manifest promises: truncated,
    /// corrupted, from another format version, or built with other settings.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },

    /// A database written by a newer or older g3-index format version.
    #[error(
        "{}: format version {found}, but this build reads version {supported}; rebuild the database with `g3 index build`",
        path.display()
    )]
    UnsupportedVersion {
        /// The manifest.
        path: PathBuf,
        /// Version found in the manifest.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },

    /// A faiss index file of a type this crate does not import.
    #[error("{}: {reason}", path.display())]
    UnsupportedFaissIndex {
        /// The faiss file.
        path: PathBuf,
        /// What it is and why it cannot be imported.
        reason: String,
    },

    /// The HNSW library reported an error.
    #[error("HNSW index: {0}")]
    Hnsw(String),

    /// An error while doing something the message names (writing a database, importing a
    /// chunk of an index); its source says what went wrong.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<IndexError>,
    },

    /// A shared file format failed (an `.npy` matrix, a CSV of points, an atomic write).
    #[error(transparent)]
    Core(#[from] g3_core::Error),
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IndexError {
        let path = path.into();
        move |source| IndexError::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> IndexError {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<IndexError> for g3_core::Error {
    fn from(error: IndexError) -> Self {
        g3_core::Error::stage(g3_core::StageKind::VectorStore, error)
    }
}

/// `Result` with [`IndexError`].
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

impl IndexError {
    /// This error, under `context` (what was being done when it happened).
    pub fn context(self, context: impl Into<String>) -> IndexError {
        IndexError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

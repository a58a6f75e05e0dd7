//! The error type shared by `g3-core` and by every stage trait.

use crate::stage::StageKind;

/// A boxed error from a stage implementation, kept whole so its cause chain survives.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `g3-core`, and the error every stage trait returns.
///
/// Stage implementations in other crates keep their own error enums and convert them into
/// [`Error::Stage`] with [`Error::stage`], so a pipeline holding boxed stages sees one type
/// while the original cause stays reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A latitude outside [-90, 90] degrees. Latitudes are never wrapped: a value such as
    /// 95 usually means swapped latitude/longitude columns, which wrapping would hide.
    #[error(
        "latitude {lat_deg} is outside [-90, 90] degrees (are latitude and longitude swapped?)"
    )]
    LatitudeOutOfRange {
        /// The rejected latitude in degrees.
        lat_deg: f64,
    },

    /// A coordinate that is NaN or infinite, for example a failed prediction written as NaN.
    #[error("{field} is not a finite number ({value})")]
    NonFiniteCoordinate {
        /// Which coordinate: `"latitude"` or `"longitude"`.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },

    /// Text that is not a point such as `"48.85, 2.35"` or `"(48.85, 2.35)"`.
    #[error(
        "cannot read {input:?} as a point: {reason}; expected \"lat, lon\" or \"(lat, lon)\" in degrees"
    )]
    ParsePoint {
        /// The text that failed to parse.
        input: String,
        /// What was wrong with it.
        reason: String,
    },

    /// Accuracy thresholds that are empty, non-positive, non-finite or not strictly increasing.
    #[error("invalid accuracy thresholds {thresholds_km:?}: {reason}")]
    InvalidThresholds {
        /// The rejected thresholds in km.
        thresholds_km: Vec<f64>,
        /// What was wrong with them.
        reason: &'static str,
    },

    /// A distance that is negative, NaN or infinite, given to an accuracy computation.
    #[error("distance {distance_km} km is not a finite, non-negative number")]
    InvalidDistance {
        /// The rejected distance in km.
        distance_km: f64,
    },

    /// A flat buffer whose length is not a whole number of rows of the stated dimension,
    /// or a dimension of zero.
    #[error(
        "an embedding buffer of {len} values does not hold whole rows of dimension {dimension}"
    )]
    EmbeddingShape {
        /// The stated row width.
        dimension: usize,
        /// The number of values in the buffer.
        len: usize,
    },

    /// Two things that must have the same width do not (a query against a store, two batches).
    #[error("{what}: expected dimension {expected}, found {found}")]
    DimensionMismatch {
        /// What was being compared, for the message.
        what: &'static str,
        /// The dimension required.
        expected: usize,
        /// The dimension given.
        found: usize,
    },

    /// A stage returned a different number of outputs than it was given inputs, which breaks
    /// the "output order = input order" contract every stage promises.
    #[error("the {stage} stage returned {found} outputs for {expected} inputs")]
    OutputCountMismatch {
        /// The stage that broke its contract.
        stage: StageKind,
        /// The number of inputs.
        expected: usize,
        /// The number of outputs.
        found: usize,
    },

    /// A verifier was given no candidate to choose from (every LMM answer was rejected and
    /// no retrieved location was added to the pool).
    #[error("no candidate location to verify")]
    NoCandidates,

    /// A file of the asset cache (pretrained weights, a gallery) is not there.
    #[error(
        "missing asset {}: run `g3 fetch geoclip` or scripts/fetch-assets.sh to fetch it (set G3_CACHE_DIR to use another cache directory)",
        path.display()
    )]
    MissingAsset {
        /// Where the file was expected.
        path: std::path::PathBuf,
    },

    /// A file could not be opened, read, written, synced or renamed into place.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A CSV file is malformed beyond one bad value (bad quoting, invalid UTF-8 in the header).
    #[error("{}: {source}", path.display())]
    Csv {
        /// The CSV file.
        path: std::path::PathBuf,
        /// The CSV reader's or writer's error, which names the line where it has one.
        #[source]
        source: csv::Error,
    },

    /// A required column is absent from a CSV header.
    #[error("{}: no column named {column:?} in the header (columns: {})", path.display(), found.join(", "))]
    MissingColumn {
        /// The CSV file.
        path: std::path::PathBuf,
        /// The column that is required.
        column: String,
        /// The header as read.
        found: Vec<String>,
    },

    /// One row of a CSV file holds a value that cannot be used. Fix the row, or pass the
    /// option that skips invalid rows (`--skip-invalid` for `g3 eval`).
    #[error("{}:{line}: {problem}", path.display())]
    InvalidRow {
        /// The CSV file.
        path: std::path::PathBuf,
        /// The 1-based line where the row starts.
        line: u64,
        /// What is wrong with it.
        problem: RowProblem,
    },

    /// A `.npy` file that is not a 2-D float matrix in C order, or whose header does not
    /// match its data. Re-save it with `np.save(path, np.ascontiguousarray(x, np.float32))`.
    #[error("{}: {reason}", path.display())]
    InvalidNpy {
        /// The `.npy` file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A stage implementation failed; `source` is its own error.
    #[error("the {stage} stage failed")]
    Stage {
        /// Which stage failed.
        stage: StageKind,
        /// The implementation's error, kept for its cause chain.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An I/O error on `path` (for `map_err`).
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Wraps a stage implementation's own error, keeping it as the source.
    pub fn stage(stage: StageKind, source: impl Into<BoxError>) -> Self {
        Error::Stage {
            stage,
            source: source.into(),
        }
    }
}

/// `Result` with [`enum@Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with one CSV row.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowProblem {
    /// The row has a different number of fields than the header.
    #[error("the row has {found} fields but the header has {expected}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A required value is empty.
    #[error("column {column}: value is missing")]
    MissingValue {
        /// The column.
        column: String,
    },
    /// A value is not a decimal number.
    #[error("column {column}: {value:?} is not a number")]
    NotANumber {
        /// The column.
        column: String,
        /// The text found.
        value: String,
    },
    /// Two numbers do not form a valid point (latitude out of range, NaN, infinity).
    #[error("columns {latitude_column}/{longitude_column}: {source}")]
    InvalidPoint {
        /// The latitude column.
        latitude_column: String,
        /// The longitude column.
        longitude_column: String,
        /// Why [`GeoPoint::new`](crate::GeoPoint::new) refused the values (boxed to keep
        /// errors small).
        #[source]
        source: Box<Error>,
    },
}

//! The facade's error type.

use std::path::PathBuf;

/// Errors of the `g3` facade: composing stages and working with prediction files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read, written or renamed into place.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A CSV file is malformed beyond one bad value (bad quoting, invalid UTF-8 in the header).
    #[error("{}: {source}", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The CSV reader's or writer's error, which names the line where it has one.
        #[source]
        source: csv::Error,
    },

    /// A required column is absent from a CSV header.
    #[error("{}: no column named {column:?} in the header (columns: {})", path.display(), found.join(", "))]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
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
        path: PathBuf,
        /// The 1-based line where the row starts.
        line: u64,
        /// What is wrong with it.
        problem: RowProblem,
    },

    /// A `.npy` file that is not a 2-D float matrix in C order.
    #[error("{}: {reason}", path.display())]
    InvalidNpy {
        /// The `.npy` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An error from `g3-core` (invalid thresholds, for example).
    #[error(transparent)]
    Core(#[from] g3_core::Error),
}

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
        /// Why `g3_core::GeoPoint::new` refused the values (boxed to keep errors small).
        #[source]
        source: Box<g3_core::Error>,
    },
}

/// `Result` with the facade's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

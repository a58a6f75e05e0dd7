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

    /// Stages that do not fit together, or a pipeline setting that cannot work.
    #[error("invalid pipeline: {0}")]
    InvalidPipeline(String),

    /// A query ended with no candidate to verify.
    #[error(
        "{image_id}: no candidate location ({rejected} LMM answers could not be read, and no retrieved or gallery candidate is configured)"
    )]
    NoCandidates {
        /// The query image.
        image_id: String,
        /// How many answers the parser rejected.
        rejected: usize,
    },

    /// A photo's LMM answers could not be obtained (the server was down, refused the key,
    /// gave up after its retries), more than `generation.min_answers` allows. Nothing is
    /// predicted for it, so a rerun asks again. Fix the server or the
    /// `[generation.generator]` settings; or accept partial pools with `min_answers`.
    #[error(
        "{image_id}: {obtained} of {asked} LMM answers obtained, {required} needed: {cause}: {message}"
    )]
    AnswersLost {
        /// The query image.
        image_id: String,
        /// Sampled answers the ensemble asked for.
        asked: u64,
        /// Answers that arrived.
        obtained: u64,
        /// Answers the policy requires when some are lost.
        required: u64,
        /// What most of the lost answers were lost to.
        cause: g3_core::LossCause,
        /// The generator's words for it.
        message: String,
    },

    /// The pipeline stopped asking the LMM after photo after photo lost its answers for a
    /// cause no retry fixes; this photo was not sent. Fix the cause and run again.
    #[error("{image_id}: not sent to the LMM: {halt}")]
    GenerationHalted {
        /// The query image.
        image_id: String,
        /// Why the pipeline stopped asking.
        halt: crate::pipeline::GenerationHalt,
    },

    /// A pipeline configuration file that cannot be read as one.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and key where the TOML parser has them.
        message: String,
    },

    /// Files a pipeline needs are not on this machine; each says how to get it.
    #[error("files the pipeline needs are missing:{}", list_missing(.0))]
    MissingFiles(Vec<crate::pipeline::MissingFile>),

    /// A model, database or other part of a pipeline failed to load.
    #[error("cannot load {what}")]
    Load {
        /// What was being loaded (a file name where there is one).
        what: String,
        /// Why it failed.
        #[source]
        source: g3_core::BoxError,
    },
}

fn list_missing(files: &[crate::pipeline::MissingFile]) -> String {
    files.iter().map(|file| format!("\n  - {file}")).collect()
}

impl Error {
    /// A short reason without the photo's details, to group the failures of a run
    /// ("the LMM server is unreachable", "the image embedder stage failed").
    pub fn reason(&self) -> String {
        match self {
            Error::AnswersLost { cause, .. } => format!("LMM answers lost: {cause}"),
            Error::GenerationHalted { halt, .. } => {
                format!(
                    "not sent to the LMM after {} photos in a row failed: {}",
                    halt.photos, halt.cause
                )
            }
            Error::NoCandidates { .. } => "no candidate location".into(),
            Error::Core(g3_core::Error::Stage { stage, .. }) => format!("the {stage} stage failed"),
            Error::Io { .. } => "a file could not be read or written".into(),
            other => other.to_string(),
        }
    }

    /// Wraps a loading error, naming what was loaded (for `map_err`).
    pub(crate) fn load<E: Into<g3_core::BoxError>>(what: &str) -> impl FnOnce(E) -> Error + '_ {
        move |source| Error::Load {
            what: what.to_owned(),
            source: source.into(),
        }
    }

    /// Wraps a loading error, naming the file (for `map_err`).
    pub(crate) fn load_path<E: Into<g3_core::BoxError>>(
        path: &std::path::Path,
    ) -> impl FnOnce(E) -> Error + '_ {
        move |source| Error::Load {
            what: path.display().to_string(),
            source: source.into(),
        }
    }
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

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

    /// An error from `g3-core`: a shared file (an `.npy` matrix, a CSV of points, an atomic
    /// write) or a stage.
    #[error(transparent)]
    Core(#[from] g3_core::Error),

    /// An error of the encoders (`g3-align`): a model that does not load, a photo that
    /// does not decode.
    #[error(transparent)]
    Align(Box<g3_align::AlignError>),

    /// An error reading data (`g3-data`): a metadata CSV, an archive, the parts of a split
    /// run.
    #[error(transparent)]
    Data(Box<g3_data::DataError>),

    /// An error of the image database (`g3-index`).
    #[error(transparent)]
    Index(Box<g3_index::IndexError>),

    /// An error fetching from the HF hub (`g3-hub`).
    #[error(transparent)]
    Hub(Box<g3_hub::HubError>),

    /// A file could not be fetched from the HF hub (refused, not found, a broken download
    /// after its retries); the source says why.
    #[error("cannot fetch {file} of {repo}")]
    Fetch {
        /// The file's path in the repository.
        file: String,
        /// The repository.
        repo: String,
        /// Why.
        #[source]
        source: Box<g3_hub::HubError>,
    },

    /// A photo could not be read or decoded and the job was not told to skip such photos.
    /// Set `skip_bad` (`--skip-bad`) to list them and go on.
    #[error("stopping (pass --skip-bad to skip undecodable images): {source}")]
    UnreadablePhoto {
        /// Why the photo could not be used.
        #[source]
        source: Box<g3_align::AlignError>,
    },

    /// A job's input or output that cannot work as given (nothing to embed, a part left by
    /// another run); the message says what to change.
    #[error("{0}")]
    InvalidInput(String),

    /// A published file is missing from its repository, or its name is ambiguous there.
    #[error("{0}")]
    PublishedFile(String),

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
    #[error(
        "{image_id}: not sent to the LMM: it stopped asking after {photos} photos in a row failed because {cause}: {message}"
    )]
    GenerationHalted {
        /// The query image.
        image_id: String,
        /// What every photo of the streak lost its answers to.
        cause: g3_core::LossCause,
        /// How many photos in a row failed that way.
        photos: usize,
        /// The generator's words for the last failure.
        message: String,
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
    MissingFiles(Vec<MissingFile>),

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

/// A file a pipeline configuration needs that is not on this machine, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    /// What it is ("G3 checkpoint g3.pth").
    pub what: String,
    /// Where it was looked for.
    pub looked_for: String,
    /// How to get it.
    pub how_to_get: String,
}

impl std::fmt::Display for MissingFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}\n      looked for: {}\n      to get it: {}",
            self.what, self.looked_for, self.how_to_get
        )
    }
}

fn list_missing(files: &[MissingFile]) -> String {
    files.iter().map(|file| format!("\n  - {file}")).collect()
}

impl Error {
    /// A short reason without the photo's details, to group the failures of a run
    /// ("the LMM server is unreachable", "the image embedder stage failed").
    pub fn reason(&self) -> String {
        match self {
            Error::AnswersLost { cause, .. } => format!("LMM answers lost: {cause}"),
            Error::GenerationHalted { photos, cause, .. } => {
                format!("not sent to the LMM after {photos} photos in a row failed: {cause}")
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

/// `Result` with the facade's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<g3_align::AlignError> for Error {
    fn from(error: g3_align::AlignError) -> Self {
        Error::Align(Box::new(error))
    }
}

impl From<g3_data::DataError> for Error {
    fn from(error: g3_data::DataError) -> Self {
        Error::Data(Box::new(error))
    }
}

impl From<g3_index::IndexError> for Error {
    fn from(error: g3_index::IndexError) -> Self {
        Error::Index(Box::new(error))
    }
}

impl From<g3_hub::HubError> for Error {
    fn from(error: g3_hub::HubError) -> Self {
        Error::Hub(Box::new(error))
    }
}

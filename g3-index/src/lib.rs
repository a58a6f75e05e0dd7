//! The image database: geotagged embeddings searched by inner product.
//!
//! G3 retrieves, for each query photo, the most similar and the least similar images of a
//! database of 4.12M MP16-Pro embeddings; the reference does it exhaustively with faiss
//! `IndexFlatIP`. This crate offers two stores behind one trait, [`VectorIndex`]:
//!
//! - [`ExactStore`]: every entry scored on all cores; the ground truth, with the same results
//!   as faiss `IndexFlatIP`. One pass over the vectors serves both of a photo's searches and
//!   every query of a batch ([`VectorIndex::search_rows_both`],
//!   [`g3_core::VectorStore::search_both`]): up to a few dozen queries, tiles of rows ×
//!   queries are scored in registers, f16 rows widened as they are read (so the f16 store
//!   reads half the bytes, and a photo's results do not depend on its batch); larger batches
//!   go through a blocked matrix product.
//! - [`HnswStore`]: a usearch HNSW graph over f32, f16 or i8 vectors, many times faster
//!   per query on large collections at a small loss of recall; quantised graphs can keep
//!   an f32 copy and re-rank their candidates exactly (docs/performance.md compares both
//!   stores with faiss).
//!
//! A [`Database`] adds a key, a location and text fields to every row, implements
//! [`g3_core::VectorStore`], and saves to a checksummed directory that opens by memory
//! mapping, without reading the vectors. [`DatabaseWriter`] writes one a chunk at a time, in
//! bounded memory; with [`FaissFlatReader`] and [`MetadataCsvReader`] it imports the flat
//! faiss index the G3 authors publish (38 GB) without holding it.
//! [`retrieval_distances`] measures how far retrieved images are from the query's true
//! location (the paper's Table 3, `g3 retrieval-stats`), and [`write_neighbors_csv`] writes
//! search results for `g3 index search`.
//!
//! ```
//! use g3_core::{Embeddings, GeoPoint, SearchDirection, VectorStore};
//! use g3_index::{Database, EntryMetadata, Metric, StoreConfig};
//!
//! let vectors = Embeddings::new(2, vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0])?;
//! let locations = [
//!     GeoPoint::new(48.85, 2.35)?,
//!     GeoPoint::new(40.71, -74.0)?,
//!     GeoPoint::new(-33.87, 151.21)?,
//! ];
//! let database = Database::build(
//!     vectors,
//!     EntryMetadata::from_locations(&locations),
//!     &StoreConfig::exact(Metric::InnerProduct),
//!     &|_| {},
//! )?;
//! let query = Embeddings::new(2, vec![0.9, 0.1])?;
//! let similar = database.search(&query, 1, SearchDirection::Similar)?;
//! assert_eq!(similar[0][0].key, 0); // Paris
//! let dissimilar = database.search(&query, 1, SearchDirection::Dissimilar)?;
//! assert_eq!(dissimilar[0][0].key, 2); // Sydney
//! // Both at once: one pass over the vectors.
//! let both = database.search_both(&query, 1, 1)?;
//! assert_eq!((both.similar, both.dissimilar), (similar, dissimilar));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod build;
mod column;
mod config;
mod database;
mod error;
mod exact;
mod faiss;
mod hnsw;
mod metadata;
mod retrieval;
mod staging;
mod store;
mod top_k;
mod verification;
mod writer;

pub use build::{BuildSummary, MetadataSource, build_from_embeddings, import_faiss_index};
pub use config::{HnswConfig, Metric, StoreConfig, StoreKind, VectorPrecision};
pub use database::{Database, FORMAT_VERSION, Verification};
pub use error::{IndexError, Result};
pub use exact::ExactStore;
pub use faiss::{FaissFlatIndex, FaissFlatReader, FaissMetric, read_faiss_flat};
pub use hnsw::HnswStore;
pub use metadata::{EntryMetadata, EntryMetadataBuilder, MetadataCsvOptions, MetadataCsvReader};
pub use retrieval::{
    NEIGHBOR_COLUMNS, RetrievalDistances, retrieval_distances, write_neighbors_csv,
};
pub use store::{RowMatch, TwoWayRowMatches, VectorIndex};
pub use writer::DatabaseWriter;

//! The image database: geotagged embeddings searched by inner product.
//!
//! This crate will hold implementations of [`g3_core::VectorStore`]: an exact store (the
//! reference uses faiss `IndexFlatIP`) and a usearch HNSW store, with metadata, checksummed
//! persistence and faiss import. The crate is empty until those stores land.
#![deny(missing_docs)]

//! Geo-verification: choosing one location among the candidates.
//!
//! This crate will hold implementations of [`g3_core::Verifier`]: G3's image-GPS cosine
//! argmax and the baselines of the paper's ablations (random pick, retrieval top-1, GPS
//! gallery scoring, kNN density). The crate is empty until those land.
#![deny(missing_docs)]

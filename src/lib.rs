//! G3 for Rust: worldwide image geolocalization with geo-alignment, retrieval,
//! geo-diversification and geo-verification (Jia et al., NeurIPS 2024).
//!
//! This facade re-exports the member crates, one per stage, so that one dependency gives the
//! whole toolkit:
//!
//! | module | crate | job |
//! |---|---|---|
//! | [`core`] | `g3-core` | points, distances, accuracy metrics, the stage traits |
//! | [`align`] | `g3-align` | CLIP, GPS and text encoders (Geo-alignment) |
//! | [`index`] | `g3-index` | vector databases of image embeddings |
//! | [`prompt`] | `g3-prompt` | prompt ensembles, LMM clients, answer parsing (Geo-diversification) |
//! | [`verify`] | `g3-verify` | choosing among candidates (Geo-verification) |
//! | [`data`] | `g3-data` | datasets, image sources, reverse geocoding |
//! | [`hub`] | `g3-hub` | files from the HF hub, in the standard HF cache |
//!
//! The facade itself holds the [`pipeline`] that composes the stages (with its TOML
//! configuration and the paper's presets), the resumable [`results`] file of `g3 run`, the
//! error-curve [`plot`] of `g3 eval`, and the `g3` command-line tool. The most used types of
//! the member crates are re-exported at the top level. [`geocoding`] adds place names and
//! G3's descriptions to a CSV of coordinates (`g3 geocode`). [`evaluation`] scores a
//! predictions CSV the way G3's evaluation does (the `g3 eval` command):
//!
//! ```no_run
//! use std::path::Path;
//! use g3::evaluation::{evaluate_predictions_csv, EvaluationOptions};
//!
//! let evaluation = evaluate_predictions_csv(
//!     Path::new("results.csv"),
//!     Some(Path::new("scored.csv")),
//!     &EvaluationOptions::default(),
//!     &mut |_bytes_read| {},
//! )?;
//! println!("{}", evaluation.report);
//! # Ok::<(), g3::core::Error>(())
//! ```
#![deny(missing_docs)]

pub mod assets;
pub mod cache_features;
pub mod dataset_run;
pub mod embed_images;
mod error;
pub mod pipeline;
pub mod plot;
pub mod published;
pub mod report;
pub mod results;
#[cfg(feature = "serve")]
pub mod serve;

pub use error::{Error, Result};
pub use g3_align as align;
pub use g3_align::training::FeatureCache;
pub use g3_core as core;
pub use g3_core::evaluation;
pub use g3_core::npy::{
    EmbeddingFileWriter, GrowingEmbeddingFile, MappedMatrix, read_embeddings_npy,
};
pub use g3_core::table::read_points_csv;
pub use g3_core::{
    AccuracyReport, AccuracyThresholds, Candidate, CandidateSource, DistanceMetric, Embeddings,
    GeoPoint, ImageInput, Prediction, RowProblem,
};
pub use g3_data as data;
pub use g3_data::geocoding;
pub use g3_data::{IMAGE_COLUMNS, IMAGE_EXTENSIONS, list_images};
pub use g3_hub as hub;
pub use g3_index as index;
pub use g3_index::{
    NEIGHBOR_COLUMNS, RetrievalDistances, retrieval_distances, write_neighbors_csv,
};
pub use g3_prompt as prompt;
pub use g3_qwen2_vl as qwen2_vl;
pub use g3_verify as verify;
pub use pipeline::{Pipeline, PipelineBuilder, PipelineConfig, PipelineSettings, Preset};
pub use results::{RESULT_COLUMNS, ResultsFile, RunUsage, UsageLog};

/// Compiles the README's Rust examples as doc tests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The same for the pipelines page's example.
#[cfg(doctest)]
#[doc = include_str!("../docs/pipelines.md")]
pub struct PipelinesDoctests;

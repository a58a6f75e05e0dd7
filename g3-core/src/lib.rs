//! Core types of g3-rs, the Rust implementation of G3 (NeurIPS 2024) for worldwide image
//! geolocalization.
//!
//! This crate holds what every stage shares and nothing that needs a model:
//!
//! - [`GeoPoint`]: a validated latitude/longitude in degrees, and distances between points in
//!   km ([`DistanceMetric`]: WGS84 geodesic as in G3's evaluation, or haversine);
//! - [`AccuracyReport`]: the paper's accuracy at 1 / 25 / 200 / 750 / 2500 km with mean and
//!   median error;
//! - the stage traits ([`ImageEmbedder`], [`GpsEmbedder`], [`TextEmbedder`], [`VectorStore`],
//!   [`PromptEnsemble`], [`LmmGenerator`], [`AnswerParser`], [`Verifier`]) that the other
//!   crates implement and that users implement to swap a stage;
//! - the files the stages share, each read and written one way: [`npy`] float matrices
//!   (embeddings, features, galleries; memory-mapped when large), [`table`] CSVs of
//!   coordinates, [`atomic`] writes, and [`evaluation`] of a predictions CSV (`g3 eval`);
//! - the one [`retry`] back-off policy every client that talks to a server follows;
//! - the values passed between stages ([`Embeddings`], [`RetrievedNeighbor`],
//!   [`PromptRequest`], [`LmmAnswer`], [`GeneratedAnswers`] with the [`LostAnswers`] a
//!   generator could not obtain, [`Candidate`] with its provenance, [`Prediction`]).
//!
//! ```
//! use g3_core::{AccuracyReport, AccuracyThresholds, GeoPoint};
//!
//! let truth: GeoPoint = "40.7128, -74.0060".parse()?;
//! let predictions = ["40.73, -73.99", "(42.36, -71.06)"];
//! let errors_km = predictions
//!     .iter()
//!     .map(|text| Ok(truth.geodesic_distance_km(text.parse::<GeoPoint>()?)))
//!     .collect::<Result<Vec<f64>, g3_core::Error>>()?;
//! let report = AccuracyReport::from_distances_km(errors_km, AccuracyThresholds::default())?;
//! assert_eq!(report.thresholds[1].within, 1); // New York within 25 km, Boston not
//! println!("{report}");
//! # Ok::<(), g3_core::Error>(())
//! ```
#![deny(missing_docs)]

mod accuracy;
pub mod assets;
pub mod atomic;
mod candidate;
mod distance;
mod embedding;
mod error;
pub mod evaluation;
pub mod geoguessr;
mod image;
mod lmm;
pub mod npy;
mod point;
pub mod progress;
pub mod retry;
mod stage;
pub mod table;
mod text_file;

pub use accuracy::{
    AccuracyAccumulator, AccuracyReport, AccuracyThresholds, ThresholdAccuracy,
    ThresholdConvention, paper_level_name,
};
pub use candidate::{
    Candidate, CandidateSource, ImageDetail, Prediction, PromptRequest, RejectedAnswer,
    RejectionReason, RetrievedNeighbor, SearchDirection,
};
pub use distance::{DistanceMetric, MEAN_EARTH_RADIUS_KM, WGS84_HALF_MERIDIAN_KM};
pub use embedding::{Embeddings, cosine_similarity, l2_normalize_rows};
pub use error::{BoxError, Error, Result, RowProblem};
pub use image::{ImageInput, ImageLimits};
pub use lmm::{
    GeneratedAnswers, GeneratorDescription, LmmAnswer, LmmUsage, LossCause, LostAnswers,
    RetryCounts,
};
pub use point::{GeoPoint, normalize_longitude_deg};
pub use progress::{NoProgress, Progress};
pub use stage::{
    AnswerParser, GpsEmbedder, ImageEmbedder, LmmGenerator, PromptEnsemble, ReferenceCounts,
    StageKind, TextEmbedder, TwoWayNeighbors, VectorStore, Verification, VerificationQuery,
    Verifier,
};
pub use text_file::{LineCounter, line_number_at};

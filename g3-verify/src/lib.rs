//! Geo-verification: choosing one location among the candidates.
//!
//! Implementations of [`g3_core::Verifier`], G3's and the baselines of the paper's ablations:
//!
//! | verifier | scores a candidate by | in the paper |
//! |---|---|---|
//! | [`ImageGpsVerifier`] | cosine between the query's image–GPS embedding and the candidate's GPS embedding | G3's Geo-verification |
//! | [`RandomVerifier`] | a seeded random number | the "w/o Geo-V" ablation |
//! | [`NearestNeighborVerifier`] | closeness to the most similar database image | retrieval top-1 |
//! | [`KernelDensityVerifier`] | Gaussian kernel density of the retrieved neighbours' locations | the [L]kNN baseline |
//! | [`FirstCandidateVerifier`] | position: the first candidate wins | Img2Loc (no verification) |
//!
//! [`GpsGallery`] gives GeoCLIP's own prediction: the gallery points (GeoCLIP's 100K MP16
//! coordinates) most similar to the image, embedded once.
//!
//! Every verifier only scores; [`g3_core::Verifier::verify`] picks the highest score (ties go
//! to the earlier candidate, NaN never wins).
#![deny(missing_docs)]

mod density;
mod error;
mod first;
mod gallery;
mod image_gps;
mod random;

pub use density::{KernelDensityVerifier, NearestNeighborVerifier};
pub use error::VerifyError;
pub use first::FirstCandidateVerifier;
pub use gallery::GpsGallery;
pub use image_gps::{ImageGpsVerifier, QueryEmbedding};
pub use random::RandomVerifier;

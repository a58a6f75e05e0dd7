//! The GPS encoder: map projections and GeoCLIP's random-Fourier-feature capsules.

mod encoder;
mod projection;

pub(crate) use encoder::initialized_linear;
pub use encoder::{GaussianEncoding, LocationCapsule, LocationEncoder, LocationEncoderConfig};
pub use projection::{EqualEarthProjection, MercatorProjection, Projection, ProjectionKind};

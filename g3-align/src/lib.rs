//! Geo-alignment: the encoders that map images, GPS coordinates and text into one space.
//!
//! G3's first stage aligns CLIP image features with GPS coordinates and text. This crate
//! holds its models, written with burn so the same code runs on the CPU (ndarray, the
//! default) and on GPUs (cargo feature `wgpu`); the device is chosen at run time
//! ([`ComputeDevice`]):
//!
//! - CLIP's vision and text towers with HF's module tree, `config.json`, preprocessing
//!   (byte-exact with `CLIPImageProcessor`) and tokenizer ([`clip`]), and G3's model on top
//!   of them: the heads, the temperatures and the 2304-d database embedding ([`G3Model`]);
//! - the GPS encoder: a [`Projection`] ([`MercatorProjection`] for G3,
//!   [`EqualEarthProjection`] for GeoCLIP) followed by a [`LocationEncoder`] of random Fourier
//!   feature capsules and, for G3, the `location_projection_else` [`ProjectionHead`]
//!   ([`GpsBranch`]); [`GpsEncoder`] runs it as a [`g3_core::GpsEmbedder`];
//! - the stages: [`ImageEncoder`] ([`g3_core::ImageEmbedder`]: CLIP, G3's database or
//!   image–GPS embedding, GeoCLIP's) and [`TextEncoder`] ([`g3_core::TextEmbedder`]);
//! - [`models`]: the one way to load them, from a [`ModelSpec`] (a plain CLIP, G3's
//!   checkpoint, heads trained on a CLIP, GeoCLIP's image side) found on disk by
//!   [`pretrained`]; [`loader`] reads GeoCLIP's and G3's PyTorch checkpoints and safetensors
//!   and holds the PyTorch-to-burn key table;
//! - Geo-alignment training from cached CLIP features ([`training`]).
//!
//! ```no_run
//! use g3_align::{ComputeDevice, GpsEncoder, GpsEncoderConfig};
//! use g3_core::{GeoPoint, GpsEmbedder};
//!
//! let device = ComputeDevice::Cpu.to_device()?;
//! // GeoCLIP's pretrained encoder, as fetched by scripts/fetch-assets.sh.
//! let weights = std::path::Path::new("location_encoder_weights.pth");
//! let encoder = GpsEncoder::load(weights, GpsEncoderConfig::geoclip(), &device)?;
//! let paris = GeoPoint::new(48.8566, 2.3522)?;
//! let embeddings = encoder.embed_locations(&[paris])?;
//! assert_eq!(embeddings.dimension(), 512);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod clip;
mod cpu_inference;
mod cpu_weights;
mod device;
mod error;
mod g3;
mod gps;
mod heads;
mod image_encoder;
pub mod loader;
mod location;
pub mod models;
mod precision;
pub mod pretrained;
mod text_encoder;
pub mod training;

pub use burn::prelude::Device;
pub use cpu_inference::CpuGpsBranch;
pub use device::ComputeDevice;
pub use error::AlignError;
pub use g3::{G3HeadSizes, G3ImageEmbeddings, G3Model, LogitScales, l2_normalize};
pub use gps::{GpsBranch, GpsEncoder, GpsEncoderConfig};
pub use heads::{ProjectionHead, ProjectionHeadConfig};
pub use image_encoder::{ImageEmbeddingKind, ImageEncoder, ImageModel};
pub use location::{
    EqualEarthProjection, GaussianEncoding, LocationCapsule, LocationEncoder,
    LocationEncoderConfig, MercatorProjection, Projection, ProjectionKind,
};
pub use models::{ClipFiles, LoadedModel, ModelOptions, ModelSpec};
pub use precision::Precision;
pub use text_encoder::{TextEncoder, TextModel};

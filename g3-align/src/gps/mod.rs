//! The GPS encoder: [`GpsBranch`] is the model (the checkpoints' module tree),
//! [`GpsEncoder`] the stage that projects coordinates and runs it on a device.

pub(crate) mod branch;
mod encoder;

pub use branch::GpsBranch;
pub use encoder::{GpsEncoder, GpsEncoderConfig};

//! The error type of `g3-align`.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running the alignment models.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlignError {
    /// A model configuration that cannot be built (empty capsule list, zero width...).
    #[error("invalid model configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// A weights file that does not exist or cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A weights file that could not be parsed as a PyTorch or safetensors checkpoint.
    #[error("{}: cannot read the checkpoint: {source}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A checkpoint whose tensors do not fit the model: the lists name every key involved.
    /// Usually the file is for another model or was saved with another configuration.
    #[error(
        "{}: the checkpoint does not fit the model\n  missing keys: {}\n  unexpected keys: {}\n  mis-shaped keys: {}",
        path.display(),
        list(missing),
        list(unexpected),
        list(mis_shaped)
    )]
    KeyMismatch {
        /// The file.
        path: PathBuf,
        /// Model tensors with no value in the file (PyTorch names where known).
        missing: Vec<String>,
        /// Tensors in the file, under the model's prefixes, that the model has no place for.
        unexpected: Vec<String>,
        /// Tensors present on both sides with different shapes, with both shapes.
        mis_shaped: Vec<String>,
    },

    /// A configuration file (`config.json`, `preprocessor_config.json`...) that cannot be used.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },

    /// An image file that cannot be decoded.
    #[error("{name}: cannot decode the image: {reason}")]
    ImageDecode {
        /// The image's name (its path or id).
        name: String,
        /// The decoder's explanation.
        reason: String,
    },

    /// An image whose header announces more pixels than the limits allow (a decompression
    /// bomb, or a photo larger than expected): refused before any pixel is decoded.
    #[error(
        "{name}: the image is {width} x {height} pixels, more than the limits allow ({} per side, {} pixels in all)",
        limits.max_side,
        limits.max_pixels
    )]
    ImageTooLarge {
        /// The image's name (its path or id).
        name: String,
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// The limits it exceeds.
        limits: g3_core::ImageLimits,
    },

    /// A model named by path or HF repo id that cannot be found locally.
    #[error("model {name}: {help}")]
    ModelNotFound {
        /// What the user named.
        name: String,
        /// What is missing and how to get it.
        help: String,
    },

    /// An input that the model cannot take (a batch size of zero...).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },

    /// Reading a result back from the compute device failed.
    #[error("cannot read a tensor back from the device: {message}")]
    TensorRead {
        /// The backend's explanation.
        message: String,
    },

    /// A device name that is not one of [`ComputeDevice`](crate::ComputeDevice)'s.
    #[error("no device named {name:?}; devices: cpu, flex, wgpu")]
    UnknownDevice {
        /// The name given.
        name: String,
    },

    /// A shared file format failed (an `.npy` matrix, a CSV of points, an atomic write).
    #[error(transparent)]
    Core(#[from] g3_core::Error),
}

fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "none".to_owned()
    } else {
        keys.join(", ")
    }
}

//! The error type of `g3-qwen2-vl`.

use std::path::PathBuf;

/// Everything that can go wrong while reading, loading or running a Qwen2-VL model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Qwen2VlError {
    /// A file that does not exist or cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A configuration file (`config.json`, `adapter_config.json`) that cannot be used; the
    /// reason names the field.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },

    /// A model configuration that cannot be built (heads that do not divide the width...).
    #[error("invalid Qwen2-VL configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// A weights file that could not be parsed as safetensors.
    #[error("{}: cannot read the weights: {source}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Weights that do not fit the model: the lists name every key involved.
    #[error(
        "{}: the weights do not fit the model\n  missing keys: {}\n  unexpected keys: {}\n  mis-shaped keys: {}",
        path.display(),
        list(missing),
        list(unexpected),
        list(mis_shaped)
    )]
    KeyMismatch {
        /// The file or folder.
        path: PathBuf,
        /// Model tensors with no value in the files (checkpoint names).
        missing: Vec<String>,
        /// Tensors in the files that the model has no place for.
        unexpected: Vec<String>,
        /// Tensors present on both sides with different shapes.
        mis_shaped: Vec<String>,
    },

    /// An image that cannot be decoded or brought to the model's input.
    #[error("image {name}: {reason}")]
    Image {
        /// The image's name (its path or id).
        name: String,
        /// What went wrong.
        reason: String,
    },

    /// A model that does not fit in the machine's memory at the precision it would run in.
    #[error(
        "the model has {:.1} billion parameters: {:.1} GB in f32 with room for the forward passes, but {:.1} GB of memory are available. Run it on a GPU (`models.device = \"wgpu\"`), or on a machine with more memory",
        *parameters as f64 / 1e9,
        *required_bytes as f64 / 1e9,
        *available_bytes as f64 / 1e9
    )]
    InsufficientMemory {
        /// Bytes the model needs.
        required_bytes: u64,
        /// Bytes available.
        available_bytes: u64,
        /// Parameters of the model.
        parameters: u64,
    },

    /// Inputs that do not describe a valid forward pass (image tokens that do not match the
    /// images' patches, ragged batches...).
    #[error("invalid model input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
}

fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "none".to_owned()
    } else {
        keys.join(", ")
    }
}

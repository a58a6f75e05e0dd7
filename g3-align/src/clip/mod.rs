//! CLIP: image preprocessing, the BPE tokenizer, and the vision and text towers.

use std::path::Path;

use crate::error::AlignError;

mod config;
mod cpu_vision;
mod model;
mod pil_resize;
mod preprocess;
mod tokenizer;

pub use config::{
    ClipConfig, ClipTextConfig, ClipVisionConfig, HiddenActivation, end_of_text_position,
};
pub use cpu_vision::CpuVisionTower;
pub use model::{
    AttentionKernel, ClipAttention, ClipEncoder, ClipEncoderLayer, ClipMlp, ClipModel,
    ClipTextEmbeddings, ClipTextTransformer, ClipVisionEmbeddings, ClipVisionTransformer,
    FLASH_QUERY_BLOCK, TowerOutput,
};
pub use pil_resize::resize_bicubic_like_pil;
pub use preprocess::{
    ClipImageProcessor, ClipImageProcessorConfig, ImageLimits, decode_rgb_like_pil,
    reencode_jpeg_like_pil, shortest_edge_size, to_rgb_like_pil,
};
pub use tokenizer::{CONTEXT_LENGTH, ClipTokenizer, END_OF_TEXT, START_OF_TEXT, TokenizedTexts};

/// Reads a JSON configuration file and parses it with `parse`, whose message (naming the
/// field) becomes an [`AlignError::Config`] naming the file.
fn read_config_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, AlignError> {
    let text = std::fs::read_to_string(path).map_err(|source| AlignError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|reason| AlignError::Config {
        path: path.to_path_buf(),
        reason,
    })
}

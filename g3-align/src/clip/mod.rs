//! CLIP: image preprocessing, the BPE tokenizer, and the vision and text towers.

mod config;
mod model;
mod pil_resize;
mod preprocess;
mod tokenizer;

pub use config::{
    ClipConfig, ClipTextConfig, ClipVisionConfig, HiddenActivation, end_of_text_position,
};
pub use model::{
    AttentionKernel, ClipAttention, ClipEncoder, ClipEncoderLayer, ClipMlp, ClipModel,
    ClipTextEmbeddings, ClipTextTransformer, ClipVisionEmbeddings, ClipVisionTransformer,
    TowerOutput,
};
pub use preprocess::{
    ClipImageProcessor, ClipImageProcessorConfig, ImageLimits, shortest_edge_size, to_rgb_like_pil,
};
pub use tokenizer::{CONTEXT_LENGTH, ClipTokenizer, END_OF_TEXT, START_OF_TEXT, TokenizedTexts};

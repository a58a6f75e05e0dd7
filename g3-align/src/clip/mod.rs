//! CLIP: image preprocessing, the BPE tokenizer, and the vision and text towers.

mod pil_resize;
mod preprocess;

pub use preprocess::{
    ClipImageProcessor, ClipImageProcessorConfig, ImageLimits, shortest_edge_size, to_rgb_like_pil,
};

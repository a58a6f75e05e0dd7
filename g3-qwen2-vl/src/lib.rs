//! Qwen2-VL in burn, for GeoRanker's re-ranker: the vision tower ([`VisionTransformer`]),
//! the Qwen2 decoder with multimodal rotary positions ([`Qwen2Decoder`],
//! [`multimodal_positions`]), the hub's `config.json` ([`Qwen2VlConfig`]) and safetensors
//! (memory-mapped, sharded or not), PEFT LoRA adapters merged at load ([`LoraAdapter`]),
//! and GeoRanker's reward model ([`RewardModel`]): a linear value head on the last token's
//! final hidden state.
//!
//! The model code is device-agnostic (burn 0.22 picks the backend at run time); parity with
//! transformers + PEFT is tested on a tiny random configuration whose goldens come from
//! `tools/goldens/qwen2_vl.py`.
//!
//! ```no_run
//! use g3_qwen2_vl::{
//!     ChatMessage, ChatTemplate, ContentPart, ImageProcessor, PromptInputs, PromptTokenizer,
//!     left_padded_batch, load_reward_model,
//! };
//!
//! let model_folder = std::path::Path::new("Qwen2-VL-7B-Instruct");
//! # #[allow(deprecated)]
//! let device = burn::prelude::Device::ndarray();
//! let model = load_reward_model(model_folder, "GeoRanker/checkpoints".as_ref(), &device)?;
//! let template = ChatTemplate::from_model_folder(model_folder)?;
//! let tokenizer = PromptTokenizer::from_model_folder(model_folder)?;
//! // One conversation: a photo and a question about it.
//! let photo = ImageProcessor::default().process(&std::fs::read("photo.jpg").unwrap(), "photo.jpg")?;
//! let message = ChatMessage::user(vec![
//!     ContentPart::Image,
//!     ContentPart::Text("How far is this place from latitude: 48.8566, longitude: 2.3522?".into()),
//! ]);
//! let prompt = template.render(&[message], true)?;
//! let input_ids = tokenizer.encode(&prompt, &[photo.grid], 2)?;
//! let batch = left_padded_batch(&[PromptInputs { input_ids, images: vec![photo] }], tokenizer.pad_id());
//! let rewards = model.rewards(&batch)?;
//! # Ok::<(), g3_qwen2_vl::Qwen2VlError>(())
//! ```
#![deny(missing_docs)]

mod chat;
mod config;
mod error;
mod georanker;
mod image_processor;
mod loader;
mod memory;
mod model;
mod positions;
mod rotary;
mod text;
mod vision;

pub use chat::{
    ChatMessage, ChatTemplate, ContentPart, IMAGE_PAD, PromptInputs, PromptTokenizer,
    left_padded_batch,
};
pub use config::{Qwen2VlConfig, TextConfig, VisionConfig};
pub use error::Qwen2VlError;
pub use g3_align::Precision;
pub use georanker::{
    GeoRankerConfig, GeoRankerVerifier, PlaceNames, ReferenceLookup, georanker_choice,
    negatives_text, python_float, retrieved_message, retrieved_question, zero_shot_message,
    zero_shot_question,
};
pub use image_processor::{
    CLIP_MEAN, CLIP_STD, ImageProcessor, ImageProcessorConfig, MAX_ASPECT_RATIO, ProcessedImage,
    smart_resize,
};
pub use loader::{
    LoraAdapter, load_base_weights, load_reward_model, load_reward_model_in, weight_files,
};
pub use memory::{MemoryPlan, available_memory};
pub use model::{MultimodalBatch, Qwen2Vl, RewardModel};
pub use positions::{MultimodalPositions, multimodal_positions};
pub use text::{DecoderAttention, DecoderLayer, DecoderMlp, Qwen2Decoder};
pub use vision::{
    ImageGrid, MergerMlp, PatchEmbed, PatchMerger, PatchProjection, VisionAttention, VisionBlock,
    VisionMlp, VisionTransformer,
};

//! The whole model: the vision tower's tokens spliced into the decoder's input, and
//! GeoRanker's reward model on top (a bias-free linear value head read at the last token).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::config::Qwen2VlConfig;
use crate::error::Qwen2VlError;
use crate::positions::multimodal_positions;
use crate::text::Qwen2Decoder;
use crate::vision::{ImageGrid, VisionTransformer};

/// One forward pass's inputs: token ids padded on the left to one length, and the patches of
/// every image they mention, in order of appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct MultimodalBatch {
    /// Sequences.
    pub batch: usize,
    /// Token ids, `[batch, length]` row-major.
    pub input_ids: Vec<u32>,
    /// True for real tokens, false for padding; same layout as the ids.
    pub attention_mask: Vec<bool>,
    /// Image patches, `[patches, patch_values]` row-major (the image processor's output).
    pub pixel_values: Vec<f32>,
    /// The grid of each image, in order.
    pub image_grids: Vec<ImageGrid>,
}

impl MultimodalBatch {
    /// Tokens per sequence.
    pub fn length(&self) -> usize {
        self.input_ids.len() / self.batch.max(1)
    }
}

/// Qwen2-VL without its language-model head (HF `Qwen2VLModel`): `visual.*` and `model.*`
/// in the hub checkpoint.
#[derive(Module, Debug)]
pub struct Qwen2Vl {
    /// The vision tower.
    pub visual: VisionTransformer,
    /// The decoder.
    pub model: Qwen2Decoder,
}

impl Qwen2Vl {
    /// A model with `config`'s shape and random weights, to be filled by the loader.
    pub fn new(config: &Qwen2VlConfig, device: &Device) -> Self {
        Qwen2Vl {
            visual: VisionTransformer::new(&config.vision, device),
            model: Qwen2Decoder::new(&config.text, device),
        }
    }

    /// The final hidden states `[batch, length, hidden]` (after the last RMSNorm).
    pub fn forward(&self, inputs: &MultimodalBatch) -> Result<Tensor<3>, Qwen2VlError> {
        let text = self.model.config();
        let invalid = |reason: String| Qwen2VlError::InvalidInput { reason };
        let (batch, length) = (inputs.batch, inputs.length());
        if batch == 0 || length == 0 || inputs.input_ids.len() != batch * length {
            return Err(invalid(format!(
                "{} token ids do not make {batch} non-empty sequences of one length",
                inputs.input_ids.len()
            )));
        }
        if let Some(id) = inputs
            .input_ids
            .iter()
            .find(|&&id| id as usize >= text.vocab_size)
        {
            return Err(invalid(format!(
                "token id {id} is outside the vocabulary of {}",
                text.vocab_size
            )));
        }
        let merge = self.visual.config().spatial_merge_size;
        let positions = multimodal_positions(
            &inputs.input_ids,
            &inputs.attention_mask,
            batch,
            &inputs.image_grids,
            merge,
            text,
        )?;
        let device = self.model.embed_tokens.weight.device();
        let hidden = text.hidden_size;
        let ids: Vec<i64> = inputs.input_ids.iter().map(|&id| i64::from(id)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, length]), &device);
        let token_embeddings: Tensor<2> = self
            .model
            .embed_tokens
            .forward(ids)
            .reshape([batch * length, hidden]);
        let image_tokens: Vec<usize> = (0..batch * length)
            .filter(|&index| inputs.input_ids[index] == text.image_token_id)
            .collect();
        let embeddings = if inputs.image_grids.is_empty() {
            token_embeddings
        } else {
            let patches: usize = inputs.image_grids.iter().map(ImageGrid::patches).sum();
            let values = self.visual.config().patch_values();
            if inputs.pixel_values.len() != patches * values {
                return Err(invalid(format!(
                    "{} pixel values do not fill the images' {patches} patches of {values}",
                    inputs.pixel_values.len()
                )));
            }
            let pixels = Tensor::<2>::from_data(
                TensorData::new(inputs.pixel_values.clone(), [patches, values]),
                &device,
            );
            let image_embeddings = self.visual.forward(pixels, &inputs.image_grids)?;
            let [merged, _] = image_embeddings.dims();
            if merged != image_tokens.len() {
                return Err(invalid(format!(
                    "the token ids hold {} image tokens but the images make {merged}",
                    image_tokens.len()
                )));
            }
            // Row `i` of the result is token `i`'s embedding, or the next image embedding
            // where token `i` is an image token (HF's `masked_scatter`).
            let mut sources: Vec<i64> = (0..(batch * length) as i64).collect();
            for (offset, &token) in image_tokens.iter().enumerate() {
                sources[token] = (batch * length + offset) as i64;
            }
            let sources =
                Tensor::<1, Int>::from_data(TensorData::new(sources, [batch * length]), &device);
            Tensor::cat(vec![token_embeddings, image_embeddings], 0).select(0, sources)
        };
        let embeddings = embeddings.reshape([batch, length, hidden]);
        Ok(self
            .model
            .forward_embeddings(embeddings, &positions, &inputs.attention_mask))
    }
}

/// GeoRanker's reward model: Qwen2-VL and a linear value head (no bias) on the final hidden
/// state of each sequence's last token. Batches must be padded on the left, so that the last
/// token is a real one, as GeoRanker's reference does.
#[derive(Module, Debug)]
pub struct RewardModel {
    /// The backbone (hub keys `visual.*`, `model.*`).
    pub qwen2_vl: Qwen2Vl,
    /// `hidden → 1`, no bias (hub key `value_head.weight`).
    pub value_head: Linear,
}

impl RewardModel {
    /// A reward model with `config`'s shape and random weights, to be filled by the loader.
    pub fn new(config: &Qwen2VlConfig, device: &Device) -> Self {
        RewardModel {
            qwen2_vl: Qwen2Vl::new(config, device),
            value_head: LinearConfig::new(config.text.hidden_size, 1)
                .with_bias(false)
                .init(device),
        }
    }

    /// One reward per sequence.
    pub fn rewards(&self, inputs: &MultimodalBatch) -> Result<Vec<f32>, Qwen2VlError> {
        let length = inputs.length();
        if let Some(sequence) = (0..inputs.batch).find(|sequence| {
            !inputs
                .attention_mask
                .get((sequence + 1) * length - 1)
                .copied()
                .unwrap_or(false)
        }) {
            return Err(Qwen2VlError::InvalidInput {
                reason: format!(
                    "sequence {sequence} ends in padding; the reward is read at the last token, so pad on the left"
                ),
            });
        }
        let hidden = self.qwen2_vl.forward(inputs)?;
        let [batch, length, width] = hidden.dims();
        let last = hidden.narrow(1, length - 1, 1).reshape([batch, width]);
        let rewards = self.value_head.forward(last).reshape([batch]);
        rewards
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|error| Qwen2VlError::InvalidInput {
                reason: format!("cannot read the rewards back: {error:?}"),
            })
    }
}

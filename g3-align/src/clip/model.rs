//! CLIP's vision and text transformers, in burn, with HF transformers' module tree.
//!
//! Field names follow HF's `CLIPModel` state dict (`vision_model.encoder.layers.0.self_attn.q_proj`,
//! `text_model.final_layer_norm`...), so checkpoints load without a key table; only layer
//! norms differ (`weight`/`bias` here are burn's `gamma`/`beta`, which burn's PyTorch adapter
//! renames).

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid, softmax};
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, PadMode};

use super::config::{
    ClipConfig, ClipTextConfig, ClipVisionConfig, HiddenActivation, end_of_text_position,
};
use crate::error::AlignError;

/// How attention is computed: the same mathematics, different kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKernel {
    /// burn's fused `attention` operation (a flash-attention kernel where the backend has
    /// one). In burn 0.22 it is slower than [`AttentionKernel::Explicit`] through wgpu at
    /// ViT-L/14's shapes and no faster on the CPU (docs/performance.md has the
    /// measurements).
    Fused,
    /// Two matrix products and a softmax, materialising the `[tokens, tokens]` scores (a few
    /// MB per image at CLIP's 257 tokens). The default.
    #[default]
    Explicit,
    /// burn's fused `attention` with the queries padded to a multiple of
    /// [`FLASH_QUERY_BLOCK`] rows, whose extra outputs are dropped. cubecl's flash-attention
    /// kernels (cooperative matrices on GPUs) only launch when the query length is a multiple
    /// of their tile; at CLIP's 257 tokens burn silently runs its unfused fallback instead.
    /// Keys and values are not padded, so the result is the same attention. Causal attention
    /// (the text tower) runs [`AttentionKernel::Fused`] unpadded. The flash kernels compute
    /// in f16 tiles whatever the input type: for half-precision models.
    FusedPadded,
}

/// The query-length multiple that lets every flash-attention tile of cubecl 0.11 launch
/// (its kernels take 32, 64 or 128 query rows per cube, depending on the plane count).
pub const FLASH_QUERY_BLOCK: usize = 64;

/// Multi-head self-attention (HF `CLIPAttention`).
#[derive(Module, Debug)]
pub struct ClipAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    heads: usize,
    #[module(skip)]
    kernel: AttentionKernel,
}

impl ClipAttention {
    /// Number of attention heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    fn new(width: usize, heads: usize, device: &Device) -> Self {
        let linear = || LinearConfig::new(width, width).init(device);
        ClipAttention {
            q_proj: linear(),
            k_proj: linear(),
            v_proj: linear(),
            out_proj: linear(),
            heads,
            kernel: AttentionKernel::default(),
        }
    }

    /// `[batch, tokens, width]` → same shape; `causal` hides later tokens (text tower).
    pub fn forward(&self, input: Tensor<3>, causal: bool) -> Tensor<3> {
        let [batch, tokens, width] = input.dims();
        let head_width = width / self.heads;
        let split = |projected: Tensor<3>| {
            projected
                .reshape([batch, tokens, self.heads, head_width])
                .swap_dims(1, 2)
        };
        let query = split(self.q_proj.forward(input.clone()));
        let key = split(self.k_proj.forward(input.clone()));
        let value = split(self.v_proj.forward(input));
        let fused_options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: causal,
        };
        // softmax(q kᵀ / sqrt(head_width)) v.
        let context = match self.kernel {
            AttentionKernel::FusedPadded if !causal => {
                let padding = tokens.next_multiple_of(FLASH_QUERY_BLOCK) - tokens;
                let query = query.pad([(0, padding), (0, 0)], PadMode::Constant(0.0));
                attention(query, key, value, None, None, fused_options).slice([
                    0..batch,
                    0..self.heads,
                    0..tokens,
                    0..head_width,
                ])
            }
            AttentionKernel::Fused | AttentionKernel::FusedPadded => {
                attention(query, key, value, None, None, fused_options)
            }
            AttentionKernel::Explicit => {
                let scores = query.matmul(key.swap_dims(2, 3)) / (head_width as f64).sqrt();
                let scores = if causal {
                    let device = scores.device();
                    let later = Tensor::<2, Bool>::tril_mask([tokens, tokens], 0, &device)
                        .unsqueeze_dims::<4>(&[0, 1]);
                    scores.mask_fill(later, f32::NEG_INFINITY)
                } else {
                    scores
                };
                softmax(scores, 3).matmul(value)
            }
        };
        self.out_proj
            .forward(context.swap_dims(1, 2).reshape([batch, tokens, width]))
    }
}

/// The feed-forward part of a block (HF `CLIPMLP`).
#[derive(Module, Debug)]
pub struct ClipMlp {
    /// Width to the intermediate size.
    pub fc1: Linear,
    /// Back to the width.
    pub fc2: Linear,
    #[module(skip)]
    activation: HiddenActivation,
}

impl ClipMlp {
    /// The activation between the two layers.
    pub fn activation(&self) -> HiddenActivation {
        self.activation
    }

    /// `[..., width]` → `[..., width]`.
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        let hidden = self.fc1.forward(input);
        let hidden = match self.activation {
            HiddenActivation::QuickGelu => hidden.clone() * sigmoid(hidden * 1.702),
            HiddenActivation::Gelu => gelu(hidden),
        };
        self.fc2.forward(hidden)
    }
}

/// One pre-norm transformer block (HF `CLIPEncoderLayer`).
#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    /// Attention.
    pub self_attn: ClipAttention,
    /// Norm before attention.
    pub layer_norm1: LayerNorm,
    /// Feed-forward.
    pub mlp: ClipMlp,
    /// Norm before the feed-forward.
    pub layer_norm2: LayerNorm,
}

impl ClipEncoderLayer {
    /// `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
    pub fn forward(&self, input: Tensor<3>, causal: bool) -> Tensor<3> {
        let attended = input.clone()
            + self
                .self_attn
                .forward(self.layer_norm1.forward(input), causal);
        attended.clone() + self.mlp.forward(self.layer_norm2.forward(attended))
    }
}

/// A stack of blocks (HF `CLIPEncoder`).
#[derive(Module, Debug)]
pub struct ClipEncoder {
    /// The blocks, in order.
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    /// Chooses the attention kernel of every block.
    pub fn set_attention_kernel(&mut self, kernel: AttentionKernel) {
        for layer in &mut self.layers {
            layer.self_attn.kernel = kernel;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        width: usize,
        intermediate: usize,
        heads: usize,
        layers: usize,
        epsilon: f64,
        activation: HiddenActivation,
        device: &Device,
    ) -> Self {
        let norm = || {
            LayerNormConfig::new(width)
                .with_epsilon(epsilon)
                .init(device)
        };
        ClipEncoder {
            layers: (0..layers)
                .map(|_| ClipEncoderLayer {
                    self_attn: ClipAttention::new(width, heads, device),
                    layer_norm1: norm(),
                    mlp: ClipMlp {
                        fc1: LinearConfig::new(width, intermediate).init(device),
                        fc2: LinearConfig::new(intermediate, width).init(device),
                        activation,
                    },
                    layer_norm2: norm(),
                })
                .collect(),
        }
    }

    /// Runs every block.
    pub fn forward(&self, mut hidden: Tensor<3>, causal: bool) -> Tensor<3> {
        for layer in &self.layers {
            hidden = layer.forward(hidden, causal);
        }
        hidden
    }
}

/// Patch and position embeddings of the vision tower (HF `CLIPVisionEmbeddings`).
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings {
    /// The learned class token, prepended to the patches.
    pub class_embedding: Param<Tensor<1>>,
    /// Pixels to patch vectors: a convolution with stride = kernel = patch size, no bias.
    pub patch_embedding: Conv2d,
    /// One learned vector per token position.
    pub position_embedding: Embedding,
}

/// The vision tower (HF `CLIPVisionTransformer`).
#[derive(Module, Debug)]
pub struct ClipVisionTransformer {
    /// Patches, class token, positions.
    pub embeddings: ClipVisionEmbeddings,
    /// The norm before the blocks (HF spells it `pre_layrnorm`).
    pub pre_layrnorm: LayerNorm,
    /// The blocks.
    pub encoder: ClipEncoder,
    /// The norm applied to the class token's final state.
    pub post_layernorm: LayerNorm,
    image_size: usize,
    layer_norm_eps: f64,
}

/// What a tower returns.
#[derive(Debug, Clone)]
pub struct TowerOutput {
    /// `[batch, tokens, width]` final hidden states (after the final norm for text, before the
    /// post-norm for vision, as HF returns them).
    pub last_hidden_state: Tensor<3>,
    /// `[batch, width]`: the vision tower's post-normed class token, or the text tower's state
    /// at the end-of-text token.
    pub pooled: Tensor<2>,
}

impl ClipVisionTransformer {
    /// A tower with PyTorch-like random initialisation (for tests and benchmarks; load weights
    /// for anything else).
    pub fn new(config: &ClipVisionConfig, device: &Device) -> Self {
        let width = config.hidden_size;
        let norm = || {
            LayerNormConfig::new(width)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        ClipVisionTransformer {
            embeddings: ClipVisionEmbeddings {
                class_embedding: Initializer::Normal {
                    mean: 0.0,
                    std: 1.0,
                }
                .init([width], device),
                patch_embedding: Conv2dConfig::new(
                    [config.num_channels, width],
                    [config.patch_size, config.patch_size],
                )
                .with_stride([config.patch_size, config.patch_size])
                .with_bias(false)
                .init(device),
                position_embedding: EmbeddingConfig::new(config.sequence_length(), width)
                    .init(device),
            },
            pre_layrnorm: norm(),
            encoder: ClipEncoder::new(
                width,
                config.intermediate_size,
                config.num_attention_heads,
                config.num_hidden_layers,
                config.layer_norm_eps,
                config.hidden_act,
                device,
            ),
            post_layernorm: norm(),
            image_size: config.image_size,
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// Chooses the attention kernel of every block.
    pub fn set_attention_kernel(&mut self, kernel: AttentionKernel) {
        self.encoder.set_attention_kernel(kernel);
    }

    /// Side of the square input, in pixels.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// The epsilon of every layer norm of the tower.
    pub fn layer_norm_epsilon(&self) -> f64 {
        self.layer_norm_eps
    }

    /// `[batch, channels, side, side]` normalised pixels → hidden states and pooled features.
    pub fn forward(&self, pixels: Tensor<4>) -> Result<TowerOutput, AlignError> {
        let [batch, channels, height, width] = pixels.dims();
        let expected_channels = self.embeddings.patch_embedding.weight.dims()[1];
        if channels != expected_channels || height != self.image_size || width != self.image_size {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "the vision tower takes [batch, {expected_channels}, {side}, {side}] pixels, got [{batch}, {channels}, {height}, {width}]",
                    side = self.image_size
                ),
            });
        }
        let patches = self.embeddings.patch_embedding.forward(pixels);
        let [_, hidden, rows, columns] = patches.dims();
        let patches = patches
            .reshape([batch, hidden, rows * columns])
            .swap_dims(1, 2);
        let class = self
            .embeddings
            .class_embedding
            .val()
            .reshape([1, 1, hidden])
            .expand([batch, 1, hidden]);
        let positions = self
            .embeddings
            .position_embedding
            .weight
            .val()
            .unsqueeze_dim::<3>(0);
        let tokens = Tensor::cat(vec![class, patches], 1) + positions;
        let last_hidden_state = self
            .encoder
            .forward(self.pre_layrnorm.forward(tokens), false);
        let class_state = last_hidden_state
            .clone()
            .slice([0..batch, 0..1, 0..hidden])
            .reshape([batch, hidden]);
        Ok(TowerOutput {
            pooled: self.post_layernorm.forward(class_state),
            last_hidden_state,
        })
    }
}

/// Token and position embeddings of the text tower (HF `CLIPTextEmbeddings`).
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// One learned vector per token id.
    pub token_embedding: Embedding,
    /// One learned vector per position.
    pub position_embedding: Embedding,
}

/// The text tower (HF `CLIPTextTransformer`).
#[derive(Module, Debug)]
pub struct ClipTextTransformer {
    /// Tokens and positions.
    pub embeddings: ClipTextEmbeddings,
    /// The blocks, with a causal mask.
    pub encoder: ClipEncoder,
    /// The norm after the blocks.
    pub final_layer_norm: LayerNorm,
    eos_token_id: u32,
}

impl ClipTextTransformer {
    /// A tower with PyTorch-like random initialisation (for tests and benchmarks).
    pub fn new(config: &ClipTextConfig, device: &Device) -> Self {
        let width = config.hidden_size;
        ClipTextTransformer {
            embeddings: ClipTextEmbeddings {
                token_embedding: EmbeddingConfig::new(config.vocab_size, width).init(device),
                position_embedding: EmbeddingConfig::new(config.max_position_embeddings, width)
                    .init(device),
            },
            encoder: ClipEncoder::new(
                width,
                config.intermediate_size,
                config.num_attention_heads,
                config.num_hidden_layers,
                config.layer_norm_eps,
                config.hidden_act,
                device,
            ),
            final_layer_norm: LayerNormConfig::new(width)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            eos_token_id: config.eos_token_id,
        }
    }

    /// Chooses the attention kernel of every block.
    pub fn set_attention_kernel(&mut self, kernel: AttentionKernel) {
        self.encoder.set_attention_kernel(kernel);
    }

    /// `[batch, tokens]` ids, row-major (as [`super::TokenizedTexts::ids`]) → hidden states and
    /// the state at each text's end-of-text token.
    pub fn forward(&self, ids: &[u32], tokens: usize) -> Result<TowerOutput, AlignError> {
        let vocabulary = self.embeddings.token_embedding.weight.dims()[0];
        let [positions, width] = self.embeddings.position_embedding.weight.dims();
        if tokens == 0 || tokens > positions || ids.is_empty() || !ids.len().is_multiple_of(tokens)
        {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "the text tower takes rows of 1 to {positions} token ids; got {} ids in rows of {tokens}",
                    ids.len()
                ),
            });
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocabulary) {
            return Err(AlignError::InvalidInput {
                reason: format!("token id {id} is outside the vocabulary of {vocabulary}"),
            });
        }
        let batch = ids.len() / tokens;
        let device = self.embeddings.token_embedding.weight.device();
        let id_values: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let id_tensor =
            Tensor::<2, Int>::from_data(TensorData::new(id_values, [batch, tokens]), &device);
        let embedded = self.embeddings.token_embedding.forward(id_tensor)
            + self
                .embeddings
                .position_embedding
                .weight
                .val()
                .slice([0..tokens, 0..width])
                .unsqueeze_dim::<3>(0);
        let last_hidden_state = self
            .final_layer_norm
            .forward(self.encoder.forward(embedded, true));
        let rows: Vec<i64> = ids
            .chunks_exact(tokens)
            .enumerate()
            .map(|(row, row_ids)| {
                (row * tokens + end_of_text_position(row_ids, self.eos_token_id)) as i64
            })
            .collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [batch]), &device);
        let pooled = last_hidden_state
            .clone()
            .reshape([batch * tokens, width])
            .select(0, rows);
        Ok(TowerOutput {
            last_hidden_state,
            pooled,
        })
    }
}

/// A CLIP model with HF's layout: both towers and their projections into the shared space.
#[derive(Module, Debug)]
pub struct ClipModel {
    /// The vision tower.
    pub vision_model: ClipVisionTransformer,
    /// The text tower.
    pub text_model: ClipTextTransformer,
    /// Pooled image feature → shared space (no bias).
    pub visual_projection: Linear,
    /// Pooled text feature → shared space (no bias).
    pub text_projection: Linear,
}

impl ClipModel {
    /// A model with random weights (tests and benchmarks).
    pub fn new(config: &ClipConfig, device: &Device) -> Self {
        ClipModel {
            vision_model: ClipVisionTransformer::new(&config.vision, device),
            text_model: ClipTextTransformer::new(&config.text, device),
            visual_projection: LinearConfig::new(config.vision.hidden_size, config.projection_dim)
                .with_bias(false)
                .init(device),
            text_projection: LinearConfig::new(config.text.hidden_size, config.projection_dim)
                .with_bias(false)
                .init(device),
        }
    }

    /// Chooses the attention kernel of both towers.
    pub fn set_attention_kernel(&mut self, kernel: AttentionKernel) {
        self.vision_model.set_attention_kernel(kernel);
        self.text_model.set_attention_kernel(kernel);
    }

    /// `[batch, 3, side, side]` pixels → `[batch, projection_dim]` image features (HF
    /// `get_image_features`, not normalised).
    pub fn image_features(&self, pixels: Tensor<4>) -> Result<Tensor<2>, AlignError> {
        let pooled = self.vision_model.forward(pixels)?.pooled;
        Ok(self.visual_projection.forward(pooled))
    }

    /// Token ids in rows of `tokens` → `[batch, projection_dim]` text features (HF
    /// `get_text_features`, not normalised).
    pub fn text_features(&self, ids: &[u32], tokens: usize) -> Result<Tensor<2>, AlignError> {
        let pooled = self.text_model.forward(ids, tokens)?.pooled;
        Ok(self.text_projection.forward(pooled))
    }
}

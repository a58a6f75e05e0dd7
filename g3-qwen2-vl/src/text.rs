//! The Qwen2 decoder of Qwen2-VL: token embeddings with the vision tower's tokens put in
//! place of the image tokens, pre-norm layers of grouped-query attention with multimodal
//! rotary positions and a SwiGLU MLP, and a final RMSNorm.
//!
//! Field names follow the hub checkpoint (`model.layers.0.self_attn.q_proj`).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

use crate::config::TextConfig;
use crate::positions::MultimodalPositions;
use crate::rotary::{apply_rotary, inverse_frequencies, to_dtype};

/// What masked attention scores become. Minus infinity, not a large finite number: the
/// exponential of a large negative number takes libm's slow underflow path (a quarter of a
/// small model's time), of minus infinity a fast exact 0. No row is left without a key (see
/// [`causal_padding_mask`]), so no softmax divides 0 by 0.
const MASKED_SCORE: f32 = f32::NEG_INFINITY;

/// Grouped-query self-attention (HF `Qwen2VLAttention`): biases on the query, key and value
/// projections, none on the output.
#[derive(Module, Debug)]
pub struct DecoderAttention {
    /// Queries, `hidden → heads × head_dim`.
    pub q_proj: Linear,
    /// Keys, `hidden → key_value_heads × head_dim`.
    pub k_proj: Linear,
    /// Values, same width as the keys.
    pub v_proj: Linear,
    /// Output projection.
    pub o_proj: Linear,
    heads: usize,
    key_value_heads: usize,
}

impl DecoderAttention {
    /// `input` `[batch, length, hidden]`; `cos`/`sin` `[batch, 1, length, head_dim]`;
    /// `masked` `[batch, 1, length, length]`, true where a query may not see a key.
    fn forward(
        &self,
        input: Tensor<3>,
        cos: Tensor<4>,
        sin: Tensor<4>,
        masked: Tensor<4, Bool>,
    ) -> Tensor<3> {
        let [batch, length, hidden] = input.dims();
        let head_dim = hidden / self.heads;
        let split = |projected: Tensor<3>, heads: usize| {
            projected
                .reshape([batch, length, heads, head_dim])
                .swap_dims(1, 2)
        };
        let query = split(self.q_proj.forward(input.clone()), self.heads);
        let key = split(self.k_proj.forward(input.clone()), self.key_value_heads);
        let value = split(self.v_proj.forward(input), self.key_value_heads);
        let query = apply_rotary(query, cos.clone(), sin.clone());
        let key = apply_rotary(key, cos, sin);
        let group = self.heads / self.key_value_heads;
        let repeat = |tensor: Tensor<4>| {
            tensor
                .unsqueeze_dim::<5>(2)
                .repeat_dim(2, group)
                .reshape([batch, self.heads, length, head_dim])
        };
        let (key, value) = (repeat(key), repeat(value));
        // Scaling the queries instead of the scores: a head's width of values per token
        // instead of a length's.
        let query = query * (head_dim as f64).powf(-0.5);
        let scores = query.matmul(key.swap_dims(2, 3));
        let scores = scores.mask_fill(masked, MASKED_SCORE);
        let context = softmax(scores, 3).matmul(value);
        self.o_proj
            .forward(context.swap_dims(1, 2).reshape([batch, length, hidden]))
    }
}

/// The SwiGLU feed-forward part: `down(silu(gate(x)) · up(x))`, no biases.
#[derive(Module, Debug)]
pub struct DecoderMlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl DecoderMlp {
    fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        self.down_proj
            .forward(silu(self.gate_proj.forward(input.clone())) * self.up_proj.forward(input))
    }
}

/// One decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Self-attention.
    pub self_attn: DecoderAttention,
    /// Feed-forward.
    pub mlp: DecoderMlp,
    /// Before attention.
    pub input_layernorm: RmsNorm,
    /// Before the MLP.
    pub post_attention_layernorm: RmsNorm,
}

/// The decoder (HF `Qwen2VLTextModel`, `model.*` in the hub checkpoint).
#[derive(Module, Debug)]
pub struct Qwen2Decoder {
    /// Token embeddings.
    pub embed_tokens: Embedding,
    /// Layers.
    pub layers: Vec<DecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
    #[module(skip)]
    config: TextConfig,
}

impl Qwen2Decoder {
    /// A decoder with `config`'s shape and random weights, to be filled by the loader.
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        let hidden = config.hidden_size;
        let head_dim = config.head_dim();
        let key_value_width = config.num_key_value_heads * head_dim;
        let norm = || {
            RmsNormConfig::new(hidden)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
        };
        let bare = |input: usize, output: usize| {
            LinearConfig::new(input, output)
                .with_bias(false)
                .init(device)
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: DecoderAttention {
                    q_proj: LinearConfig::new(hidden, hidden).init(device),
                    k_proj: LinearConfig::new(hidden, key_value_width).init(device),
                    v_proj: LinearConfig::new(hidden, key_value_width).init(device),
                    o_proj: bare(hidden, hidden),
                    heads: config.num_attention_heads,
                    key_value_heads: config.num_key_value_heads,
                },
                mlp: DecoderMlp {
                    gate_proj: bare(hidden, config.intermediate_size),
                    up_proj: bare(hidden, config.intermediate_size),
                    down_proj: bare(config.intermediate_size, hidden),
                },
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        Qwen2Decoder {
            embed_tokens: EmbeddingConfig::new(config.vocab_size, hidden).init(device),
            layers,
            norm: norm(),
            config: config.clone(),
        }
    }

    /// The decoder's configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// The final hidden states `[batch, length, hidden]` (after the last RMSNorm) of
    /// `embeddings` `[batch, length, hidden]` at `positions`, `attention_mask` `[batch ×
    /// length]` marking the real tokens.
    pub fn forward_embeddings(
        &self,
        embeddings: Tensor<3>,
        positions: &MultimodalPositions,
        attention_mask: &[bool],
    ) -> Tensor<3> {
        let device = embeddings.device();
        let [batch, length, _] = embeddings.dims();
        let (cos, sin) = self.rotary_tables(positions, &device);
        let dtype = embeddings.dtype();
        let (cos, sin) = (to_dtype(cos, dtype), to_dtype(sin, dtype));
        let masked = causal_padding_mask(attention_mask, batch, length, &device);
        let mut hidden = embeddings;
        for layer in &self.layers {
            let attended = hidden.clone()
                + layer.self_attn.forward(
                    layer.input_layernorm.forward(hidden),
                    cos.clone(),
                    sin.clone(),
                    masked.clone(),
                );
            hidden = attended.clone()
                + layer
                    .mlp
                    .forward(layer.post_attention_layernorm.forward(attended));
        }
        self.norm.forward(hidden)
    }

    /// Rotary cosines and sines `[batch, 1, length, head_dim]`: frequency `j` turns with the
    /// time, row or column position according to `mrope_section`, the second half of the
    /// head repeating the first.
    fn rotary_tables(
        &self,
        positions: &MultimodalPositions,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let head_dim = self.config.head_dim();
        let frequencies = inverse_frequencies(head_dim, self.config.rope_theta);
        let [time, rows, _] = self.config.mrope_section;
        let axis_of = |frequency: usize| {
            if frequency < time {
                0
            } else if frequency < time + rows {
                1
            } else {
                2
            }
        };
        let (batch, length) = (positions.batch, positions.length);
        let mut angles = Vec::with_capacity(batch * length * head_dim);
        for sequence in 0..batch {
            for token in 0..length {
                let start = angles.len();
                angles.extend(frequencies.iter().enumerate().map(|(index, frequency)| {
                    positions.get(axis_of(index), sequence, token) as f32 * frequency
                }));
                angles.extend_from_within(start..);
            }
        }
        let table = |values: Vec<f32>| {
            Tensor::<4>::from_data(
                TensorData::new(values, [batch, 1, length, head_dim]),
                device,
            )
        };
        (
            table(angles.iter().map(|angle| angle.cos()).collect()),
            table(angles.iter().map(|angle| angle.sin()).collect()),
        )
    }
}

/// True where query `i` may not attend to key `j`: a later key, or a padding key other than
/// itself. A padding query keeps its own key so that its row is not all masked (a NaN there
/// would reach real tokens through the next layer's values); real tokens never see it.
fn causal_padding_mask(
    attention_mask: &[bool],
    batch: usize,
    length: usize,
    device: &Device,
) -> Tensor<4, Bool> {
    let mut masked = Vec::with_capacity(batch * length * length);
    for sequence in 0..batch {
        let row = &attention_mask[sequence * length..(sequence + 1) * length];
        for query in 0..length {
            masked.extend((0..length).map(|key| key > query || (!row[key] && key != query)));
        }
    }
    Tensor::<4, Bool>::from_data(TensorData::new(masked, [batch, 1, length, length]), device)
}

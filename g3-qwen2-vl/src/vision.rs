//! Qwen2-VL's vision tower: patches of `temporal_patch_size` frames × `patch_size`² pixels
//! embedded by a bias-free 3-D convolution (a matrix product, since kernel and stride are the
//! patch), transformer blocks with 2-D rotary positions and attention within each frame, and a
//! merger that concatenates each square of `spatial_merge_size`² neighbouring patches into one
//! decoder token.
//!
//! Field names follow the checkpoint (`visual.blocks.0.attn.qkv`, `visual.merger.ln_q`), so
//! weights load with one renaming (the merger's `mlp.0`/`mlp.2`, see [`crate::loader`]).

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid, softmax};

use crate::config::VisionConfig;
use crate::error::Qwen2VlError;
use crate::rotary::{apply_rotary, inverse_frequencies, to_dtype};

/// The patch count of one image along time, height and width, before merging (HF
/// `image_grid_thw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageGrid {
    /// Frames of patches: 1 for a photo.
    pub frames: usize,
    /// Patch rows.
    pub rows: usize,
    /// Patch columns.
    pub columns: usize,
}

impl ImageGrid {
    /// Patches in the grid: rows of `pixel_values` this image takes.
    pub fn patches(&self) -> usize {
        self.frames * self.rows * self.columns
    }

    /// Decoder tokens the image becomes after merging `merge` × `merge` squares.
    pub fn merged_tokens(&self, merge: usize) -> usize {
        self.patches() / (merge * merge)
    }
}

/// The patch embedding: HF's `Conv3d` weight, `[embed_dim, channels, frames, side, side]`.
#[derive(Module, Debug)]
pub struct PatchProjection {
    /// The convolution kernel.
    pub weight: Param<Tensor<5>>,
}

/// Wraps the projection under HF's name (`patch_embed.proj`).
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// The projection.
    pub proj: PatchProjection,
}

impl PatchEmbed {
    /// `[patches, channels × frames × side × side]` → `[patches, embed_dim]`.
    pub fn forward(&self, pixel_values: Tensor<2>) -> Tensor<2> {
        let kernel: Tensor<2> = self.proj.weight.val().flatten(1, 4);
        pixel_values.matmul(kernel.transpose())
    }
}

/// Self-attention of the vision blocks: one `qkv` projection, attention within each frame.
#[derive(Module, Debug)]
pub struct VisionAttention {
    /// Queries, keys and values, in that order, each `embed_dim` wide.
    pub qkv: Linear,
    /// The output projection.
    pub proj: Linear,
    heads: usize,
}

impl VisionAttention {
    /// `input` `[tokens, width]`; `frames` the token count of each frame, in order, summing
    /// to `tokens`; `cos`/`sin` `[tokens, head_dim]`.
    fn forward(
        &self,
        input: Tensor<2>,
        frames: &[usize],
        cos: Tensor<2>,
        sin: Tensor<2>,
    ) -> Tensor<2> {
        let [tokens, width] = input.dims();
        let head_dim = width / self.heads;
        let qkv = self
            .qkv
            .forward(input)
            .reshape([tokens, 3, self.heads, head_dim]);
        let part = |index: usize| {
            qkv.clone()
                .narrow(1, index, 1)
                .reshape([tokens, self.heads, head_dim])
        };
        let cos = cos.unsqueeze_dim::<3>(1);
        let sin = sin.unsqueeze_dim::<3>(1);
        // [heads, tokens, head_dim].
        let query = apply_rotary(part(0), cos.clone(), sin.clone()).swap_dims(0, 1);
        let key = apply_rotary(part(1), cos, sin).swap_dims(0, 1);
        let value = part(2).swap_dims(0, 1);
        let scale = (head_dim as f64).powf(-0.5);
        let mut outputs = Vec::with_capacity(frames.len());
        let mut start = 0;
        for &length in frames {
            let slice = |tensor: &Tensor<3>| tensor.clone().narrow(1, start, length);
            let scores = slice(&query).matmul(slice(&key).swap_dims(1, 2)) * scale;
            outputs.push(softmax(scores, 2).matmul(slice(&value)));
            start += length;
        }
        let context = Tensor::cat(outputs, 1)
            .swap_dims(0, 1)
            .reshape([tokens, width]);
        self.proj.forward(context)
    }
}

/// The feed-forward part of a vision block, with QuickGELU.
#[derive(Module, Debug)]
pub struct VisionMlp {
    /// Up to the MLP width.
    pub fc1: Linear,
    /// Back to the block width.
    pub fc2: Linear,
}

/// QuickGELU: `x · σ(1.702 x)`.
fn quick_gelu<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    input.clone() * sigmoid(input * 1.702)
}

impl VisionMlp {
    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(quick_gelu(self.fc1.forward(input)))
    }
}

/// One pre-norm transformer block of the vision tower.
#[derive(Module, Debug)]
pub struct VisionBlock {
    /// Before attention.
    pub norm1: LayerNorm,
    /// Before the MLP.
    pub norm2: LayerNorm,
    /// Self-attention.
    pub attn: VisionAttention,
    /// Feed-forward.
    pub mlp: VisionMlp,
}

impl VisionBlock {
    fn forward(
        &self,
        input: Tensor<2>,
        frames: &[usize],
        cos: Tensor<2>,
        sin: Tensor<2>,
    ) -> Tensor<2> {
        let attended = input.clone()
            + self
                .attn
                .forward(self.norm1.forward(input), frames, cos, sin);
        attended.clone() + self.mlp.forward(self.norm2.forward(attended))
    }
}

/// The merger's two layers (HF `mlp.0` and `mlp.2`, a GELU between them).
#[derive(Module, Debug)]
pub struct MergerMlp {
    /// `embed_dim × merge²` → same.
    pub input: Linear,
    /// → the decoder's width.
    pub output: Linear,
}

/// Concatenates each square of merged patches (consecutive in the patch order) and projects
/// it to the decoder's width.
#[derive(Module, Debug)]
pub struct PatchMerger {
    /// Layer norm over each patch before concatenation.
    pub ln_q: LayerNorm,
    /// The projection.
    pub mlp: MergerMlp,
    merged: usize,
}

impl PatchMerger {
    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let [tokens, width] = input.dims();
        let grouped = self
            .ln_q
            .forward(input)
            .reshape([tokens / self.merged, width * self.merged]);
        self.mlp
            .output
            .forward(gelu(self.mlp.input.forward(grouped)))
    }
}

/// The whole vision tower (HF `Qwen2VisionTransformerPretrainedModel`).
#[derive(Module, Debug)]
pub struct VisionTransformer {
    /// Patch embedding.
    pub patch_embed: PatchEmbed,
    /// Transformer blocks.
    pub blocks: Vec<VisionBlock>,
    /// Patch merger.
    pub merger: PatchMerger,
    #[module(skip)]
    config: VisionConfig,
}

impl VisionTransformer {
    /// A tower with `config`'s shape and random weights, to be filled by the loader.
    pub fn new(config: &VisionConfig, device: &Device) -> Self {
        let width = config.embed_dim;
        let norm = || LayerNormConfig::new(width).with_epsilon(1e-6).init(device);
        let blocks = (0..config.depth)
            .map(|_| VisionBlock {
                norm1: norm(),
                norm2: norm(),
                attn: VisionAttention {
                    qkv: LinearConfig::new(width, 3 * width).init(device),
                    proj: LinearConfig::new(width, width).init(device),
                    heads: config.num_heads,
                },
                mlp: VisionMlp {
                    fc1: LinearConfig::new(width, config.mlp_width()).init(device),
                    fc2: LinearConfig::new(config.mlp_width(), width).init(device),
                },
            })
            .collect();
        let merged = config.spatial_merge_size * config.spatial_merge_size;
        let merged_width = width * merged;
        VisionTransformer {
            patch_embed: PatchEmbed {
                proj: PatchProjection {
                    weight: Param::from_tensor(Tensor::zeros(
                        [
                            width,
                            config.in_channels,
                            config.temporal_patch_size,
                            config.patch_size,
                            config.patch_size,
                        ],
                        device,
                    )),
                },
            },
            blocks,
            merger: PatchMerger {
                ln_q: norm(),
                mlp: MergerMlp {
                    input: LinearConfig::new(merged_width, merged_width).init(device),
                    output: LinearConfig::new(merged_width, config.hidden_size).init(device),
                },
                merged,
            },
            config: config.clone(),
        }
    }

    /// The tower's configuration.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Embeds the patches of several images, concatenated in order (`pixel_values`
    /// `[patches, patch_values]`, `grids` their grids): `[merged tokens, hidden_size]`, each
    /// image's tokens in order.
    pub fn forward(
        &self,
        pixel_values: Tensor<2>,
        grids: &[ImageGrid],
    ) -> Result<Tensor<2>, Qwen2VlError> {
        let [patches, values] = pixel_values.dims();
        let expected: usize = grids.iter().map(ImageGrid::patches).sum();
        let merge = self.config.spatial_merge_size;
        if patches != expected || values != self.config.patch_values() {
            return Err(Qwen2VlError::InvalidInput {
                reason: format!(
                    "pixel values are {patches} × {values}; the image grids need {expected} × {}",
                    self.config.patch_values()
                ),
            });
        }
        if let Some(grid) = grids
            .iter()
            .find(|grid| grid.rows % merge != 0 || grid.columns % merge != 0 || grid.frames == 0)
        {
            return Err(Qwen2VlError::InvalidInput {
                reason: format!(
                    "image grid {grid:?} does not divide into {merge} × {merge} squares"
                ),
            });
        }
        let device = pixel_values.device();
        let dtype = self.patch_embed.proj.weight.val().dtype();
        let pixel_values = to_dtype(pixel_values, dtype);
        let (cos, sin) = self.rotary_tables(grids, &device);
        let (cos, sin) = (to_dtype(cos, dtype), to_dtype(sin, dtype));
        let frames: Vec<usize> = grids
            .iter()
            .flat_map(|grid| std::iter::repeat_n(grid.rows * grid.columns, grid.frames))
            .collect();
        let mut hidden = self.patch_embed.forward(pixel_values);
        for block in &self.blocks {
            hidden = block.forward(hidden, &frames, cos.clone(), sin.clone());
        }
        Ok(self.merger.forward(hidden))
    }

    /// The rotary cosines and sines of every patch, `[patches, head_dim]`: half the
    /// frequencies follow the patch's row, half its column, in the merged-square order of
    /// the patches.
    fn rotary_tables(&self, grids: &[ImageGrid], device: &Device) -> (Tensor<2>, Tensor<2>) {
        let head_dim = self.config.head_dim();
        let frequencies = inverse_frequencies(head_dim / 2, 10_000.0);
        let merge = self.config.spatial_merge_size;
        let patches: usize = grids.iter().map(ImageGrid::patches).sum();
        let mut angles = Vec::with_capacity(patches * head_dim);
        for grid in grids {
            for _ in 0..grid.frames {
                for block_row in 0..grid.rows / merge {
                    for block_column in 0..grid.columns / merge {
                        for inner_row in 0..merge {
                            for inner_column in 0..merge {
                                let row = (block_row * merge + inner_row) as f32;
                                let column = (block_column * merge + inner_column) as f32;
                                let start = angles.len();
                                angles.extend(frequencies.iter().map(|f| row * f));
                                angles.extend(frequencies.iter().map(|f| column * f));
                                angles.extend_from_within(start..);
                            }
                        }
                    }
                }
            }
        }
        let cos = angles.iter().map(|angle| angle.cos()).collect();
        let sin = angles.iter().map(|angle| angle.sin()).collect();
        let table = |values: Vec<f32>| {
            Tensor::<2>::from_data(TensorData::new(values, [patches, head_dim]), device)
        };
        (table(cos), table(sin))
    }
}

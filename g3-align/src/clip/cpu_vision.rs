//! CLIP's vision tower evaluated on the CPU without burn: the inference path of
//! [`ImageEncoder`](crate::ImageEncoder) on the ndarray device.
//!
//! Every image G3 embeds (the database and each query) goes through ViT-L/14, so its speed on
//! the CPU decides how long embedding takes. burn-ndarray runs each operation as a separate
//! pass over freshly allocated tensors and its matrix products through `matrixmultiply`;
//! [`CpuVisionTower`] instead copies the weights once into plain memory (q, k and v fused into
//! one matrix), runs every matrix product through the `gemm` crate on all cores (with the
//! AVX2 or AVX-512 kernels it picks at run time), fuses bias with activation and residual
//! additions, reuses its buffers from block to block, and computes attention head by head in
//! parallel, materialising only one head's `[tokens, tokens]` scores per thread. The burn
//! module stays the model for loading, training and GPUs; this is a faithful copy of its
//! forward pass (tested against it and against transformers' float64 outputs). The
//! arithmetic lives in [`g3_kernels`]; this file describes the tower.

use std::sync::Mutex;

use g3_kernels::{
    Activation, AttentionShape, Dense, LayerNorm, MatrixMut, MatrixRef, Product, matmul,
    self_attention,
};
use rayon::prelude::*;

use super::config::HiddenActivation;
use super::model::ClipVisionTransformer;
use crate::cpu_weights::{dense, layer_norm, read_weights};
use crate::error::AlignError;

/// A copy of a [`ClipVisionTransformer`]'s parameters in plain memory, evaluated with
/// multi-threaded GEMM. Build it with [`CpuVisionTower::from_tower`].
#[derive(Debug)]
pub struct CpuVisionTower {
    weights: Weights,
    /// Buffers of finished calls, reused so that a call touches no fresh memory.
    spare: Mutex<Vec<Workspace>>,
}

impl Clone for CpuVisionTower {
    fn clone(&self) -> Self {
        CpuVisionTower {
            weights: self.weights.clone(),
            spare: Mutex::new(Vec::new()),
        }
    }
}

/// The parameters and shapes of the tower.
#[derive(Debug, Clone)]
struct Weights {
    /// Patch embedding as a matrix: `[channels · patch², width]`, rows in (channel, y, x)
    /// order, so an image's patches multiply it directly.
    patch_weight: Vec<f32>,
    class_embedding: Vec<f32>,
    /// `[tokens, width]`.
    positions: Vec<f32>,
    pre_norm: LayerNorm,
    blocks: Vec<Block>,
    post_norm: LayerNorm,
    activation: Activation,
    channels: usize,
    patch: usize,
    image_size: usize,
    width: usize,
    heads: usize,
}

/// One transformer block; `qkv` holds the query, key and value projections side by side.
#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: Dense,
    out: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

/// Buffers reused by every block of one forward pass (and by later calls).
#[derive(Debug, Default)]
struct Workspace {
    /// `[images · patches, channels · patch²]`: the images cut into patches.
    patches: Vec<f32>,
    /// `[rows, width]`: the residual stream.
    hidden: Vec<f32>,
    /// `[rows, width]`: normalised input of a sublayer, then the attention's context.
    normed: Vec<f32>,
    /// `[rows, 3 · width]`: queries, keys and values.
    qkv: Vec<f32>,
    /// `[rows, intermediate]`: the feed-forward activations.
    intermediate: Vec<f32>,
}

impl CpuVisionTower {
    /// Copies the parameters of `tower` (wherever they live) into host memory.
    pub fn from_tower(tower: &ClipVisionTransformer) -> Result<Self, AlignError> {
        let patch_conv = &tower.embeddings.patch_embedding;
        let [width, channels, patch, patch_width] = patch_conv.weight.dims();
        if patch != patch_width || patch_conv.stride != [patch, patch] {
            return Err(AlignError::InvalidConfig {
                reason: format!(
                    "the CPU vision tower takes square, non-overlapping patches, not a {patch} x {patch_width} kernel with stride {:?}",
                    patch_conv.stride
                ),
            });
        }
        // [width, channels · patch²] → its transpose, the right-hand side of patches · W.
        let conv = read_weights(patch_conv.weight.val())?;
        let patch_values = channels * patch * patch;
        let mut patch_weight = vec![0.0; patch_values * width];
        for (output, row) in conv.chunks_exact(patch_values).enumerate() {
            for (input, value) in row.iter().enumerate() {
                patch_weight[input * width + output] = *value;
            }
        }
        let epsilon = tower.layer_norm_epsilon() as f32;
        let blocks = tower
            .encoder
            .layers
            .iter()
            .map(|layer| {
                let attention = &layer.self_attn;
                Ok(Block {
                    norm1: layer_norm(&layer.layer_norm1, epsilon)?,
                    qkv: dense(&[&attention.q_proj, &attention.k_proj, &attention.v_proj])?,
                    out: dense(&[&attention.out_proj])?,
                    norm2: layer_norm(&layer.layer_norm2, epsilon)?,
                    fc1: dense(&[&layer.mlp.fc1])?,
                    fc2: dense(&[&layer.mlp.fc2])?,
                })
            })
            .collect::<Result<Vec<_>, AlignError>>()?;
        let heads = tower
            .encoder
            .layers
            .first()
            .map_or(1, |layer| layer.self_attn.heads());
        Ok(CpuVisionTower {
            weights: Weights {
                patch_weight,
                class_embedding: read_weights(tower.embeddings.class_embedding.val())?,
                positions: read_weights(tower.embeddings.position_embedding.weight.val())?,
                pre_norm: layer_norm(&tower.pre_layrnorm, epsilon)?,
                post_norm: layer_norm(&tower.post_layernorm, epsilon)?,
                activation: match tower
                    .encoder
                    .layers
                    .first()
                    .map_or(HiddenActivation::QuickGelu, |layer| layer.mlp.activation())
                {
                    HiddenActivation::QuickGelu => Activation::QuickGelu,
                    HiddenActivation::Gelu => Activation::Gelu,
                },
                blocks,
                channels,
                patch,
                image_size: tower.image_size(),
                width,
                heads,
            },
            spare: Mutex::new(Vec::new()),
        })
    }

    /// Width of the pooled output.
    pub fn width(&self) -> usize {
        self.weights.width
    }

    /// Values of one preprocessed image (`channels · side²`).
    pub fn values_per_image(&self) -> usize {
        self.weights.values_per_image()
    }

    /// `[images, channels, side, side]` normalised pixels (concatenated) → `[images, width]`
    /// post-normed class tokens, the same as the tower's `pooled` output.
    pub fn pooled(&self, pixels: &[f32], images: usize) -> Result<Vec<f32>, AlignError> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut work = spare.unwrap_or_default();
        let pooled = self.weights.pooled(pixels, images, &mut work);
        self.spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(work);
        pooled
    }
}

impl Weights {
    fn values_per_image(&self) -> usize {
        self.channels * self.image_size * self.image_size
    }

    fn tokens(&self) -> usize {
        let side = self.image_size / self.patch;
        side * side + 1
    }

    fn pooled(
        &self,
        pixels: &[f32],
        images: usize,
        work: &mut Workspace,
    ) -> Result<Vec<f32>, AlignError> {
        if pixels.len() != images * self.values_per_image() {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "{} pixel values for {images} images of [{}, {side}, {side}]",
                    pixels.len(),
                    self.channels,
                    side = self.image_size
                ),
            });
        }
        if images == 0 {
            return Ok(Vec::new());
        }
        let tokens = self.tokens();
        let rows = images * tokens;
        let intermediate = self.blocks.first().map_or(0, |block| block.fc1.output());
        let patch_values = self.channels * self.patch * self.patch;
        // Every value is written before it is read, so stale contents do no harm.
        work.patches
            .resize(images * (tokens - 1) * patch_values, 0.0);
        work.hidden.resize(rows * self.width, 0.0);
        work.normed.resize(rows * self.width, 0.0);
        work.qkv.resize(rows * 3 * self.width, 0.0);
        work.intermediate.resize(rows * intermediate, 0.0);
        self.embed(pixels, images, &mut work.patches, &mut work.hidden);
        self.pre_norm.normalize_in_place(&mut work.hidden);
        for block in &self.blocks {
            self.block(block, images, work);
        }
        let mut pooled = Vec::with_capacity(images * self.width);
        for image in 0..images {
            let start = image * tokens * self.width;
            pooled.extend_from_slice(&work.hidden[start..start + self.width]);
        }
        self.post_norm.normalize_in_place(&mut pooled);
        Ok(pooled)
    }

    /// Class token and patch embeddings plus positions, for every image, into `hidden`.
    fn embed(&self, pixels: &[f32], images: usize, patches: &mut [f32], hidden: &mut [f32]) {
        let (width, tokens, patch) = (self.width, self.tokens(), self.patch);
        let side = self.image_size / patch;
        let patch_values = self.channels * patch * patch;
        let per_image = self.values_per_image();
        // Patches as rows (im2col): [images · patches, channels · patch²].
        let patches_per_image = side * side;
        patches
            .par_chunks_mut(patch_values)
            .enumerate()
            .for_each(|(index, row)| {
                let (image, cell) = (index / patches_per_image, index % patches_per_image);
                let (cell_y, cell_x) = (cell / side, cell % side);
                let image = &pixels[image * per_image..][..per_image];
                for channel in 0..self.channels {
                    for y in 0..patch {
                        let source = channel * self.image_size * self.image_size
                            + (cell_y * patch + y) * self.image_size
                            + cell_x * patch;
                        let target = (channel * patch + y) * patch;
                        row[target..target + patch].copy_from_slice(&image[source..][..patch]);
                    }
                }
            });
        for image in 0..images {
            let rows = &mut hidden[image * tokens * width..][..tokens * width];
            rows[..width].copy_from_slice(&self.class_embedding);
            // The patch rows of this image: [patches, width] = patches · W.
            matmul(
                MatrixRef::row_major(
                    &patches[image * patches_per_image * patch_values..],
                    patch_values,
                ),
                MatrixRef::row_major(&self.patch_weight, width),
                MatrixMut::row_major(&mut rows[width..], width),
                Product::new(patches_per_image, patch_values, width),
                rayon::current_num_threads(),
            );
            for (row, position) in rows
                .chunks_exact_mut(width)
                .zip(self.positions.chunks_exact(width))
            {
                for (value, add) in row.iter_mut().zip(position) {
                    *value += add;
                }
            }
        }
    }

    /// `x + attention(ln1(x))`, then `x + mlp(ln2(x))`, in place on `work.hidden`.
    fn block(&self, block: &Block, images: usize, work: &mut Workspace) {
        let rows = images * self.tokens();
        let threads = rayon::current_num_threads();
        let width = self.width;

        block.norm1.normalize_into(&work.hidden, &mut work.normed);
        block
            .qkv
            .forward(&work.normed, rows, &mut work.qkv, threads);
        // softmax(q kᵀ / √d) v for every image and head, heads side by side.
        self_attention(
            &work.qkv,
            &mut work.normed,
            AttentionShape {
                sequences: images,
                tokens: self.tokens(),
                width,
                heads: self.heads,
            },
        );
        // hidden += context · W_out + b_out
        block
            .out
            .accumulate(&work.normed, rows, &mut work.hidden, threads);

        block.norm2.normalize_into(&work.hidden, &mut work.normed);
        block
            .fc1
            .forward(&work.normed, rows, &mut work.intermediate, threads);
        self.activation.apply(&mut work.intermediate);
        block
            .fc2
            .accumulate(&work.intermediate, rows, &mut work.hidden, threads);
        debug_assert_eq!(work.hidden.len(), rows * width);
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::clip::{ClipVisionConfig, ClipVisionTransformer};

    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    fn device() -> Device {
        Device::ndarray()
    }

    fn tower(activation: HiddenActivation) -> ClipVisionTransformer {
        let config = ClipVisionConfig {
            hidden_size: 48,
            intermediate_size: 96,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            image_size: 28,
            patch_size: 7,
            num_channels: 3,
            layer_norm_eps: 1e-5,
            hidden_act: activation,
        };
        ClipVisionTransformer::new(&config, &device())
    }

    #[test]
    fn matches_the_burn_tower() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for activation in [HiddenActivation::QuickGelu, HiddenActivation::Gelu] {
            let tower = tower(activation);
            let cpu = CpuVisionTower::from_tower(&tower).unwrap();
            for images in [1, 3] {
                let pixels: Vec<f32> = (0..images * cpu.values_per_image())
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let ours = pool.install(|| cpu.pooled(&pixels, images).unwrap());
                let input = Tensor::<4>::from_data(
                    TensorData::new(pixels.clone(), [images, 3, 28, 28]),
                    &device(),
                );
                let reference = read_weights(tower.forward(input).unwrap().pooled).unwrap();
                assert_eq!(ours.len(), reference.len());
                for (index, (a, b)) in ours.iter().zip(&reference).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{activation:?}, {images} images, value {index}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_pixel_counts_are_refused() {
        let cpu = CpuVisionTower::from_tower(&tower(HiddenActivation::QuickGelu)).unwrap();
        let error = cpu.pooled(&[0.0; 10], 1).unwrap_err().to_string();
        assert!(error.contains("10 pixel values"), "{error}");
        assert!(cpu.pooled(&[], 0).unwrap().is_empty());
    }
}

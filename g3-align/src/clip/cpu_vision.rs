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
//! forward pass (tested against it and against transformers' float64 outputs).

use burn::nn::{LayerNorm, Linear};
use std::sync::Mutex;

use rayon::prelude::*;

use super::config::HiddenActivation;
use super::model::ClipVisionTransformer;
use crate::cpu_inference::read_weights;
use crate::error::AlignError;

/// Rows of tokens normalised or activated per parallel task.
const ROWS_PER_TASK: usize = 16;

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
    pre_norm: Norm,
    blocks: Vec<Block>,
    post_norm: Norm,
    activation: HiddenActivation,
    channels: usize,
    patch: usize,
    image_size: usize,
    width: usize,
    heads: usize,
}

/// A layer norm's scale, shift and epsilon.
#[derive(Debug, Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    epsilon: f32,
}

/// A Linear layer: `weight` is `[input, output]` row-major (burn's layout), `bias` has
/// `output` values.
#[derive(Debug, Clone)]
struct Dense {
    input: usize,
    output: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// One transformer block; `qkv` holds the query, key and value projections side by side.
#[derive(Debug, Clone)]
struct Block {
    norm1: Norm,
    qkv: Dense,
    out: Dense,
    norm2: Norm,
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
                    norm1: Norm::from_layer_norm(&layer.layer_norm1, epsilon)?,
                    qkv: Dense::side_by_side(&[
                        &attention.q_proj,
                        &attention.k_proj,
                        &attention.v_proj,
                    ])?,
                    out: Dense::from_linear(&attention.out_proj)?,
                    norm2: Norm::from_layer_norm(&layer.layer_norm2, epsilon)?,
                    fc1: Dense::from_linear(&layer.mlp.fc1)?,
                    fc2: Dense::from_linear(&layer.mlp.fc2)?,
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
                pre_norm: Norm::from_layer_norm(&tower.pre_layrnorm, epsilon)?,
                post_norm: Norm::from_layer_norm(&tower.post_layernorm, epsilon)?,
                activation: tower
                    .encoder
                    .layers
                    .first()
                    .map_or(HiddenActivation::QuickGelu, |layer| layer.mlp.activation()),
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
        let intermediate = self.blocks.first().map_or(0, |block| block.fc1.output);
        let patch_values = self.channels * self.patch * self.patch;
        // Every value is written before it is read, so stale contents do no harm.
        work.patches
            .resize(images * (tokens - 1) * patch_values, 0.0);
        work.hidden.resize(rows * self.width, 0.0);
        work.normed.resize(rows * self.width, 0.0);
        work.qkv.resize(rows * 3 * self.width, 0.0);
        work.intermediate.resize(rows * intermediate, 0.0);
        self.embed(pixels, images, &mut work.patches, &mut work.hidden);
        normalize_rows(&self.pre_norm, &mut work.hidden, None);
        for block in &self.blocks {
            self.block(block, images, work);
        }
        let mut pooled = Vec::with_capacity(images * self.width);
        for image in 0..images {
            let start = image * tokens * self.width;
            pooled.extend_from_slice(&work.hidden[start..start + self.width]);
        }
        normalize_rows(&self.post_norm, &mut pooled, None);
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
                &mut rows[width..],
                width,
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

        normalize_rows(&block.norm1, &mut work.normed, Some(&work.hidden));
        dense(&block.qkv, &work.normed, rows, &mut work.qkv, threads);
        self.attention(images, &work.qkv, &mut work.normed);
        // hidden += context · W_out + b_out
        accumulate(&block.out, &work.normed, rows, &mut work.hidden, threads);

        normalize_rows(&block.norm2, &mut work.normed, Some(&work.hidden));
        dense(
            &block.fc1,
            &work.normed,
            rows,
            &mut work.intermediate,
            threads,
        );
        activate(self.activation, &mut work.intermediate);
        accumulate(
            &block.fc2,
            &work.intermediate,
            rows,
            &mut work.hidden,
            threads,
        );
        debug_assert_eq!(work.hidden.len(), rows * width);
    }

    /// `softmax(q kᵀ / √d) v` for every image and head, written into `context`
    /// (`[rows, width]`, heads side by side as the output projection expects).
    fn attention(&self, images: usize, qkv: &[f32], context: &mut [f32]) {
        let (tokens, width, heads) = (self.tokens(), self.width, self.heads);
        let head_width = width / heads;
        let scale = 1.0 / (head_width as f32).sqrt();
        let output = SharedMatrix(context.as_mut_ptr());
        let context_len = context.len();
        (0..images * heads).into_par_iter().for_each_init(
            || vec![0.0f32; tokens * tokens],
            |scores, task| {
                let (image, head) = (task / heads, task % heads);
                let base = image * tokens * 3 * width + head * head_width;
                let stride = 3 * width;
                // scores = scale · q kᵀ: [tokens, head_width] · [head_width, tokens].
                matmul(
                    MatrixRef::strided(&qkv[base..], stride, 1),
                    MatrixRef::strided(&qkv[base + width..], 1, stride),
                    scores,
                    tokens,
                    Product::new(tokens, head_width, tokens).scaled(scale),
                    1,
                );
                for row in scores.chunks_exact_mut(tokens) {
                    softmax(row);
                }
                let first = image * tokens * width + head * head_width;
                debug_assert!(first + (tokens - 1) * width + head_width <= context_len);
                // SAFETY: this task alone writes the `[tokens, head_width]` block of `context`
                // at rows `image · tokens ..` and columns `head · head_width ..`: tasks differ
                // in image or head, so their blocks are disjoint, and the block lies inside
                // `context` (`images · tokens` rows of `width` values; checked above in debug
                // builds). `context` is not otherwise used until every task is done.
                let block = unsafe { output.block(first, tokens, head_width, width) };
                // context = scores · v: [tokens, tokens] · [tokens, head_width], replacing
                // what the buffer held.
                run_gemm(
                    MatrixRef::row_major(scores, tokens),
                    MatrixRef::strided(&qkv[base + 2 * width..], stride, 1),
                    block,
                    Product::new(tokens, tokens, head_width),
                    false,
                    1,
                );
            },
        );
    }
}

impl Norm {
    fn from_layer_norm(norm: &LayerNorm, epsilon: f32) -> Result<Self, AlignError> {
        let gamma = read_weights(norm.gamma.val())?;
        let beta = match &norm.beta {
            Some(beta) => read_weights(beta.val())?,
            None => vec![0.0; gamma.len()],
        };
        Ok(Norm {
            gamma,
            beta,
            epsilon,
        })
    }
}

impl Dense {
    fn from_linear(linear: &Linear) -> Result<Self, AlignError> {
        Dense::side_by_side(&[linear])
    }

    /// Several layers of the same input width as one, outputs side by side.
    fn side_by_side(linears: &[&Linear]) -> Result<Self, AlignError> {
        let input = linears[0].weight.dims()[0];
        let outputs: Vec<usize> = linears
            .iter()
            .map(|linear| linear.weight.dims()[1])
            .collect();
        let output: usize = outputs.iter().sum();
        let mut weight = vec![0.0; input * output];
        let mut bias = Vec::with_capacity(output);
        let mut column = 0;
        for (linear, &width) in linears.iter().zip(&outputs) {
            if linear.weight.dims()[0] != input {
                return Err(AlignError::InvalidConfig {
                    reason: "fused projections must share their input width".into(),
                });
            }
            let values = read_weights(linear.weight.val())?;
            for (row, source) in values.chunks_exact(width).enumerate() {
                weight[row * output + column..][..width].copy_from_slice(source);
            }
            match &linear.bias {
                Some(linear_bias) => bias.extend(read_weights(linear_bias.val())?),
                None => bias.extend(std::iter::repeat_n(0.0, width)),
            }
            column += width;
        }
        Ok(Dense {
            input,
            output,
            weight,
            bias,
        })
    }
}

/// `output = input · W + b` over `rows` rows.
fn dense(layer: &Dense, input: &[f32], rows: usize, output: &mut [f32], threads: usize) {
    for row in output.chunks_exact_mut(layer.output) {
        row.copy_from_slice(&layer.bias);
    }
    matmul_into(
        MatrixRef::row_major(input, layer.input),
        MatrixRef::row_major(&layer.weight, layer.output),
        MatrixMut::row_major(output, layer.output),
        Product::new(rows, layer.input, layer.output),
        threads,
    );
}

/// `output += input · W + b` over `rows` rows (a sublayer added to the residual stream).
fn accumulate(layer: &Dense, input: &[f32], rows: usize, output: &mut [f32], threads: usize) {
    output.par_chunks_mut(layer.output).for_each(|row| {
        for (value, bias) in row.iter_mut().zip(&layer.bias) {
            *value += bias;
        }
    });
    matmul_into(
        MatrixRef::row_major(input, layer.input),
        MatrixRef::row_major(&layer.weight, layer.output),
        MatrixMut::row_major(output, layer.output),
        Product::new(rows, layer.input, layer.output),
        threads,
    );
}

/// The shape of a matrix product `[m, k] · [k, n]` and its scale.
#[derive(Debug, Clone, Copy)]
struct Product {
    m: usize,
    k: usize,
    n: usize,
    scale: f32,
}

impl Product {
    fn new(m: usize, k: usize, n: usize) -> Self {
        Product {
            m,
            k,
            n,
            scale: 1.0,
        }
    }

    fn scaled(self, scale: f32) -> Self {
        Product { scale, ..self }
    }
}

/// A read-only matrix view: element `(i, j)` at `values[i · row_stride + j · column_stride]`.
#[derive(Clone, Copy)]
struct MatrixRef<'a> {
    values: &'a [f32],
    row_stride: usize,
    column_stride: usize,
}

impl<'a> MatrixRef<'a> {
    fn row_major(values: &'a [f32], columns: usize) -> Self {
        MatrixRef::strided(values, columns, 1)
    }

    fn strided(values: &'a [f32], row_stride: usize, column_stride: usize) -> Self {
        MatrixRef {
            values,
            row_stride,
            column_stride,
        }
    }

    /// Whether `rows × columns` elements lie inside the slice.
    fn holds(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.values.len()
    }
}

/// A writable matrix view with a row stride (columns are contiguous).
struct MatrixMut<'a> {
    pointer: *mut f32,
    /// Values reachable from `pointer`.
    len: usize,
    row_stride: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> MatrixMut<'a> {
    fn row_major(values: &'a mut [f32], columns: usize) -> Self {
        MatrixMut {
            pointer: values.as_mut_ptr(),
            len: values.len(),
            row_stride: columns,
            _borrow: std::marker::PhantomData,
        }
    }

    fn holds(&self, rows: usize, columns: usize) -> bool {
        rows == 0 || columns == 0 || (rows - 1) * self.row_stride + columns <= self.len
    }
}

/// `output = product.scale · lhs · rhs`, replacing what `output` held (`[m, n]`, row stride
/// `output_stride`).
fn matmul(
    lhs: MatrixRef<'_>,
    rhs: MatrixRef<'_>,
    output: &mut [f32],
    output_stride: usize,
    product: Product,
    threads: usize,
) {
    run_gemm(
        lhs,
        rhs,
        MatrixMut {
            pointer: output.as_mut_ptr(),
            len: output.len(),
            row_stride: output_stride,
            _borrow: std::marker::PhantomData,
        },
        product,
        false,
        threads,
    );
}

/// `output += product.scale · lhs · rhs`.
fn matmul_into(
    lhs: MatrixRef<'_>,
    rhs: MatrixRef<'_>,
    output: MatrixMut<'_>,
    product: Product,
    threads: usize,
) {
    run_gemm(lhs, rhs, output, product, true, threads);
}

fn run_gemm(
    lhs: MatrixRef<'_>,
    rhs: MatrixRef<'_>,
    output: MatrixMut<'_>,
    product: Product,
    accumulate: bool,
    threads: usize,
) {
    let Product { m, k, n, scale } = product;
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n) && output.holds(m, n),
        "matrix views hold the product's shapes"
    );
    // SAFETY: gemm reads the m × k matrix `lhs` and the k × n matrix `rhs` through their
    // strides and reads (when accumulating) and writes the m × n matrix `output` (row stride
    // `output.row_stride`, contiguous columns); the assertion above checks that every element
    // lies inside its slice. `output` is borrowed mutably for the call (or, for attention
    // blocks, is a block no other thread touches), so nothing else reads or writes it
    // meanwhile. gemm computes output = 1·output + scale·(lhs·rhs), or scale·(lhs·rhs).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            output.pointer,
            1,
            output.row_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

/// The context matrix, written by several attention tasks in disjoint blocks.
#[derive(Clone, Copy)]
struct SharedMatrix(*mut f32);

// SAFETY: tasks only write disjoint blocks of the matrix (see `attention`).
unsafe impl Send for SharedMatrix {}
unsafe impl Sync for SharedMatrix {}

impl SharedMatrix {
    /// The `rows × columns` block starting at element `first`, row stride `row_stride`.
    ///
    /// # Safety
    /// The block must lie inside the matrix and no other thread may use it while the view
    /// lives.
    unsafe fn block<'a>(
        self,
        first: usize,
        rows: usize,
        columns: usize,
        row_stride: usize,
    ) -> MatrixMut<'a> {
        MatrixMut {
            // SAFETY: the caller keeps `first` inside the matrix.
            pointer: unsafe { self.0.add(first) },
            len: (rows - 1) * row_stride + columns,
            row_stride,
            _borrow: std::marker::PhantomData,
        }
    }
}

/// Layer-normalises every `width`-wide row of `source` (or of `target` itself) into
/// `target`, on all cores.
fn normalize_rows(norm: &Norm, target: &mut [f32], source: Option<&[f32]>) {
    let width = norm.gamma.len();
    match source {
        Some(source) => target
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(source.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(target, source)| {
                for (target, source) in target
                    .chunks_exact_mut(width)
                    .zip(source.chunks_exact(width))
                {
                    kernels::layer_norm(source, target, &norm.gamma, &norm.beta, norm.epsilon);
                }
            }),
        None => target
            .par_chunks_mut(width * ROWS_PER_TASK)
            .for_each(|rows| {
                let mut source = vec![0.0; width];
                for row in rows.chunks_exact_mut(width) {
                    source.copy_from_slice(row);
                    kernels::layer_norm(&source, row, &norm.gamma, &norm.beta, norm.epsilon);
                }
            }),
    }
}

/// The feed-forward activation, in place, on all cores.
fn activate(activation: HiddenActivation, values: &mut [f32]) {
    values
        .par_chunks_mut(4096 * ROWS_PER_TASK)
        .for_each(|chunk| match activation {
            HiddenActivation::QuickGelu => kernels::quick_gelu(chunk),
            HiddenActivation::Gelu => kernels::gelu(chunk),
        });
}

/// Softmax of one row of scores, in place.
fn softmax(row: &mut [f32]) {
    kernels::softmax(row);
}

/// Element-wise kernels, each compiled for AVX-512, for AVX2 with FMA and for baseline
/// x86-64 (chosen once per call by the CPU's features), so the compiler vectorises the
/// exponentials, sums and products a ViT block spends its non-GEMM time on.
mod kernels {
    use crate::simd::dispatch;

    /// Independent partial sums per reduction, a multiple of every SIMD width.
    const LANES: usize = 16;

    dispatch!(layer_norm(source: &[f32], target: &mut [f32], gamma: &[f32], beta: &[f32], epsilon: f32));
    dispatch!(quick_gelu(values: &mut [f32]));
    dispatch!(gelu(values: &mut [f32]));
    dispatch!(softmax(row: &mut [f32]));

    /// The kernels, written so the compiler vectorises them (always inlined into each
    /// feature-specific copy).
    pub(super) mod generic {
        use super::LANES;

        /// `(x - mean) / sqrt(var + epsilon) · gamma + beta`, with the population variance,
        /// as PyTorch's `layer_norm`.
        #[inline(always)]
        pub(crate) fn layer_norm(
            source: &[f32],
            target: &mut [f32],
            gamma: &[f32],
            beta: &[f32],
            epsilon: f32,
        ) {
            let count = source.len() as f32;
            let mean = sum(source) / count;
            let mut squares = [0.0f32; LANES];
            let whole = source.len() - source.len() % LANES;
            for chunk in source[..whole].chunks_exact(LANES) {
                for lane in 0..LANES {
                    let centred = chunk[lane] - mean;
                    squares[lane] += centred * centred;
                }
            }
            let tail: f32 = source[whole..]
                .iter()
                .map(|value| (value - mean) * (value - mean))
                .sum();
            let variance = (squares.iter().sum::<f32>() + tail) / count;
            let inverse = 1.0 / (variance + epsilon).sqrt();
            for (((target, source), gamma), beta) in
                target.iter_mut().zip(source).zip(gamma).zip(beta)
            {
                *target = (source - mean) * inverse * gamma + beta;
            }
        }

        #[inline(always)]
        fn sum(values: &[f32]) -> f32 {
            let mut sums = [0.0f32; LANES];
            let whole = values.len() - values.len() % LANES;
            for chunk in values[..whole].chunks_exact(LANES) {
                for lane in 0..LANES {
                    sums[lane] += chunk[lane];
                }
            }
            sums.iter().sum::<f32>() + values[whole..].iter().sum::<f32>()
        }

        /// `x · sigmoid(1.702 x)`, OpenAI CLIP's activation.
        #[inline(always)]
        pub(crate) fn quick_gelu(values: &mut [f32]) {
            for value in values.iter_mut() {
                *value /= 1.0 + exp(-1.702 * *value);
            }
        }

        /// The exact GELU `x · Φ(x) = x / 2 · (1 + erf(x / √2))`.
        #[inline(always)]
        pub(crate) fn gelu(values: &mut [f32]) {
            for value in values.iter_mut() {
                *value *= 0.5 * (1.0 + erf(*value * std::f32::consts::FRAC_1_SQRT_2));
            }
        }

        /// `exp(x - max) / Σ exp(x - max)`, in place.
        #[inline(always)]
        pub(crate) fn softmax(row: &mut [f32]) {
            let mut maxima = [f32::NEG_INFINITY; LANES];
            let whole = row.len() - row.len() % LANES;
            for chunk in row[..whole].chunks_exact(LANES) {
                for lane in 0..LANES {
                    maxima[lane] = maxima[lane].max(chunk[lane]);
                }
            }
            let max = row[whole..].iter().fold(
                maxima.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)),
                |a, b| a.max(*b),
            );
            for value in row.iter_mut() {
                *value = exp(*value - max);
            }
            let inverse = 1.0 / sum(row);
            for value in row.iter_mut() {
                *value *= inverse;
            }
        }

        /// `e^x` in single precision, within a few ulp: `x = n ln 2 + r` with
        /// `|r| ≤ ln 2 / 2`, the degree-7 Taylor polynomial of `e^r` and the exponent bits for
        /// `2^n`. Branch-free, so loops over it vectorise. Inputs are clamped to
        /// `[-87.3, 88]`: below, the result is the smallest normal number (1.2e-38) instead of
        /// a subnormal or zero, which changes no softmax or activation in float32.
        #[inline(always)]
        pub(crate) fn exp(x: f32) -> f32 {
            const LN2_HIGH: f32 = 0.693_359_4;
            const LN2_LOW: f32 = -2.121_944_4e-4;
            // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
            const ROUND: f32 = 12_582_912.0;
            let x = x.clamp(-87.336_55, 88.0);
            let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
            let r = x - n * LN2_HIGH - n * LN2_LOW;
            let polynomial = 1.0
                + r * (1.0
                    + r * (0.5
                        + r * (0.166_666_67
                            + r * (0.041_666_668
                                + r * (0.008_333_334
                                    + r * (0.001_388_889 + r * 0.000_198_412_7))))));
            // n lies in [-126, 127]: 2^n from two halves whose biased exponents stay in
            // [1, 254]. The biased exponent, an integer-valued float, lands in the low
            // mantissa bits of `exponent + 2^23`; shifting them into the exponent field is an
            // integer operation that vectorises (a float-to-int cast would not).
            let half = (n * 0.5).floor();
            let power =
                |exponent: f32| f32::from_bits((exponent + 127.0 + 8_388_608.0).to_bits() << 23);
            polynomial * power(half) * power(n - half)
        }

        /// The error function, within 1.5e-7 (Abramowitz and Stegun 7.1.26).
        #[inline(always)]
        pub(crate) fn erf(x: f32) -> f32 {
            let sign = if x < 0.0 { -1.0 } else { 1.0 };
            let x = x.abs();
            let t = 1.0 / (1.0 + 0.327_591_1 * x);
            let polynomial = t
                * (0.254_829_6
                    + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
            sign * (1.0 - polynomial * exp(-x * x))
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::kernels::generic;
    use super::*;
    use crate::clip::{ClipVisionConfig, ClipVisionTransformer};

    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    fn device() -> Device {
        Device::ndarray()
    }

    #[test]
    fn the_exponential_is_accurate_over_the_range_that_matters() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let exact = (x as f64).exp();
            let relative = ((generic::exp(x) as f64 - exact) / exact).abs();
            worst = worst.max(relative);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(generic::exp(-200.0), generic::exp(-87.336_55));
        assert!(generic::exp(-100.0) < 1e-37);
        assert_eq!(generic::exp(0.0), 1.0);
    }

    #[test]
    fn activations_and_softmax_match_their_definitions() {
        let inputs: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.07).collect();
        let mut quick = inputs.clone();
        super::kernels::quick_gelu(&mut quick);
        let mut exact = inputs.clone();
        super::kernels::gelu(&mut exact);
        for ((x, quick), exact) in inputs.iter().zip(&quick).zip(&exact) {
            let x = *x as f64;
            let expected_quick = x / (1.0 + (-1.702 * x).exp());
            assert!((*quick as f64 - expected_quick).abs() < 1e-6, "{x}");
            // The series reference is exact only near 0; far out GELU is 0 or x.
            let expected_exact = match x {
                x if x < -4.0 => 0.0,
                x if x > 4.0 => x,
                x => 0.5 * x * (1.0 + series_erf(x / std::f64::consts::SQRT_2)),
            };
            assert!((*exact as f64 - expected_exact).abs() < 2e-4, "{x}");
            if x.abs() <= 4.0 {
                assert!((*exact as f64 - expected_exact).abs() < 2e-6, "{x}");
            }
        }
        let mut row = vec![1.0f32, 2.0, 3.0, -1000.0, 0.5];
        super::kernels::softmax(&mut row);
        let denominator: f64 = [1.0f64, 2.0, 3.0, 0.5].iter().map(|v| v.exp()).sum();
        assert!((row[2] as f64 - 3f64.exp() / denominator).abs() < 1e-7);
        assert!(row[3] < 1e-37);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    /// erf by its Taylor series (accurate to double precision for |x| ≤ 3).
    fn series_erf(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        for n in 1..60 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
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

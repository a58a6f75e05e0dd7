//! The GPS branch's forward pass on the CPU, for inference.
//!
//! burn-ndarray multiplies 2-D matrices through `matrixmultiply`, which uses at most four
//! threads (one per physical core) and reaches about two thirds of PyTorch's speed on two cores and a quarter of it
//! on sixteen. The location encoder is almost nothing but matrix products (≈19 MFLOP per
//! coordinate in 15 of them), so on the CPU backend [`GpsEncoder`](crate::GpsEncoder) copies
//! the weights once into [`CpuGpsBranch`] and runs each product through the `gemm` crate on
//! every rayon thread instead. The burn module stays the model (training, GPUs, inspection);
//! this is only a faster way to evaluate it, with the same operations in the same order and
//! the same float32 arithmetic, checked against the burn module and the PyTorch goldens.

use burn::nn::Linear;
use burn::prelude::*;
use rayon::prelude::*;

use crate::error::AlignError;
use crate::gps::branch::GpsBranch;
use crate::heads::ProjectionHead;
use crate::location::{GaussianEncoding, LocationCapsule};

/// Fewest rows a block of the batch gets before it is given a thread of its own: below
/// this, a block re-reads all the weights (38 MB for GeoCLIP's) for too little arithmetic.
const MIN_ROWS_PER_BLOCK: usize = 64;

/// Fewest output columns a thread multiplies on its own.
const MIN_COLUMNS_PER_THREAD: usize = 64;

/// Most rows in one block: its activations (1024 floats a row) then stay in cache.
const MAX_ROWS_PER_BLOCK: usize = 256;

/// Up to this many rows, layers multiply with the few-row kernel instead of gemm: a handful
/// of points (one photo's candidate pool) is bound by reading the weights, which that kernel
/// streams once, already packed, while gemm packs them again on every call.
const FEW_ROWS: usize = 32;

/// Columns of a weight block of the few-row kernel: four 16-float vectors.
const BLOCK_COLUMNS: usize = 64;

/// Most rows the few-row kernel multiplies at once: 6 rows × 4 vectors of sums, the 4 vectors
/// of one weight row and a broadcast input fill 29 of AVX-512's 32 registers.
const ROW_GROUP: usize = 6;

/// A copy of a [`GpsBranch`]'s parameters in plain memory, evaluated with multi-threaded
/// GEMM. Build it with [`CpuGpsBranch::from_branch`]; it never changes afterwards.
#[derive(Debug, Clone)]
pub struct CpuGpsBranch {
    capsules: Vec<CpuCapsule>,
    head: Option<[DenseLayer; 2]>,
    output_size: usize,
}

#[derive(Debug, Clone)]
struct CpuCapsule {
    /// The Fourier frequency matrix B, `[encoded_size, 2]` row-major.
    frequencies: Vec<f32>,
    hidden: Vec<DenseLayer>,
    head: DenseLayer,
}

/// A Linear layer: `weight` is `[input, output]` row-major (burn's layout, the transpose of
/// PyTorch's), `bias` has `output` values. `blocks` holds the same weights cut into column
/// blocks of [`BLOCK_COLUMNS`], each `[input, BLOCK_COLUMNS]` contiguous (the last padded with
/// zeros), for the few-row path.
#[derive(Debug, Clone)]
struct DenseLayer {
    input: usize,
    output: usize,
    weight: Vec<f32>,
    blocks: Vec<f32>,
    bias: Vec<f32>,
}

impl CpuGpsBranch {
    /// Copies the parameters of `branch` (wherever they live) into host memory.
    pub fn from_branch(branch: &GpsBranch) -> Result<Self, AlignError> {
        let capsules = branch
            .location_encoder
            .capsules
            .iter()
            .map(CpuCapsule::from_capsule)
            .collect::<Result<Vec<_>, _>>()?;
        let head = branch
            .location_projection_else
            .as_ref()
            .map(|head: &ProjectionHead| {
                Ok::<_, AlignError>([
                    DenseLayer::from_linear(&head.input)?,
                    DenseLayer::from_linear(&head.output)?,
                ])
            })
            .transpose()?;
        Ok(CpuGpsBranch {
            capsules,
            head,
            output_size: branch.output_size(),
        })
    }

    /// Width of each output row.
    pub fn output_size(&self) -> usize {
        self.output_size
    }

    /// Appends the embeddings of `projected` (`[rows, 2]` row-major, as
    /// [`Projection::project_all`](crate::Projection::project_all) returns) to `output`:
    /// `rows × output_size` values, the same as [`GpsBranch::forward`].
    ///
    /// The batch is cut into blocks of rows that run the whole network in parallel, each
    /// with its share of the rayon threads for its matrix products: blocks keep their
    /// activations in their own core's cache and never wait for each other between layers.
    ///
    /// # Panics
    /// If `projected` has an odd number of values (it is not a list of points).
    pub fn forward(&self, projected: &[f32], output: &mut Vec<f32>) {
        assert_eq!(projected.len() % 2, 0, "projected points come in pairs");
        let rows = projected.len() / 2;
        let start = output.len();
        output.resize(start + rows * self.output_size, 0.0);
        if rows == 0 {
            return;
        }
        let threads = rayon::current_num_threads().max(1);
        let blocks = (rows / MIN_ROWS_PER_BLOCK).clamp(1, threads);
        let rows_per_block = rows.div_ceil(blocks).min(MAX_ROWS_PER_BLOCK);
        let threads_per_block = (threads / blocks).max(1);
        output[start..]
            .par_chunks_mut(rows_per_block * self.output_size)
            .zip(projected.par_chunks(rows_per_block * 2))
            .for_each(|(block_output, block_input)| {
                self.forward_block(block_input, block_output, threads_per_block);
            });
    }

    /// The whole branch on one block of rows; `output` has exactly its rows.
    fn forward_block(&self, projected: &[f32], output: &mut [f32], threads: usize) {
        let rows = projected.len() / 2;
        let mut sum = Vec::new();
        let mut scratch = [Vec::new(), Vec::new()];
        for (index, capsule) in self.capsules.iter().enumerate() {
            let features = capsule.forward(projected, rows, &mut scratch, threads);
            if index == 0 {
                std::mem::swap(&mut sum, features);
            } else {
                for (total, value) in sum.iter_mut().zip(features.iter()) {
                    *total += value;
                }
            }
        }
        match &self.head {
            None => output.copy_from_slice(&sum),
            Some([first, second]) => {
                let [hidden, result] = &mut scratch;
                first.forward(&sum, rows, hidden, true, threads);
                second.forward(hidden, rows, result, false, threads);
                output.copy_from_slice(result);
            }
        }
    }
}

impl CpuCapsule {
    fn from_capsule(capsule: &LocationCapsule) -> Result<Self, AlignError> {
        let GaussianEncoding { b } = &capsule.encoding;
        Ok(CpuCapsule {
            frequencies: read_weights(b.val())?,
            hidden: capsule
                .hidden
                .iter()
                .map(DenseLayer::from_linear)
                .collect::<Result<_, _>>()?,
            head: DenseLayer::from_linear(&capsule.head)?,
        })
    }

    /// Runs the capsule on `rows` points; the result lands in one of the two `scratch`
    /// buffers, which is returned.
    fn forward<'a>(
        &self,
        projected: &[f32],
        rows: usize,
        scratch: &'a mut [Vec<f32>; 2],
        threads: usize,
    ) -> &'a mut Vec<f32> {
        let [mut current, mut next] = std::mem::take(scratch);
        self.encode(projected, rows, &mut current);
        for layer in &self.hidden {
            layer.forward(&current, rows, &mut next, true, threads);
            std::mem::swap(&mut current, &mut next);
        }
        self.head.forward(&current, rows, &mut next, false, threads);
        *scratch = [current, next];
        &mut scratch[1]
    }

    /// Random Fourier features `[cos(2π v Bᵀ), sin(2π v Bᵀ)]`, in the reference's order of
    /// float32 operations: the input is scaled by 2π first, then multiplied by Bᵀ.
    fn encode(&self, projected: &[f32], rows: usize, output: &mut Vec<f32>) {
        let encoded = self.frequencies.len() / 2;
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        output.clear();
        output.resize(rows * 2 * encoded, 0.0);
        for (row, point) in output
            .chunks_exact_mut(2 * encoded)
            .zip(projected.chunks(2))
        {
            let (x, y) = (point[0] * two_pi, point[1] * two_pi);
            let (cosines, sines) = row.split_at_mut(encoded);
            for ((cosine, sine), frequency) in cosines
                .iter_mut()
                .zip(sines.iter_mut())
                .zip(self.frequencies.chunks_exact(2))
            {
                let phase = y.mul_add(frequency[1], x * frequency[0]);
                *cosine = phase.cos();
                *sine = phase.sin();
            }
        }
    }
}

impl DenseLayer {
    fn from_linear(linear: &Linear) -> Result<Self, AlignError> {
        let [input, output] = linear.weight.dims();
        let bias = match &linear.bias {
            Some(bias) => read_weights(bias.val())?,
            None => vec![0.0; output],
        };
        Ok(DenseLayer::new(
            input,
            output,
            read_weights(linear.weight.val())?,
            bias,
        ))
    }

    /// A layer of `weight` (`[input, output]` row-major) and `bias`, with its packed blocks.
    fn new(input: usize, output: usize, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        let block_count = output.div_ceil(BLOCK_COLUMNS);
        let mut blocks = vec![0.0; block_count * input * BLOCK_COLUMNS];
        for (row, values) in weight.chunks_exact(output).enumerate() {
            for (block, columns) in values.chunks(BLOCK_COLUMNS).enumerate() {
                let start = (block * input + row) * BLOCK_COLUMNS;
                blocks[start..start + columns.len()].copy_from_slice(columns);
            }
        }
        DenseLayer {
            input,
            output,
            weight,
            blocks,
            bias,
        }
    }

    /// [`forward`](Self::forward) for up to [`FEW_ROWS`] rows: each column block of the packed
    /// weights is read once, by one task, for every row.
    fn forward_few(&self, input: &[f32], rows: usize, result: &mut Vec<f32>, relu: bool) {
        result.clear();
        result.resize(rows * self.output, 0.0);
        let destination = SharedMatrix(result.as_mut_ptr());
        let block_count = self.output.div_ceil(BLOCK_COLUMNS);
        (0..block_count).into_par_iter().for_each(|block| {
            let weights =
                &self.blocks[block * self.input * BLOCK_COLUMNS..][..self.input * BLOCK_COLUMNS];
            let first = block * BLOCK_COLUMNS;
            let width = BLOCK_COLUMNS.min(self.output - first);
            let mut sums = [[0.0f32; BLOCK_COLUMNS]; ROW_GROUP];
            let mut group = 0;
            while group < rows {
                // Groups of even size (21 rows: 6, 5, 5, 5), none of them a slow straggler.
                let left = rows - group;
                let count = left.div_ceil(left.div_ceil(ROW_GROUP));
                kernels::few_rows(
                    &input[group * self.input..(group + count) * self.input],
                    weights,
                    &mut sums,
                );
                for (offset, row_sums) in sums.iter().take(count).enumerate() {
                    let row = group + offset;
                    let biases = &self.bias[first..first + width];
                    for (column, (sum, bias)) in row_sums.iter().zip(biases).enumerate() {
                        let mut value = sum + bias;
                        // Like PyTorch's relu: negatives become 0, NaN stays NaN.
                        if relu && value < 0.0 {
                            value = 0.0;
                        }
                        // SAFETY: `row < rows` and `first + column < output`, so the value
                        // lies inside `result` (rows · output values, sized above); tasks
                        // write disjoint column blocks, and `result` is not otherwise used
                        // until every task is done.
                        unsafe {
                            *destination.column(row * self.output + first + column) = value;
                        }
                    }
                }
                group += count;
            }
        });
    }

    /// `result = input · W + b` over `rows` rows (replacing what `result` held), then ReLU
    /// when `relu` is set, on up to `threads` threads.
    ///
    /// Threads split the output columns: each multiplies all rows by its own slice of the
    /// weights, so a small batch (one point is a matrix-vector product, bound by reading the
    /// weights) still spreads its memory traffic over every core.
    fn forward(
        &self,
        input: &[f32],
        rows: usize,
        result: &mut Vec<f32>,
        relu: bool,
        threads: usize,
    ) {
        assert_eq!(
            input.len(),
            rows * self.input,
            "input has the layer's width"
        );
        if rows <= FEW_ROWS {
            return self.forward_few(input, rows, result, relu);
        }
        result.clear();
        result.reserve(rows * self.output);
        for _ in 0..rows {
            result.extend_from_slice(&self.bias);
        }
        if rows == 0 {
            return;
        }
        let wanted_blocks = threads.min(self.output / MIN_COLUMNS_PER_THREAD).max(1);
        let columns_per_block = self.output.div_ceil(wanted_blocks);
        // Counted again from the block width, so that no block starts past the last column
        // (67 blocks of ceil(4289 / 67) = 65 columns would cover 4355 columns, and the last
        // would start at 4290).
        let column_blocks = self.output.div_ceil(columns_per_block);
        let destination = SharedMatrix(result.as_mut_ptr());
        let multiply = |block: usize| {
            let first = block * columns_per_block;
            let width = columns_per_block.min(self.output - first);
            // SAFETY: gemm reads a rows × input matrix at `input` (row stride `input`, column
            // stride 1: `input` is exactly that long, checked above) and the input × width
            // block of `weight` starting at column `first` (row stride `output`; `weight`
            // holds input · output values and first + width ≤ output). It reads and writes
            // the rows × width block of `result` starting at column `first` (row stride
            // `output`; `result` holds rows · output values, filled above). Blocks cover
            // disjoint columns, so no two threads touch the same value; `result` is not
            // otherwise used until every block is done. It computes
            // result = 1·result + 1·(input·W).
            unsafe {
                gemm::gemm(
                    rows,
                    width,
                    self.input,
                    destination.column(first),
                    1,
                    self.output as isize,
                    true,
                    input.as_ptr(),
                    1,
                    self.input as isize,
                    self.weight.as_ptr().add(first),
                    1,
                    self.output as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        if column_blocks == 1 {
            multiply(0);
        } else {
            (0..column_blocks).into_par_iter().for_each(multiply);
        }
        if relu {
            for value in result.iter_mut() {
                // Like PyTorch's relu: negatives become 0, NaN stays NaN.
                if *value < 0.0 {
                    *value = 0.0;
                }
            }
        }
    }
}

/// The output matrix of a layer, written by several threads in disjoint column blocks.
#[derive(Clone, Copy)]
struct SharedMatrix(*mut f32);

// SAFETY: threads only write disjoint column blocks through it (see `DenseLayer::forward`).
unsafe impl Send for SharedMatrix {}
unsafe impl Sync for SharedMatrix {}

impl SharedMatrix {
    /// The first value of column `column` (a method, so closures capture the whole wrapper).
    ///
    /// # Safety
    /// `column` must lie inside the matrix.
    unsafe fn column(self, column: usize) -> *mut f32 {
        // SAFETY: the caller keeps `column` inside the allocation.
        unsafe { self.0.add(column) }
    }
}

/// The few-row kernel, compiled per instruction set ([`crate::simd`]).
mod kernels {
    use super::{BLOCK_COLUMNS, ROW_GROUP};
    use crate::simd::dispatch;

    dispatch!(few_rows(input: &[f32], weights: &[f32], sums: &mut [[f32; BLOCK_COLUMNS]; ROW_GROUP]));

    pub(super) mod generic {
        use super::{BLOCK_COLUMNS, ROW_GROUP};

        /// `sums[r] = input[r] · weights` for the rows of `input` (1 to [`ROW_GROUP`] rows of
        /// `weights.len() / BLOCK_COLUMNS` values), over one `[input, BLOCK_COLUMNS]` weight
        /// block; rows past those of `input` are left alone.
        #[inline(always)]
        pub(crate) fn few_rows(
            input: &[f32],
            weights: &[f32],
            sums: &mut [[f32; BLOCK_COLUMNS]; ROW_GROUP],
        ) {
            let width = weights.len() / BLOCK_COLUMNS;
            match input.len() / width {
                1 => rows::<1>(input, weights, sums),
                2 => rows::<2>(input, weights, sums),
                3 => rows::<3>(input, weights, sums),
                4 => rows::<4>(input, weights, sums),
                5 => rows::<5>(input, weights, sums),
                _ => rows::<ROW_GROUP>(input, weights, sums),
            }
        }

        /// The kernel for `R` rows: `R × 4` vectors of sums stay in registers while the weight
        /// block streams past once. Each weight row is copied into a local array first, so
        /// the compiler loads it into registers once for all `R` rows instead of once per row.
        #[inline(always)]
        fn rows<const R: usize>(
            input: &[f32],
            weights: &[f32],
            sums: &mut [[f32; BLOCK_COLUMNS]; ROW_GROUP],
        ) {
            let width = weights.len() / BLOCK_COLUMNS;
            let inputs: [&[f32]; R] =
                std::array::from_fn(|row| &input[row * width..(row + 1) * width]);
            let mut totals = [[0.0f32; BLOCK_COLUMNS]; R];
            for (k, weight_row) in weights.chunks_exact(BLOCK_COLUMNS).enumerate() {
                let mut weight = [0.0f32; BLOCK_COLUMNS];
                weight.copy_from_slice(weight_row);
                for (total, input) in totals.iter_mut().zip(&inputs) {
                    let x = input[k];
                    for (sum, weight) in total.iter_mut().zip(&weight) {
                        *sum = x.mul_add(*weight, *sum);
                    }
                }
            }
            sums[..R].copy_from_slice(&totals);
        }
    }
}

/// A parameter's values on the host, as float32, for the CPU inference paths, with subnormal
/// values set to zero.
///
/// x86 CPUs multiply a subnormal operand through a microcode assist, far slower than a
/// normal multiply-add, and about 1% of GeoCLIP's location-encoder weights are subnormal:
/// enough to slow every matrix product they enter by an order of magnitude (in PyTorch as
/// well; the README has the measurements). A subnormal weight (below 1.2e-38) adds less than
/// 1e-37 to any product, far below float32's resolution of the sums it enters, so zero leaves
/// the results as they were.
pub(crate) fn read_weights<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, AlignError> {
    let mut values = tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|error| AlignError::TensorRead {
            message: format!("{error:?}"),
        })?;
    for value in &mut values {
        if value.is_subnormal() {
            *value = 0.0;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::ProjectionHeadConfig;
    use crate::location::LocationEncoderConfig;

    #[allow(deprecated)] // burn-ndarray is the CPU backend this project was asked to use
    fn device() -> Device {
        Device::ndarray()
    }

    fn branch(with_head: bool) -> GpsBranch {
        let config = LocationEncoderConfig {
            sigmas: vec![1.0, 16.0, 256.0],
            encoded_size: 16,
            hidden_width: 192,
            hidden_layers: 3,
            output_size: 24,
        };
        GpsBranch {
            location_encoder: config.init(&device(), 7).unwrap(),
            location_projection_else: with_head.then(|| {
                ProjectionHeadConfig {
                    input_size: 24,
                    hidden_size: 24,
                    output_size: 40,
                }
                .init(&device())
            }),
        }
    }

    fn projected(rows: usize) -> Vec<f32> {
        (0..rows)
            .flat_map(|row| {
                let t = row as f32 / rows.max(1) as f32;
                [2.0 * t - 1.0, (t * 7.3).sin() * 0.9]
            })
            .collect()
    }

    fn burn_forward(branch: &GpsBranch, projected: &[f32]) -> Vec<f32> {
        let input = Tensor::<2>::from_data(
            TensorData::new(projected.to_vec(), [projected.len() / 2, 2]),
            &device(),
        );
        branch
            .forward(input)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_the_burn_module_with_and_without_head() {
        // Four threads split the rows into blocks and each hidden layer's 192 columns into
        // three blocks, whatever the machine.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for with_head in [false, true] {
            let branch = branch(with_head);
            let cpu = CpuGpsBranch::from_branch(&branch).unwrap();
            assert_eq!(cpu.output_size(), branch.output_size());
            for rows in [1, 2 * MIN_ROWS_PER_BLOCK - 1, 5 * MIN_ROWS_PER_BLOCK + 3] {
                let input = projected(rows);
                let mut ours = vec![1.5]; // forward appends: what was there stays
                pool.install(|| cpu.forward(&input, &mut ours));
                let reference = burn_forward(&branch, &input);
                assert_eq!(ours.len(), reference.len() + 1);
                assert_eq!(ours[0], 1.5);
                for (index, (a, b)) in ours[1..].iter().zip(&reference).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "head {with_head}, {rows} rows, value {index}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn layers_of_odd_width_stay_in_bounds_on_both_paths() {
        let (input, output) = (3, 4289);
        let layer = DenseLayer::new(
            input,
            output,
            (0..input * output).map(|i| (i % 13) as f32 - 6.0).collect(),
            (0..output).map(|i| (i % 5) as f32).collect(),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        // 2 rows take the few-row kernel (67 blocks of 64 columns, the last one partial);
        // 40 take gemm, where 67 threads ask for 67 column blocks of 65 columns, one more
        // than the layer holds.
        for rows in [2, FEW_ROWS + 8] {
            let values: Vec<f32> = (0..rows * input).map(|i| i as f32 * 0.5 - 1.0).collect();
            let mut result = Vec::new();
            pool.install(|| layer.forward(&values, rows, &mut result, true, 67));
            assert_eq!(result.len(), rows * output);
            for row in [0, rows - 1] {
                for column in [0, 63, 64, 65, 4288] {
                    let expected = (layer.bias[column]
                        + (0..input)
                            .map(|k| values[row * input + k] * layer.weight[k * output + column])
                            .sum::<f32>())
                    .max(0.0);
                    let found = result[row * output + column];
                    assert!(
                        (found - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                        "{rows} rows, row {row}, column {column}: {found} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_rows_give_no_values() {
        let cpu = CpuGpsBranch::from_branch(&branch(true)).unwrap();
        let mut output = Vec::new();
        cpu.forward(&[], &mut output);
        assert!(output.is_empty());
    }
}

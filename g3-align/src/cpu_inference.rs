//! The GPS branch's forward pass on the CPU, for inference.
//!
//! burn-ndarray multiplies 2-D matrices through `matrixmultiply`, which uses at most four
//! threads (one per physical core) and reaches about two thirds of PyTorch's speed on two cores and a quarter of it
//! on sixteen. The location encoder is almost nothing but matrix products (≈19 MFLOP per
//! coordinate in 15 of them), so on the CPU backend [`GpsEncoder`](crate::GpsEncoder) copies
//! the weights once into [`CpuGpsBranch`] and runs each product through [`g3_kernels`] on
//! every rayon thread instead. The burn module stays the model (training, GPUs, inspection);
//! this is only a faster way to evaluate it, with the same operations in the same order and
//! the same float32 arithmetic, checked against the burn module and the PyTorch goldens.

use burn::nn::Linear;
use g3_kernels::{Dense, PackedDense};
use rayon::prelude::*;

use crate::cpu_weights::{dense, read_weights};
use crate::error::AlignError;
use crate::gps::branch::GpsBranch;
use crate::heads::ProjectionHead;
use crate::location::{GaussianEncoding, LocationCapsule};

/// Fewest rows a block of the batch gets before it is given a thread of its own: below
/// this, a block re-reads all the weights (38 MB for GeoCLIP's) for too little arithmetic.
const MIN_ROWS_PER_BLOCK: usize = 64;

/// Most rows in one block: its activations (1024 floats a row) then stay in cache.
const MAX_ROWS_PER_BLOCK: usize = 256;

/// Up to this many rows, layers multiply with [`PackedDense`] instead of gemm: a handful
/// of points (one photo's candidate pool) is bound by reading the weights, which that kernel
/// streams once, already packed, while gemm packs them again on every call.
const FEW_ROWS: usize = 32;

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

/// A Linear layer in the two layouts the batch sizes call for: plain for gemm, packed for
/// a few rows.
#[derive(Debug, Clone)]
struct DenseLayer {
    dense: Dense,
    packed: PackedDense,
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
        let dense = dense(&[linear])?;
        Ok(DenseLayer {
            packed: PackedDense::new(&dense),
            dense,
        })
    }

    /// `result = input · W + b` over `rows` rows (replacing what `result` held), then ReLU
    /// when `relu` is set, on up to `threads` threads.
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
            rows * self.dense.input(),
            "input has the layer's width"
        );
        if rows <= FEW_ROWS {
            result.clear();
            result.resize(rows * self.dense.output(), 0.0);
            // Like PyTorch's relu: negatives become 0, NaN stays NaN.
            let activation = |value: f32| if relu && value < 0.0 { 0.0 } else { value };
            self.packed.forward(input, rows, result, activation);
            return;
        }
        self.dense
            .forward_column_blocks(input, rows, result, threads);
        if relu {
            g3_kernels::relu(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

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
    fn no_rows_give_no_values() {
        let cpu = CpuGpsBranch::from_branch(&branch(true)).unwrap();
        let mut output = Vec::new();
        cpu.forward(&[], &mut output);
        assert!(output.is_empty());
    }
}

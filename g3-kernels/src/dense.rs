//! Linear layers, `y = x · W + b`, in the layouts and with the thread splits that suit
//! different batch sizes.

use rayon::prelude::*;

use crate::dispatch::dispatch;
use crate::matrix::{MatrixMut, MatrixRef, Product, SharedMatrix, matmul_into};

/// Fewest output columns a thread multiplies on its own in
/// [`Dense::forward_column_blocks`].
const MIN_COLUMNS_PER_THREAD: usize = 64;

/// Columns of a weight block of [`PackedDense`]: four 16-float vectors.
const BLOCK_COLUMNS: usize = 64;

/// Most rows [`PackedDense`] multiplies at once: 6 rows × 4 vectors of sums, the 4 vectors
/// of one weight row and a broadcast input fill 29 of AVX-512's 32 registers.
const ROW_GROUP: usize = 6;

/// A linear layer's parameters in plain memory: `weight` is `[input, output]` row-major
/// (burn's layout, the transpose of PyTorch's), `bias` has `output` values.
#[derive(Debug, Clone)]
pub struct Dense {
    input: usize,
    output: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// A layer from `input` to `output` values a row.
    ///
    /// # Panics
    /// If `weight` does not hold `input · output` values or `bias` `output` values.
    pub fn new(input: usize, output: usize, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        assert_eq!(
            weight.len(),
            input * output,
            "the weight is [input, output]"
        );
        assert_eq!(bias.len(), output, "the bias has one value an output");
        Dense {
            input,
            output,
            weight,
            bias,
        }
    }

    /// Values of an input row.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Values of an output row.
    pub fn output(&self) -> usize {
        self.output
    }

    /// The weight, `[input, output]` row-major.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The bias, `output` values.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// `output = input · W + b` over `rows` rows (`input` `[rows, input]`, `output`
    /// `[rows, output]`), with gemm splitting the product over up to `threads` threads.
    pub fn forward(&self, input: &[f32], rows: usize, output: &mut [f32], threads: usize) {
        for row in output.chunks_exact_mut(self.output) {
            row.copy_from_slice(&self.bias);
        }
        self.multiply_into(input, rows, output, threads);
    }

    /// `output += input · W + b` over `rows` rows: a sublayer added to a residual stream.
    pub fn accumulate(&self, input: &[f32], rows: usize, output: &mut [f32], threads: usize) {
        output.par_chunks_mut(self.output).for_each(|row| {
            for (value, bias) in row.iter_mut().zip(&self.bias) {
                *value += bias;
            }
        });
        self.multiply_into(input, rows, output, threads);
    }

    fn multiply_into(&self, input: &[f32], rows: usize, output: &mut [f32], threads: usize) {
        matmul_into(
            MatrixRef::row_major(input, self.input),
            MatrixRef::row_major(&self.weight, self.output),
            MatrixMut::row_major(output, self.output),
            Product::new(rows, self.input, self.output),
            threads,
        );
    }

    /// `result = input · W + b` over `rows` rows, replacing what `result` held, on up to
    /// `threads` rayon threads that split the output columns: each multiplies all rows by
    /// its own slice of the weights, so a small batch (one row is a matrix-vector product,
    /// bound by reading the weights) still spreads its memory traffic over every core.
    ///
    /// # Panics
    /// If `input` does not hold `rows` rows.
    pub fn forward_column_blocks(
        &self,
        input: &[f32],
        rows: usize,
        result: &mut Vec<f32>,
        threads: usize,
    ) {
        assert_eq!(
            input.len(),
            rows * self.input,
            "input has the layer's width"
        );
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
        let destination = SharedMatrix::new(result);
        let multiply = |block: usize| {
            let first = block * columns_per_block;
            let width = columns_per_block.min(self.output - first);
            // SAFETY: blocks cover disjoint columns, so no two threads touch the same
            // value, and `result` is not otherwise used until every block is done.
            let output = unsafe { destination.block(first, rows, width, self.output) };
            matmul_into(
                MatrixRef::row_major(input, self.input),
                MatrixRef::row_major(&self.weight[first..], self.output),
                output,
                Product::new(rows, self.input, width),
                1,
            );
        };
        if column_blocks == 1 {
            multiply(0);
        } else {
            (0..column_blocks).into_par_iter().for_each(multiply);
        }
    }
}

/// A [`Dense`] layer's weights cut into column blocks of 64, each `[input, 64]` contiguous
/// (the last padded with zeros), for products with a handful of rows.
///
/// A few rows (one photo's candidate pool) are bound by reading the weights. gemm packs the
/// weights again on every call; [`PackedDense::forward`] streams each block once, already
/// packed, keeping the sums of up to six rows in registers.
#[derive(Debug, Clone)]
pub struct PackedDense {
    input: usize,
    output: usize,
    blocks: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedDense {
    /// Packs `layer`'s weights (a copy: the layer stays usable for larger batches).
    pub fn new(layer: &Dense) -> Self {
        let (input, output) = (layer.input, layer.output);
        let block_count = output.div_ceil(BLOCK_COLUMNS);
        let mut blocks = vec![0.0; block_count * input * BLOCK_COLUMNS];
        for (row, values) in layer.weight.chunks_exact(output).enumerate() {
            for (block, columns) in values.chunks(BLOCK_COLUMNS).enumerate() {
                let start = (block * input + row) * BLOCK_COLUMNS;
                blocks[start..start + columns.len()].copy_from_slice(columns);
            }
        }
        PackedDense {
            input,
            output,
            blocks,
            bias: layer.bias.clone(),
        }
    }

    /// `result[r, c] = finish(input[r] · W[:, c] + b[c])` for `rows` rows (`result` holds
    /// `[rows, output]`); each column block is read once, by one rayon task, for every row.
    ///
    /// # Panics
    /// If `input` does not hold `rows` rows or `result` their outputs.
    pub fn forward(
        &self,
        input: &[f32],
        rows: usize,
        result: &mut [f32],
        finish: impl Fn(f32) -> f32 + Sync,
    ) {
        assert_eq!(
            input.len(),
            rows * self.input,
            "input has the layer's width"
        );
        assert_eq!(
            result.len(),
            rows * self.output,
            "result has the layer's width"
        );
        let destination = SharedMatrix::new(result);
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
                few_rows(
                    &input[group * self.input..(group + count) * self.input],
                    weights,
                    &mut sums,
                );
                for (offset, row_sums) in sums.iter().take(count).enumerate() {
                    let row = group + offset;
                    let biases = &self.bias[first..first + width];
                    for (column, (sum, bias)) in row_sums.iter().zip(biases).enumerate() {
                        // SAFETY: `row < rows` and `first + column < output`, so the value
                        // lies inside `result` (rows · output values, checked above); tasks
                        // write disjoint column blocks, and `result` is not otherwise used
                        // until every task is done.
                        unsafe {
                            destination
                                .write(row * self.output + first + column, finish(sum + bias));
                        }
                    }
                }
                group += count;
            }
        });
    }
}

dispatch! {
    /// `sums[r] = input[r] · weights` for the rows of `input` (1 to [`ROW_GROUP`] rows of
    /// `weights.len() / BLOCK_COLUMNS` values), over one `[input, BLOCK_COLUMNS]` weight
    /// block; rows past those of `input` are left alone.
    fn few_rows / few_rows_at(
        input: &[f32],
        weights: &[f32],
        sums: &mut [[f32; BLOCK_COLUMNS]; ROW_GROUP],
    ) = generic_few_rows
}

/// The few-row kernel (always inlined into each instruction set's copy); it fuses
/// multiply-adds in every copy.
#[inline(always)]
fn generic_few_rows(input: &[f32], weights: &[f32], sums: &mut [[f32; BLOCK_COLUMNS]; ROW_GROUP]) {
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
/// block streams past once. Each weight row is copied into a local array first, so the
/// compiler loads it into registers once for all `R` rows instead of once per row.
#[inline(always)]
fn rows<const R: usize>(
    input: &[f32],
    weights: &[f32],
    sums: &mut [[f32; BLOCK_COLUMNS]; ROW_GROUP],
) {
    let width = weights.len() / BLOCK_COLUMNS;
    let inputs: [&[f32]; R] = std::array::from_fn(|row| &input[row * width..(row + 1) * width]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Level;
    use crate::lanes::testing::pseudo_random;

    /// A layer whose values are small integers, so every product is exact in f32.
    fn integer_layer(input: usize, output: usize) -> Dense {
        Dense::new(
            input,
            output,
            (0..input * output).map(|i| (i % 13) as f32 - 6.0).collect(),
            (0..output).map(|i| (i % 5) as f32).collect(),
        )
    }

    /// `input · W + b` in double precision.
    fn naive(layer: &Dense, input: &[f32], rows: usize) -> Vec<f64> {
        let (k, n) = (layer.input, layer.output);
        (0..rows)
            .flat_map(|row| {
                (0..n).map(move |column| {
                    layer.bias[column] as f64
                        + (0..k)
                            .map(|l| {
                                input[row * k + l] as f64 * layer.weight[l * n + column] as f64
                            })
                            .sum::<f64>()
                })
            })
            .collect()
    }

    fn assert_close(found: &[f32], expected: &[f64], what: &str) {
        assert_eq!(found.len(), expected.len(), "{what}");
        for (index, (a, b)) in found.iter().zip(expected).enumerate() {
            assert!(
                (*a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}, {index}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn every_path_matches_the_naive_product_at_odd_sizes() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (input, output) in [(1, 1), (3, 65), (17, 130), (33, 200)] {
            let layer = Dense::new(
                input,
                output,
                pseudo_random(input * output, 1),
                pseudo_random(output, 2),
            );
            let packed = PackedDense::new(&layer);
            for rows in [1, 2, 5, 6, 7, 13, 40] {
                let values = pseudo_random(rows * input, 3 + rows as u32);
                let expected = naive(&layer, &values, rows);
                let what = format!("{input} -> {output}, {rows} rows");
                let mut plain = vec![f32::NAN; rows * output];
                pool.install(|| layer.forward(&values, rows, &mut plain, 3));
                assert_close(&plain, &expected, &format!("forward, {what}"));

                let mut added = vec![2.0f32; rows * output];
                pool.install(|| layer.accumulate(&values, rows, &mut added, 3));
                let plus_two: Vec<f64> = expected.iter().map(|v| v + 2.0).collect();
                assert_close(&added, &plus_two, &format!("accumulate, {what}"));

                let mut blocks = vec![9.0];
                pool.install(|| layer.forward_column_blocks(&values, rows, &mut blocks, 5));
                assert_close(&blocks, &expected, &format!("column blocks, {what}"));

                let mut few = vec![f32::NAN; rows * output];
                pool.install(|| packed.forward(&values, rows, &mut few, |v| v));
                assert_close(&few, &expected, &format!("packed, {what}"));
            }
        }
    }

    #[test]
    fn layers_of_odd_width_stay_in_bounds() {
        let (input, output) = (3, 4289);
        let layer = integer_layer(input, output);
        let packed = PackedDense::new(&layer);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let relu = |value: f32| value.max(0.0);
        for rows in [2, 40] {
            let values: Vec<f32> = (0..rows * input).map(|i| i as f32 * 0.5 - 1.0).collect();
            let expected: Vec<f64> = naive(&layer, &values, rows)
                .iter()
                .map(|v| v.max(0.0))
                .collect();
            // The packed layer: 67 blocks of 64 columns, the last one partial.
            let mut few = vec![0.0; rows * output];
            pool.install(|| packed.forward(&values, rows, &mut few, relu));
            assert_close(&few, &expected, &format!("packed, {rows} rows"));
            // 67 threads ask for 67 column blocks of 65 columns, one more than the layer
            // holds.
            let mut blocks = Vec::new();
            pool.install(|| layer.forward_column_blocks(&values, rows, &mut blocks, 67));
            crate::relu(&mut blocks);
            assert_close(&blocks, &expected, &format!("column blocks, {rows} rows"));
        }
    }

    #[test]
    fn every_copy_of_the_few_row_kernel_gives_the_same_bits() {
        let width = 37;
        let weights = pseudo_random(width * BLOCK_COLUMNS, 8);
        for rows in 1..=ROW_GROUP {
            let input = pseudo_random(rows * width, 9 + rows as u32);
            let mut first = None;
            for level in Level::supported() {
                let mut sums = [[f32::NAN; BLOCK_COLUMNS]; ROW_GROUP];
                few_rows_at(level, &input, &weights, &mut sums);
                let bits: Vec<u32> = sums[..rows].iter().flatten().map(|v| v.to_bits()).collect();
                assert!(
                    sums[rows..].iter().flatten().all(|v| v.is_nan()),
                    "rows past the input"
                );
                match &first {
                    None => first = Some(bits),
                    Some(first) => assert_eq!(first, &bits, "{rows} rows, {level:?}"),
                }
            }
        }
    }

    #[test]
    fn no_rows_give_no_values() {
        let layer = integer_layer(4, 70);
        let mut result = vec![1.0];
        layer.forward_column_blocks(&[], 0, &mut result, 2);
        assert!(result.is_empty());
        PackedDense::new(&layer).forward(&[], 0, &mut [], |v| v);
    }
}

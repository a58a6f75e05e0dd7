//! Layer normalisation, as PyTorch's `layer_norm` computes it, over many rows on all cores.

use rayon::prelude::*;

use crate::dispatch::dispatch;
use crate::lanes::{LANES, sum};

/// Rows normalised per parallel task.
const ROWS_PER_TASK: usize = 16;

/// A layer norm's parameters: `(x - mean) / sqrt(var + epsilon) · gamma + beta` over each
/// row of `gamma.len()` values, with the population variance.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    epsilon: f32,
}

impl LayerNorm {
    /// A layer norm over rows of `gamma.len()` values.
    ///
    /// # Panics
    /// If `beta` and `gamma` differ in length.
    pub fn new(gamma: Vec<f32>, beta: Vec<f32>, epsilon: f32) -> Self {
        assert_eq!(
            gamma.len(),
            beta.len(),
            "gamma and beta have one value a column"
        );
        LayerNorm {
            gamma,
            beta,
            epsilon,
        }
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.gamma.len()
    }

    /// Normalises every row of `source` into the same row of `target`, on all rayon
    /// threads. Both hold whole rows of [`width`](Self::width) values; a shorter `target`
    /// receives only the rows it holds.
    pub fn normalize_into(&self, source: &[f32], target: &mut [f32]) {
        let width = self.width();
        target
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(source.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(target, source)| {
                for (target, source) in target
                    .chunks_exact_mut(width)
                    .zip(source.chunks_exact(width))
                {
                    layer_norm(source, target, &self.gamma, &self.beta, self.epsilon);
                }
            });
    }

    /// Normalises every row of `values` in place, on all rayon threads.
    pub fn normalize_in_place(&self, values: &mut [f32]) {
        let width = self.width();
        values
            .par_chunks_mut(width * ROWS_PER_TASK)
            .for_each(|rows| {
                let mut source = vec![0.0; width];
                for row in rows.chunks_exact_mut(width) {
                    source.copy_from_slice(row);
                    layer_norm(&source, row, &self.gamma, &self.beta, self.epsilon);
                }
            });
    }
}

dispatch! {
    /// One row: `target = (source - mean) / sqrt(var + epsilon) · gamma + beta`.
    fn layer_norm / layer_norm_at(
        source: &[f32],
        target: &mut [f32],
        gamma: &[f32],
        beta: &[f32],
        epsilon: f32,
    ) = generic_layer_norm
}

/// The kernel, written so the compiler vectorises it (always inlined into each instruction
/// set's copy).
#[inline(always)]
fn generic_layer_norm(
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
    for (((target, source), gamma), beta) in target.iter_mut().zip(source).zip(gamma).zip(beta) {
        *target = (source - mean) * inverse * gamma + beta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Level;
    use crate::lanes::testing::{ODD_LENGTHS, pseudo_random};

    /// PyTorch's definition in double precision.
    fn reference(row: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Vec<f64> {
        let count = row.len() as f64;
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / count;
        let variance = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / count;
        let inverse = 1.0 / (variance + epsilon as f64).sqrt();
        row.iter()
            .zip(gamma)
            .zip(beta)
            .map(|((v, g), b)| (*v as f64 - mean) * inverse * *g as f64 + *b as f64)
            .collect()
    }

    #[test]
    fn rows_of_odd_widths_match_the_definition_on_every_instruction_set() {
        for width in ODD_LENGTHS.into_iter().filter(|width| *width > 0) {
            let row: Vec<f32> = pseudo_random(width, width as u32)
                .iter()
                .map(|v| v * 3.0 + 0.5)
                .collect();
            let gamma = pseudo_random(width, 100 + width as u32);
            let beta = pseudo_random(width, 200 + width as u32);
            let expected = reference(&row, &gamma, &beta, 1e-5);
            let mut first: Option<Vec<f32>> = None;
            for level in Level::supported() {
                let mut found = vec![0.0; width];
                layer_norm_at(level, &row, &mut found, &gamma, &beta, 1e-5);
                for (index, (a, b)) in found.iter().zip(&expected).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 2e-5,
                        "width {width}, {index}, {level:?}"
                    );
                }
                // No copy reorders the sums: all give the same bits.
                match &first {
                    None => first = Some(found),
                    Some(first) => assert_eq!(first, &found, "width {width}, {level:?}"),
                }
            }
        }
    }

    #[test]
    fn many_rows_into_and_in_place_agree_with_one_row_at_a_time() {
        let width = 33;
        let rows = 3 * ROWS_PER_TASK + 5;
        let norm = LayerNorm::new(pseudo_random(width, 1), pseudo_random(width, 2), 1e-6);
        let source = pseudo_random(rows * width, 3);
        let mut into = vec![0.0; rows * width];
        norm.normalize_into(&source, &mut into);
        let mut in_place = source.clone();
        norm.normalize_in_place(&mut in_place);
        assert_eq!(into, in_place);
        for (row, found) in source.chunks_exact(width).zip(into.chunks_exact(width)) {
            let mut expected = vec![0.0; width];
            layer_norm(row, &mut expected, &norm.gamma, &norm.beta, norm.epsilon);
            assert_eq!(found, &expected[..]);
        }
    }
}

//! Multi-head self-attention over rows that hold queries, keys and values side by side.

use rayon::prelude::*;

use crate::activation::softmax;
use crate::matrix::{MatrixMut, MatrixRef, Product, SharedMatrix, matmul};

/// The shape of a batch of self-attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Independent sequences (images, for a vision tower).
    pub sequences: usize,
    /// Tokens of each sequence.
    pub tokens: usize,
    /// Width of a token: the heads' widths together.
    pub width: usize,
    /// Attention heads; `width` is a multiple of it.
    pub heads: usize,
}

/// `softmax(q kᵀ / √d) v` for every sequence and head, written into `context`
/// (`[sequences · tokens, width]`, heads side by side, as an output projection expects).
///
/// `qkv` is `[sequences · tokens, 3 · width]`: each token's query, key and value, each
/// `width` wide with the heads side by side (one fused projection's output). Sequences and
/// heads run as parallel tasks that materialise only their own `[tokens, tokens]` scores,
/// each task's products on its own thread.
///
/// # Panics
/// If `qkv` or `context` does not hold the shape's rows, or `heads` does not divide `width`.
pub fn self_attention(qkv: &[f32], context: &mut [f32], shape: AttentionShape) {
    let AttentionShape {
        sequences,
        tokens,
        width,
        heads,
    } = shape;
    assert_eq!(width % heads, 0, "heads divide the width");
    assert_eq!(
        qkv.len(),
        sequences * tokens * 3 * width,
        "qkv holds every token"
    );
    assert_eq!(
        context.len(),
        sequences * tokens * width,
        "context holds every token"
    );
    let head_width = width / heads;
    let scale = 1.0 / (head_width as f32).sqrt();
    let output = SharedMatrix::new(context);
    (0..sequences * heads).into_par_iter().for_each_init(
        || vec![0.0f32; tokens * tokens],
        |scores, task| {
            let (sequence, head) = (task / heads, task % heads);
            let base = sequence * tokens * 3 * width + head * head_width;
            let stride = 3 * width;
            // scores = scale · q kᵀ: [tokens, head_width] · [head_width, tokens].
            matmul(
                MatrixRef::strided(&qkv[base..], stride, 1),
                MatrixRef::strided(&qkv[base + width..], 1, stride),
                MatrixMut::row_major(scores, tokens),
                Product::new(tokens, head_width, tokens).scaled(scale),
                1,
            );
            for row in scores.chunks_exact_mut(tokens) {
                softmax(row);
            }
            let first = sequence * tokens * width + head * head_width;
            // SAFETY: this task alone writes the `[tokens, head_width]` block of `context`
            // at rows `sequence · tokens ..` and columns `head · head_width ..`: tasks
            // differ in sequence or head, so their blocks are disjoint. `context` is not
            // otherwise used until every task is done.
            let block = unsafe { output.block(first, tokens, head_width, width) };
            // context = scores · v: [tokens, tokens] · [tokens, head_width], replacing what
            // the buffer held.
            matmul(
                MatrixRef::row_major(scores, tokens),
                MatrixRef::strided(&qkv[base + 2 * width..], stride, 1),
                block,
                Product::new(tokens, tokens, head_width),
                1,
            );
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::testing::pseudo_random;

    /// Attention by its definition, one head at a time, in double precision.
    fn naive(qkv: &[f32], shape: AttentionShape) -> Vec<f64> {
        let AttentionShape {
            sequences,
            tokens,
            width,
            heads,
        } = shape;
        let head_width = width / heads;
        let at = |sequence: usize, token: usize, part: usize, column: usize| {
            qkv[(sequence * tokens + token) * 3 * width + part * width + column] as f64
        };
        let mut context = vec![0.0; sequences * tokens * width];
        for sequence in 0..sequences {
            for head in 0..heads {
                let columns = head * head_width..(head + 1) * head_width;
                for query in 0..tokens {
                    let scores: Vec<f64> = (0..tokens)
                        .map(|key| {
                            columns
                                .clone()
                                .map(|c| at(sequence, query, 0, c) * at(sequence, key, 1, c))
                                .sum::<f64>()
                                / (head_width as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = exps.iter().sum();
                    for c in columns.clone() {
                        context[(sequence * tokens + query) * width + c] = (0..tokens)
                            .map(|key| exps[key] / total * at(sequence, key, 2, c))
                            .sum();
                    }
                }
            }
        }
        context
    }

    #[test]
    fn matches_the_definition_at_odd_shapes() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for shape in [
            AttentionShape {
                sequences: 1,
                tokens: 1,
                width: 4,
                heads: 1,
            },
            AttentionShape {
                sequences: 2,
                tokens: 17,
                width: 12,
                heads: 3,
            },
            AttentionShape {
                sequences: 3,
                tokens: 5,
                width: 30,
                heads: 5,
            },
        ] {
            let rows = shape.sequences * shape.tokens;
            let qkv: Vec<f32> = pseudo_random(rows * 3 * shape.width, shape.tokens as u32)
                .iter()
                .map(|v| v * 2.0)
                .collect();
            let mut context = vec![f32::NAN; rows * shape.width];
            pool.install(|| self_attention(&qkv, &mut context, shape));
            for (index, (a, b)) in context.iter().zip(naive(&qkv, shape)).enumerate() {
                assert!(
                    (*a as f64 - b).abs() < 1e-5,
                    "{shape:?}, {index}: {a} vs {b}"
                );
            }
        }
    }
}

//! [`Embeddings`]: a batch of equal-width float32 vectors in one row-major buffer.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A batch of embeddings, row-major: row `i` is `values[i * dimension..(i + 1) * dimension]`.
///
/// Stages exchange whole batches in one buffer rather than a `Vec` per row, so a batch of
/// 16,384 GPS embeddings is one allocation that can go straight to a tensor or a `.npy` file.
///
/// ```
/// use g3_core::Embeddings;
///
/// let batch = Embeddings::new(2, vec![1.0, 0.0, 0.6, 0.8])?;
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.row(1), &[0.6, 0.8]);
/// # Ok::<(), g3_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    dimension: usize,
    values: Vec<f32>,
}

impl Embeddings {
    /// Wraps a row-major buffer; fails when `dimension` is zero or does not divide its length.
    pub fn new(dimension: usize, values: Vec<f32>) -> Result<Self> {
        if dimension == 0 || !values.len().is_multiple_of(dimension) {
            return Err(Error::EmbeddingShape {
                dimension,
                len: values.len(),
            });
        }
        Ok(Embeddings { dimension, values })
    }

    /// An empty batch of the given width (which must not be zero).
    pub fn empty(dimension: usize) -> Result<Self> {
        Embeddings::new(dimension, Vec::new())
    }

    /// Copies rows of equal width into one batch; every row must have `dimension` values.
    pub fn from_rows<R: AsRef<[f32]>>(dimension: usize, rows: &[R]) -> Result<Self> {
        let mut values = Vec::with_capacity(dimension * rows.len());
        for row in rows {
            let row = row.as_ref();
            if row.len() != dimension {
                return Err(Error::DimensionMismatch {
                    what: "embedding row",
                    expected: dimension,
                    found: row.len(),
                });
            }
            values.extend_from_slice(row);
        }
        Embeddings::new(dimension, values)
    }

    /// Width of every row.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.dimension
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `index`; panics when `index >= len()`, like slice indexing.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.dimension..(index + 1) * self.dimension]
    }

    /// Rows in order.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.dimension)
    }

    /// The whole row-major buffer.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }

    /// Gives the row-major buffer back.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// Scales every row to unit Euclidean length (rows of zeros stay zero), as G3 does before
    /// every inner product so that inner products are cosines.
    pub fn l2_normalize(&mut self) {
        l2_normalize_rows(&mut self.values, self.dimension);
    }

    /// Fails unless the batch has `expected` rows; stages use it to keep their promise that
    /// output `i` belongs to input `i`.
    pub fn expect_rows(&self, expected: usize, stage: crate::StageKind) -> Result<()> {
        if self.len() != expected {
            return Err(Error::OutputCountMismatch {
                stage,
                expected,
                found: self.len(),
            });
        }
        Ok(())
    }
}

/// Cosine similarity of two equal-length vectors; 0 when either is all zeros.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        return Err(Error::DimensionMismatch {
            what: "cosine similarity",
            expected: a.len(),
            found: b.len(),
        });
    }
    let (mut dot, mut norm_a, mut norm_b) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    let denominator = (norm_a * norm_b).sqrt();
    Ok(if denominator > 0.0 {
        dot / denominator
    } else {
        0.0
    })
}

/// Scales every row of a row-major `[rows, dimension]` buffer to unit Euclidean length
/// (rows of zeros stay zero): the one normalisation that stores, galleries and embeddings
/// share, so that inner products are cosines everywhere alike.
pub fn l2_normalize_rows(values: &mut [f32], dimension: usize) {
    for row in values.chunks_exact_mut(dimension) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(Embeddings::new(0, vec![]).is_err());
        assert!(Embeddings::new(3, vec![1.0; 4]).is_err());
        assert!(Embeddings::from_rows(2, &[vec![1.0, 2.0], vec![3.0]]).is_err());
        let batch = Embeddings::from_rows(2, &[[1.0, 2.0], [3.0, 4.0]]).unwrap();
        assert_eq!(batch.rows().collect::<Vec<_>>(), [[1.0, 2.0], [3.0, 4.0]]);
        assert!(Embeddings::empty(5).unwrap().is_empty());
    }

    #[test]
    fn normalisation_gives_unit_rows_and_keeps_zero_rows() {
        let mut batch = Embeddings::new(2, vec![3.0, 4.0, 0.0, 0.0]).unwrap();
        batch.l2_normalize();
        assert_eq!(batch.as_slice(), &[0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn cosine_of_parallel_vectors_is_one() {
        let cosine = cosine_similarity(&[1.0, 2.0], &[2.0, 4.0]).unwrap();
        assert!((cosine - 1.0).abs() < 1e-6);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]).unwrap(), 0.0);
        assert!(cosine_similarity(&[1.0], &[1.0, 0.0]).is_err());
    }
}

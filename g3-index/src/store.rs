//! The trait both stores implement, and the input checks they share.

use g3_core::SearchDirection;

use crate::config::Metric;
use crate::error::{IndexError, Result};

/// One search result of a store: an entry's row (its position in insertion order) and its
/// similarity to the query (inner product, or cosine under [`Metric::Cosine`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowMatch {
    /// Position of the entry in insertion order.
    pub row: usize,
    /// Similarity to the query; for dissimilar searches too (lower = more dissimilar).
    pub similarity: f32,
}

/// Each query's rows in both directions ([`VectorIndex::search_rows_both`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwoWayRowMatches {
    /// Per query, the most similar rows, best first.
    pub similar: Vec<Vec<RowMatch>>,
    /// Per query, the least similar rows, least similar first.
    pub dissimilar: Vec<Vec<RowMatch>>,
}

/// A searchable set of vectors addressed by row. [`Database`](crate::Database) puts keys and
/// locations on top of it and implements [`g3_core::VectorStore`]; researchers can also
/// implement this trait to try another index under the same database.
pub trait VectorIndex: Send + Sync {
    /// Width of every vector.
    fn dimension(&self) -> usize;

    /// Number of vectors.
    fn len(&self) -> usize;

    /// Whether the index holds no vector.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The similarity the index ranks by.
    fn metric(&self) -> Metric;

    /// For each query row of the row-major `queries` buffer: up to `k` rows, best first in
    /// `direction` (highest similarity first for [`SearchDirection::Similar`], lowest first for
    /// [`SearchDirection::Dissimilar`]). Fewer than `k` come back only when the index holds
    /// fewer entries (or, for approximate indexes, when the search could not reach more).
    ///
    /// Errors: `queries` not a whole number of rows of [`dimension`](Self::dimension), or a
    /// query with a NaN or infinite component (or all zeros under [`Metric::Cosine`]).
    fn search_rows(
        &self,
        queries: &[f32],
        k: usize,
        direction: SearchDirection,
    ) -> Result<Vec<Vec<RowMatch>>>;

    /// Both directions at once: for each query, its `k_similar` most similar rows and its
    /// `k_dissimilar` least similar ones, exactly as two [`search_rows`](Self::search_rows)
    /// would give them. The default makes those two searches; an index that can serve both
    /// from one pass over its vectors (the exact store) overrides it.
    fn search_rows_both(
        &self,
        queries: &[f32],
        k_similar: usize,
        k_dissimilar: usize,
    ) -> Result<TwoWayRowMatches> {
        let search = |k: usize, direction| {
            if k == 0 {
                Ok(vec![Vec::new(); queries.len() / self.dimension().max(1)])
            } else {
                self.search_rows(queries, k, direction)
            }
        };
        Ok(TwoWayRowMatches {
            similar: search(k_similar, SearchDirection::Similar)?,
            dissimilar: search(k_dissimilar, SearchDirection::Dissimilar)?,
        })
    }
}

/// Checks a row-major batch: whole rows of `dimension`, every value finite, and no zero row
/// under the cosine metric. Returns the number of rows.
pub(crate) fn check_batch(
    what: &'static str,
    values: &[f32],
    dimension: usize,
    metric: Metric,
) -> Result<usize> {
    if dimension == 0 || !values.len().is_multiple_of(dimension) {
        return Err(IndexError::Shape {
            what,
            dimension,
            len: values.len(),
        });
    }
    for (row, vector) in values.chunks_exact(dimension).enumerate() {
        if let Some(component) = vector.iter().position(|v| !v.is_finite()) {
            return Err(IndexError::NonFiniteValue {
                what,
                row,
                component,
                value: vector[component],
            });
        }
        if metric == Metric::Cosine && vector.iter().all(|&v| v == 0.0) {
            return Err(IndexError::ZeroVector { what, row });
        }
    }
    Ok(values.len() / dimension)
}

/// Scales every row to unit length (rows already checked to be non-zero and finite).
pub(crate) use g3_core::l2_normalize_rows as normalize_rows;

/// Validates a query batch and, under the cosine metric, returns it normalised.
pub(crate) fn prepare_queries<'q>(
    queries: &'q [f32],
    dimension: usize,
    metric: Metric,
) -> Result<std::borrow::Cow<'q, [f32]>> {
    check_batch("query", queries, dimension, metric)?;
    Ok(match metric {
        Metric::InnerProduct => std::borrow::Cow::Borrowed(queries),
        Metric::Cosine => {
            let mut owned = queries.to_vec();
            normalize_rows(&mut owned, dimension);
            std::borrow::Cow::Owned(owned)
        }
    })
}

/// Refuses components that f16 storage would turn into infinities.
pub(crate) fn check_f16_range(vectors: &[f32], dimension: usize) -> Result<()> {
    let largest = f32::from(half::f16::MAX);
    for (row, vector) in vectors.chunks_exact(dimension).enumerate() {
        if let Some(component) = vector.iter().position(|v| v.abs() > largest) {
            return Err(IndexError::OutOfF16Range {
                row,
                component,
                value: vector[component],
            });
        }
    }
    Ok(())
}

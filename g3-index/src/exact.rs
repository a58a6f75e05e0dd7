//! [`ExactStore`]: every entry scored, the ground truth, and what faiss `IndexFlatIP` does.

use std::path::Path;

use g3_core::SearchDirection;
use g3_kernels::{MatrixMut, MatrixRef, Product, StoredRows, inner_products, matmul, widen_f16};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::column::Column;
use crate::config::{Metric, VectorPrecision};
use crate::error::{IndexError, Result};
use crate::store::{
    RowMatch, TwoWayRowMatches, VectorIndex, check_batch, check_f16_range, normalize_rows,
    prepare_queries,
};
use crate::top_k::TopK;

/// Entries scored per task: large enough that a task's work dwarfs scheduling, small enough
/// that its score block stays in cache.
const ROWS_PER_BLOCK: usize = 1024;

/// From this many queries on, a search scores blocks with a matrix product (as faiss does
/// from 20 queries on), whose blocking keeps many queries in cache; below it, tiles of rows ×
/// queries are scored in registers ([`inner_products`]), each row read once for all the
/// queries and f16 rows never widened into memory (`benches/index.rs` measures both).
const MATRIX_PRODUCT_MIN_QUERIES: usize = 64;

/// Queries scored together in one matrix product; bounds each thread's score block at
/// `ROWS_PER_BLOCK × QUERIES_PER_PASS` floats (4 MiB). Every pass reads all vectors again,
/// so larger passes are faster, as long as the score block stays in cache
/// (`benches/index.rs` measures batched search).
const QUERIES_PER_PASS: usize = 1024;

/// A flat store that scores every entry: exact results, used as the ground truth for the HNSW
/// store and matching faiss `IndexFlatIP` (same ranking, same float32 scores to rounding).
///
/// Search runs on all rayon threads: the rows are split into blocks, each block keeps its own
/// best `k` per query, and the partial results are merged.
///
/// **f16 storage** ([`with_precision`](Self::with_precision)) halves the memory (MP16-Pro's
/// 4.12M × 2304 vectors: 19 GB instead of 38 GB). Rows are widened to f32 as they are
/// scored (in registers, or block by block before a large batch's matrix product), so the
/// arithmetic is the f32 store's; scores differ from it by the rounding of the stored values
/// (below 1e-3 for unit vectors), which reorders only entries whose scores are that close.
///
/// Up to a few dozen queries, a query's scores do not depend on the other queries of its
/// batch ([`inner_products`] sums every pair the same way): a photo's retrieval is the same
/// alone or in a batch.
pub struct ExactStore {
    dimension: usize,
    metric: Metric,
    vectors: StoredVectors,
}

/// The stored rows, in the store's precision.
enum StoredVectors {
    F32(Column<f32>),
    F16(Column<f16>),
}

impl ExactStore {
    /// An empty store for vectors of width `dimension`.
    pub fn new(dimension: usize, metric: Metric) -> Result<Self> {
        if dimension == 0 {
            return Err(IndexError::InvalidConfig(
                "the dimension must be at least 1".into(),
            ));
        }
        Ok(ExactStore {
            dimension,
            metric,
            vectors: StoredVectors::F32(Column::Owned(Vec::new())),
        })
    }

    /// An empty store keeping its vectors in `precision`: f32 (like [`new`](Self::new)) or
    /// f16. i8 is for HNSW graphs only: an exact store is the ground truth.
    pub fn with_precision(
        dimension: usize,
        metric: Metric,
        precision: VectorPrecision,
    ) -> Result<Self> {
        let mut store = ExactStore::new(dimension, metric)?;
        match precision {
            VectorPrecision::F32 => {}
            VectorPrecision::F16 => store.vectors = StoredVectors::F16(Column::Owned(Vec::new())),
            VectorPrecision::I8 => {
                return Err(IndexError::InvalidConfig(
                    "the exact store keeps f32 or f16 vectors; i8 storage is for HNSW".into(),
                ));
            }
        }
        Ok(store)
    }

    /// The storage precision.
    pub fn precision(&self) -> VectorPrecision {
        match self.vectors {
            StoredVectors::F32(_) => VectorPrecision::F32,
            StoredVectors::F16(_) => VectorPrecision::F16,
        }
    }

    /// A store holding `vectors` (row-major, rows of `dimension`), checked and, under the
    /// cosine metric, normalised.
    pub fn from_vectors(dimension: usize, metric: Metric, vectors: Vec<f32>) -> Result<Self> {
        let mut store = ExactStore::new(dimension, metric)?;
        let mut vectors = vectors;
        let rows = check_batch("vector", &vectors, dimension, metric)?;
        check_row_limit(rows)?;
        if metric == Metric::Cosine {
            normalize_rows(&mut vectors, dimension);
        }
        store.vectors = StoredVectors::F32(Column::Owned(vectors));
        Ok(store)
    }

    /// Appends rows; they get the next row numbers. A store opened from disk is read-only
    /// and cannot grow.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        check_batch("vector", vectors, self.dimension, self.metric)?;
        check_row_limit((self.values() + vectors.len()) / self.dimension)?;
        let read_only =
            || IndexError::InvalidConfig("a store opened from disk is read-only".into());
        match &mut self.vectors {
            StoredVectors::F32(Column::Owned(stored)) => {
                let start = stored.len();
                stored.extend_from_slice(vectors);
                if self.metric == Metric::Cosine {
                    normalize_rows(&mut stored[start..], self.dimension);
                }
            }
            StoredVectors::F16(Column::Owned(stored)) => {
                let rows: std::borrow::Cow<[f32]> = if self.metric == Metric::Cosine {
                    let mut rows = vectors.to_vec();
                    normalize_rows(&mut rows, self.dimension);
                    std::borrow::Cow::Owned(rows)
                } else {
                    std::borrow::Cow::Borrowed(vectors)
                };
                check_f16_range(&rows, self.dimension)?;
                let start = stored.len();
                stored.resize(start + rows.len(), f16::ZERO);
                stored[start..].convert_from_f32_slice(&rows);
            }
            _ => return Err(read_only()),
        }
        Ok(())
    }

    /// The stored vectors of an f32 store, row-major (normalised under the cosine metric);
    /// `None` for an f16 store.
    pub fn vectors(&self) -> Option<&[f32]> {
        match &self.vectors {
            StoredVectors::F32(column) => Some(column.as_slice()),
            StoredVectors::F16(_) => None,
        }
    }

    /// Stored values (rows × dimension).
    fn values(&self) -> usize {
        match &self.vectors {
            StoredVectors::F32(column) => column.as_slice().len(),
            StoredVectors::F16(column) => column.as_slice().len(),
        }
    }

    pub(crate) fn vector_bytes(&self) -> &[u8] {
        match &self.vectors {
            StoredVectors::F32(column) => column.as_bytes(),
            StoredVectors::F16(column) => column.as_bytes(),
        }
    }

    /// Rows `block · ROWS_PER_BLOCK ..` (at most `ROWS_PER_BLOCK` of them) as f32: borrowed
    /// from an f32 store, widened into `buffer` from an f16 one.
    fn block_rows<'a>(&'a self, block: usize, buffer: &'a mut Vec<f32>) -> &'a [f32] {
        let span = ROWS_PER_BLOCK * self.dimension;
        match &self.vectors {
            StoredVectors::F32(column) => {
                let values = column.as_slice();
                &values[block * span..values.len().min((block + 1) * span)]
            }
            StoredVectors::F16(column) => {
                let values = column.as_slice();
                let rows = &values[block * span..values.len().min((block + 1) * span)];
                buffer.resize(rows.len(), 0.0);
                widen_f16(rows.reinterpret_cast(), buffer);
                buffer
            }
        }
    }

    /// Scores block `block`'s rows against every query of `queries` into `scores`
    /// (query-major: `scores[q * ROWS_PER_BLOCK + r]`) and returns the block's row count.
    /// A tile of rows × queries is scored at once in registers ([`inner_products`]): each
    /// row is read from memory once for all the queries, and f16 rows are widened in
    /// registers as they are read, never copied out.
    fn score_rows(&self, block: usize, queries: &[f32], scores: &mut [f32]) -> usize {
        let span = ROWS_PER_BLOCK * self.dimension;
        let rows = match &self.vectors {
            StoredVectors::F32(column) => {
                let values = column.as_slice();
                StoredRows::F32(&values[block * span..values.len().min((block + 1) * span)])
            }
            StoredVectors::F16(column) => {
                let values = column.as_slice();
                let rows = &values[block * span..values.len().min((block + 1) * span)];
                StoredRows::F16(rows.reinterpret_cast())
            }
        };
        inner_products(queries, rows, self.dimension, scores, ROWS_PER_BLOCK);
        rows.values() / self.dimension
    }

    fn block_count(&self) -> usize {
        self.values().div_ceil(ROWS_PER_BLOCK * self.dimension)
    }

    /// Opens a raw little-endian f32 (or f16, by `precision`) file after verifying its
    /// digest; the vectors stay memory-mapped.
    pub(crate) fn open_mapped(
        path: &Path,
        digest: Option<&str>,
        dimension: usize,
        metric: Metric,
        precision: VectorPrecision,
        count: usize,
    ) -> Result<Self> {
        check_row_limit(count)?;
        let vectors = match precision {
            VectorPrecision::F32 => StoredVectors::F32(Column::map_file(path, digest)?),
            VectorPrecision::F16 => StoredVectors::F16(Column::map_file(path, digest)?),
            VectorPrecision::I8 => {
                return Err(IndexError::corrupt(
                    path,
                    "the manifest asks for an exact store in i8, which does not exist",
                ));
            }
        };
        let store = ExactStore {
            dimension,
            metric,
            vectors,
        };
        let found = store.values();
        if count.checked_mul(dimension) != Some(found) {
            return Err(IndexError::corrupt(
                path,
                format!("holds {found} values, the manifest promises {count} rows × {dimension}"),
            ));
        }
        Ok(store)
    }

    /// Top-k lists of every query (up to a few dozen) in every wanted `(k, direction)`, from
    /// one scan of the vectors for all of them, a tile of rows at a time: `[direction][query]`.
    fn search_by_tiles(
        &self,
        queries: &[f32],
        wanted: &[(usize, SearchDirection)],
    ) -> Vec<Vec<Vec<RowMatch>>> {
        let query_count = queries.len() / self.dimension;
        // One list per (query, direction), query-major.
        let fresh = || -> Vec<TopK> {
            (0..query_count)
                .flat_map(|_| wanted.iter().map(|&(k, direction)| TopK::new(k, direction)))
                .collect()
        };
        let tops = (0..self.block_count())
            .into_par_iter()
            .fold(
                || (fresh(), vec![0.0f32; ROWS_PER_BLOCK * query_count]),
                |(mut tops, mut scores), block| {
                    let rows = self.score_rows(block, queries, &mut scores);
                    let first_row = (block * ROWS_PER_BLOCK) as u32;
                    for (query_tops, query_scores) in tops
                        .chunks_mut(wanted.len())
                        .zip(scores.chunks_exact(ROWS_PER_BLOCK))
                    {
                        for top in query_tops {
                            top.offer_block(first_row, &query_scores[..rows]);
                        }
                    }
                    (tops, scores)
                },
            )
            .map(|(tops, _)| tops)
            .reduce(fresh, merge_tops);
        let mut tops = tops.into_iter();
        let per_query = (0..query_count)
            .map(|_| {
                tops.by_ref()
                    .take(wanted.len())
                    .map(TopK::into_sorted)
                    .collect()
            })
            .collect();
        by_direction(per_query, wanted.len())
    }

    /// [`search_by_tiles`](Self::search_by_tiles) for a batch: each block of vectors is
    /// scored against a pass of queries with one matrix product.
    fn search_by_matrix_product(
        &self,
        queries: &[f32],
        wanted: &[(usize, SearchDirection)],
    ) -> Vec<Vec<Vec<RowMatch>>> {
        let dimension = self.dimension;
        let mut per_query: Vec<Vec<Vec<RowMatch>>> = Vec::with_capacity(queries.len() / dimension);
        for pass in queries.chunks(QUERIES_PER_PASS * dimension) {
            let query_count = pass.len() / dimension;
            // One list per (query, direction), query-major.
            let fresh = || {
                (
                    (0..query_count)
                        .flat_map(|_| wanted.iter().map(|&(k, direction)| TopK::new(k, direction)))
                        .collect::<Vec<TopK>>(),
                    vec![0.0f32; ROWS_PER_BLOCK * query_count],
                    Vec::new(),
                )
            };
            let (tops, _, _) = (0..self.block_count())
                .into_par_iter()
                .fold(fresh, |(mut tops, mut scores, mut widened), block| {
                    let rows = self.block_rows(block, &mut widened);
                    let row_count = rows.len() / dimension;
                    let scores_used = &mut scores[..row_count * query_count];
                    score_block(rows, pass, dimension, scores_used);
                    let first_row = (block * ROWS_PER_BLOCK) as u32;
                    for (query_tops, query_scores) in tops
                        .chunks_mut(wanted.len())
                        .zip(scores_used.chunks_exact(row_count))
                    {
                        for top in query_tops {
                            top.offer_block(first_row, query_scores);
                        }
                    }
                    (tops, scores, widened)
                })
                .reduce(fresh, |(left, scores, widened), (right, _, _)| {
                    (merge_tops(left, right), scores, widened)
                });
            let mut tops = tops.into_iter();
            for _ in 0..query_count {
                per_query.push(
                    tops.by_ref()
                        .take(wanted.len())
                        .map(TopK::into_sorted)
                        .collect(),
                );
            }
        }
        by_direction(per_query, wanted.len())
    }

    /// Every wanted `(k, direction)` of every query from one scan of the vectors (or one
    /// scan per pass of [`QUERIES_PER_PASS`] queries): `[direction][query]`.
    fn search_wanted(
        &self,
        queries: &[f32],
        wanted: &[(usize, SearchDirection)],
    ) -> Result<Vec<Vec<Vec<RowMatch>>>> {
        let queries = prepare_queries(queries, self.dimension, self.metric)?;
        let query_count = queries.len() / self.dimension;
        let wanted: Vec<(usize, SearchDirection)> = wanted
            .iter()
            .map(|&(k, direction)| (k.min(self.len()), direction))
            .collect();
        if wanted.iter().all(|&(k, _)| k == 0) {
            return Ok(vec![vec![Vec::new(); query_count]; wanted.len()]);
        }
        Ok(if query_count < MATRIX_PRODUCT_MIN_QUERIES {
            self.search_by_tiles(&queries, &wanted)
        } else {
            self.search_by_matrix_product(&queries, &wanted)
        })
    }
}

/// Folds two partial results of the same lists, list by list.
fn merge_tops(mut left: Vec<TopK>, right: Vec<TopK>) -> Vec<TopK> {
    for (left, right) in left.iter_mut().zip(right) {
        left.merge(right);
    }
    left
}

/// `[query][direction]` lists turned into `[direction][query]`.
fn by_direction(per_query: Vec<Vec<Vec<RowMatch>>>, directions: usize) -> Vec<Vec<Vec<RowMatch>>> {
    let mut lists: Vec<Vec<Vec<RowMatch>>> = (0..directions)
        .map(|_| Vec::with_capacity(per_query.len()))
        .collect();
    for query in per_query {
        for (list, found) in lists.iter_mut().zip(query) {
            list.push(found);
        }
    }
    lists
}

impl VectorIndex for ExactStore {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn len(&self) -> usize {
        self.values() / self.dimension
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn search_rows(
        &self,
        queries: &[f32],
        k: usize,
        direction: SearchDirection,
    ) -> Result<Vec<Vec<RowMatch>>> {
        let mut lists = self.search_wanted(queries, &[(k, direction)])?;
        Ok(lists.pop().unwrap_or_default())
    }

    /// One scan of the vectors keeps both the highest and the lowest scores of every query:
    /// at the published size, half the memory traffic of two searches.
    fn search_rows_both(
        &self,
        queries: &[f32],
        k_similar: usize,
        k_dissimilar: usize,
    ) -> Result<TwoWayRowMatches> {
        let mut lists = self.search_wanted(
            queries,
            &[
                (k_similar, SearchDirection::Similar),
                (k_dissimilar, SearchDirection::Dissimilar),
            ],
        )?;
        let dissimilar = lists.pop().unwrap_or_default();
        let similar = lists.pop().unwrap_or_default();
        Ok(TwoWayRowMatches {
            similar,
            dissimilar,
        })
    }
}

/// Rows are numbered with `u32` while searching (half the memory per kept result).
pub(crate) fn check_row_limit(rows: usize) -> Result<()> {
    if rows > u32::MAX as usize {
        return Err(IndexError::InvalidConfig(format!(
            "{rows} rows: the exact store holds at most {} (split the database)",
            u32::MAX
        )));
    }
    Ok(())
}

/// Writes `scores[q * rows + r] = queries[q] · vectors[r]` for a block of stored rows and a
/// pass of queries (both row-major with rows of `dimension`) with one matrix product:
/// `vectors · queriesᵀ` into `scores` read column-major (query-major).
fn score_block(vectors: &[f32], queries: &[f32], dimension: usize, scores: &mut [f32]) {
    let row_count = vectors.len() / dimension;
    let query_count = queries.len() / dimension;
    matmul(
        MatrixRef::row_major(vectors, dimension),
        MatrixRef::strided(queries, 1, dimension),
        MatrixMut::strided(scores, 1, row_count),
        Product::new(row_count, dimension, query_count),
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn brute_force(store: &ExactStore, query: &[f32], k: usize) -> Vec<usize> {
        let mut scored: Vec<(f32, usize)> = store
            .vectors()
            .unwrap()
            .chunks_exact(store.dimension)
            .enumerate()
            .map(|(row, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), row))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(k).map(|(_, row)| row).collect()
    }

    #[test]
    fn both_search_paths_agree_with_brute_force() {
        let dimension = 37;
        let store = ExactStore::from_vectors(
            dimension,
            Metric::InnerProduct,
            pseudo_random(3000 * dimension, 1),
        )
        .unwrap();
        // Past the matrix-product threshold, so the two paths differ.
        let queries = pseudo_random(MATRIX_PRODUCT_MIN_QUERIES * dimension, 2);
        let batched = store
            .search_rows(&queries, 10, SearchDirection::Similar)
            .unwrap();
        let single = store
            .search_by_tiles(&queries, &[(10, SearchDirection::Similar)])
            .pop()
            .unwrap();
        for (index, query) in queries.chunks_exact(dimension).enumerate() {
            let expected = brute_force(&store, query, 10);
            let rows = |m: &Vec<RowMatch>| m.iter().map(|m| m.row).collect::<Vec<_>>();
            assert_eq!(rows(&batched[index]), expected);
            assert_eq!(rows(&single[index]), expected);
            for (a, b) in batched[index].iter().zip(&single[index]) {
                assert!((a.similarity - b.similarity).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn one_scan_of_both_directions_equals_two_searches() {
        let dimension = 19;
        for precision in [VectorPrecision::F32, VectorPrecision::F16] {
            let mut store =
                ExactStore::with_precision(dimension, Metric::InnerProduct, precision).unwrap();
            store.add(&pseudo_random(2500 * dimension, 5)).unwrap();
            // One query, a few (tiles in registers), a large batch (matrix products), and
            // k of 0.
            for (query_count, k_similar, k_dissimilar) in [
                (1, 7, 5),
                (3, 4, 9),
                (6, 12, 3),
                (5, 0, 4),
                (MATRIX_PRODUCT_MIN_QUERIES + 3, 6, 6),
            ] {
                let queries = pseudo_random(query_count * dimension, 6 + query_count as u64);
                let TwoWayRowMatches {
                    similar,
                    dissimilar,
                } = store
                    .search_rows_both(&queries, k_similar, k_dissimilar)
                    .unwrap();
                let separate_similar = store
                    .search_rows(&queries, k_similar, SearchDirection::Similar)
                    .unwrap();
                let separate_dissimilar = store
                    .search_rows(&queries, k_dissimilar, SearchDirection::Dissimilar)
                    .unwrap();
                assert_eq!(
                    similar, separate_similar,
                    "{precision:?} {query_count} queries"
                );
                assert_eq!(
                    dissimilar, separate_dissimilar,
                    "{precision:?} {query_count} queries"
                );
                assert_eq!(similar.len(), query_count);
                assert!(similar.iter().all(|found| found.len() == k_similar));
                assert!(dissimilar.iter().all(|found| found.len() == k_dissimilar));
            }
        }
    }

    #[test]
    fn a_photo_finds_the_same_alone_or_in_a_batch() {
        let dimension = 45;
        for precision in [VectorPrecision::F32, VectorPrecision::F16] {
            let mut store =
                ExactStore::with_precision(dimension, Metric::Cosine, precision).unwrap();
            store.add(&pseudo_random(3100 * dimension, 11)).unwrap();
            let queries = pseudo_random(16 * dimension, 12);
            let batch = store.search_rows_both(&queries, 15, 15).unwrap();
            for (index, query) in queries.chunks_exact(dimension).enumerate() {
                let alone = store.search_rows_both(query, 15, 15).unwrap();
                assert_eq!(
                    alone.similar[0], batch.similar[index],
                    "{precision:?} {index}"
                );
                assert_eq!(
                    alone.dissimilar[0], batch.dissimilar[index],
                    "{precision:?} {index}"
                );
            }
        }
    }

    #[test]
    fn dissimilar_is_similar_to_the_negated_query() {
        let dimension = 8;
        let store = ExactStore::from_vectors(
            dimension,
            Metric::InnerProduct,
            pseudo_random(500 * dimension, 3),
        )
        .unwrap();
        let query = pseudo_random(dimension, 4);
        let negated: Vec<f32> = query.iter().map(|v| -v).collect();
        let dissimilar = store
            .search_rows(&query, 5, SearchDirection::Dissimilar)
            .unwrap();
        let via_negation = store
            .search_rows(&negated, 5, SearchDirection::Similar)
            .unwrap();
        for (a, b) in dissimilar[0].iter().zip(&via_negation[0]) {
            assert_eq!(a.row, b.row);
            assert!((a.similarity + b.similarity).abs() < 1e-6);
        }
        assert!(
            dissimilar[0]
                .windows(2)
                .all(|w| w[0].similarity <= w[1].similarity)
        );
    }

    #[test]
    fn cosine_normalises_vectors_and_queries() {
        let store = ExactStore::from_vectors(2, Metric::Cosine, vec![3.0, 0.0, 0.0, 0.5, 1.0, 1.0])
            .unwrap();
        let found = store
            .search_rows(&[10.0, 0.0], 3, SearchDirection::Similar)
            .unwrap();
        assert_eq!(found[0][0].row, 0);
        assert!((found[0][0].similarity - 1.0).abs() < 1e-6);
        assert!((found[0][1].similarity - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(matches!(
            store.search_rows(&[0.0, 0.0], 1, SearchDirection::Similar),
            Err(IndexError::ZeroVector {
                what: "query",
                row: 0
            })
        ));
    }
}

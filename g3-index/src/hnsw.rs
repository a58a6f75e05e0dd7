//! [`HnswStore`]: a usearch HNSW graph. Every usearch type and error stays in this module.

use std::path::Path;

use g3_core::SearchDirection;
use g3_kernels::dot;
use memmap2::Mmap;
use rayon::prelude::*;
use usearch::ffi::{IndexOptions, MetricKind, ScalarKind};

use crate::column::{Column, map_verified};
use crate::config::{HnswConfig, Metric, VectorPrecision};
use crate::error::{IndexError, Result};
use crate::store::{
    RowMatch, TwoWayRowMatches, VectorIndex, check_batch, check_f16_range, normalize_rows,
    prepare_queries,
};

/// An approximate store: usearch's HNSW graph over f32, f16 or i8 vectors.
///
/// Rows are the usearch keys (0, 1, 2, ... in insertion order); the
/// [`Database`](crate::Database) maps them to its own keys.
///
/// **Dissimilar search.** The reference finds the least similar images by searching its
/// inner-product index with the negated query: the largest `(-q)·x` is the smallest `q·x`.
/// This store does the same: the graph is searched for `-q` and the similarities are turned
/// back into `q·x`. But `-q` lies far from every entry (embeddings fill a cone, and `-q`
/// points out of it), and a greedy graph search towards a far point stops early at local
/// extremes, with the ordinary beam far more often than a similar search does (faiss's HNSW
/// as well). Dissimilar searches therefore use their own, wider beam,
/// [`HnswConfig::expansion_dissimilar`] (256 by default), applied per call without touching
/// the similar-search setting. `benches/compare/index.py` reports the recall of both
/// directions at several beams; docs/performance.md has the figures.
/// Where exact dissimilar neighbours matter, use the [`ExactStore`](crate::ExactStore).
///
/// **Exact re-ranking.** A graph over f16 or i8 vectors walks faster than one over f32 but
/// ranks with quantised scores. With [`HnswConfig::rerank`] above zero the store also keeps
/// the vectors in f32 ([`exact_vectors`](Self::exact_vectors)): each search takes
/// `max(k, rerank)` candidates from the graph and orders them by their exact f32 inner
/// product, so quantisation costs recall only through the candidates the walk misses.
///
/// **i8 vectors.** Components are multiplied by [`HnswConfig::i8_scale`] (chosen from the
/// first vectors added) and rounded, queries the same way, so the graph's integer inner
/// products are the f32 ones times the scale squared; similarities are reported divided back.
pub struct HnswStore {
    // Declared before `mapping` so the index is dropped before the memory it may view.
    index: usearch::Index,
    mapping: Option<Mmap>,
    /// The vectors in f32, for exact re-ranking (unit length for the cosine metric).
    exact: Option<Column<f32>>,
    dimension: usize,
    metric: Metric,
    precision: VectorPrecision,
    config: HnswConfig,
}

/// usearch reports C++ exceptions; only their message crosses into our errors.
fn hnsw_error(error: impl std::fmt::Display) -> IndexError {
    IndexError::Hnsw(error.to_string())
}

fn metric_kind(metric: Metric) -> MetricKind {
    match metric {
        Metric::InnerProduct => MetricKind::IP,
        Metric::Cosine => MetricKind::Cos,
    }
}

fn scalar_kind(precision: VectorPrecision) -> ScalarKind {
    match precision {
        VectorPrecision::F32 => ScalarKind::F32,
        VectorPrecision::F16 => ScalarKind::F16,
        VectorPrecision::I8 => ScalarKind::I8,
    }
}

/// The one place where usearch distances become similarities. usearch reports
/// `1 − a·b` for both `IP` and `Cos` (the cosine after normalising); a dissimilar search ran
/// with `−q`, so its distance is `1 + q·x`.
/// usearch's i8 inner product is the plain integer one, so `1 − a·b` comes in units of the
/// scale squared: `unit` is `1 / scale²` there and 1 for every other kind of graph.
fn similarity_from_distance(distance: f32, direction: SearchDirection, unit: f32) -> f32 {
    match direction {
        SearchDirection::Similar => (1.0 - distance) * unit,
        SearchDirection::Dissimilar => (distance - 1.0) * unit,
    }
}

/// The scale that maps the largest component magnitude of `vectors` to 127.
fn i8_scale_for(vectors: &[f32]) -> f32 {
    let largest = vectors
        .iter()
        .fold(0.0f32, |largest, v| largest.max(v.abs()));
    if largest > 0.0 {
        127.0 / largest
    } else {
        127.0
    }
}

/// `vector` times `scale`, rounded and saturated to [−127, 127].
fn quantize_i8(vector: &[f32], scale: f32, out: &mut Vec<i8>) {
    out.clear();
    out.extend(
        vector
            .iter()
            .map(|v| (v * scale).round().clamp(-127.0, 127.0) as i8),
    );
}

impl HnswStore {
    /// An empty store.
    pub fn new(
        dimension: usize,
        metric: Metric,
        precision: VectorPrecision,
        config: HnswConfig,
    ) -> Result<Self> {
        if dimension == 0 {
            return Err(IndexError::InvalidConfig(
                "the dimension must be at least 1".into(),
            ));
        }
        if config.connectivity < 2 {
            return Err(IndexError::InvalidConfig(format!(
                "HNSW connectivity {} is below 2",
                config.connectivity
            )));
        }
        if config.expansion_add == 0
            || config.expansion_search == 0
            || config.expansion_dissimilar == 0
        {
            return Err(IndexError::InvalidConfig(
                "HNSW expansion settings must be at least 1".into(),
            ));
        }
        if let Some(scale) = config.i8_scale
            && !(scale.is_finite() && scale > 0.0)
        {
            return Err(IndexError::InvalidConfig(format!(
                "the i8 scale must be a positive number, not {scale}"
            )));
        }
        if config.rerank > 0 && precision == VectorPrecision::F32 {
            return Err(IndexError::InvalidConfig(
                "exact re-ranking needs an f16 or i8 graph: an f32 graph's scores are already exact".into(),
            ));
        }
        let mut index = usearch::Index::new(&options(dimension, metric, precision, config))
            .map_err(hnsw_error)?;
        use_faster_kernel(&mut index, dimension, metric, precision);
        let exact = (config.rerank > 0).then(|| Column::Owned(Vec::new()));
        Ok(HnswStore {
            index,
            mapping: None,
            exact,
            dimension,
            metric,
            precision,
            config,
        })
    }

    /// The scale that turns components into i8 (`None`: not an i8 graph, or one from before
    /// the scale was kept, which usearch converts itself).
    fn i8_scale(&self) -> Option<f32> {
        self.config
            .i8_scale
            .filter(|_| self.precision == VectorPrecision::I8)
    }

    /// What one unit of the graph's `1 − distance` is worth as a similarity.
    fn similarity_unit(&self) -> f32 {
        match (self.precision, self.metric) {
            // usearch's conversion scales unit vectors by 127.
            (VectorPrecision::I8, Metric::InnerProduct) => {
                let scale = self.config.i8_scale.unwrap_or(127.0);
                1.0 / (scale * scale)
            }
            _ => 1.0,
        }
    }

    /// The f32 copy of the vectors kept for exact re-ranking, if any.
    pub fn exact_vectors(&self) -> Option<&[f32]> {
        self.exact.as_ref().map(Column::as_slice)
    }

    pub(crate) fn exact_vector_bytes(&self) -> Option<&[u8]> {
        self.exact.as_ref().map(Column::as_bytes)
    }

    /// Changes how many graph candidates are re-ranked exactly (0: none). Only a store built
    /// with [`HnswConfig::rerank`] above zero keeps the f32 vectors re-ranking needs; asking
    /// any other store to re-rank is an error rather than a search that silently does not.
    pub fn set_rerank(&mut self, candidates: usize) -> Result<()> {
        if candidates > 0 && self.exact.is_none() {
            return Err(IndexError::InvalidConfig(format!(
                "this {:?} graph keeps no f32 copy of its vectors to re-rank with; build it with rerank above 0 (an f16 or i8 graph)",
                self.precision
            )));
        }
        self.config.rerank = candidates;
        Ok(())
    }

    /// The storage precision.
    pub fn precision(&self) -> VectorPrecision {
        self.precision
    }

    /// The graph settings.
    pub fn config(&self) -> HnswConfig {
        self.config
    }

    /// Changes the search-time candidate list size (`ef`): higher is slower and more exact.
    pub fn set_expansion_search(&mut self, expansion: usize) {
        let expansion = expansion.max(1);
        self.index.change_expansion_search(expansion);
        self.config.expansion_search = expansion;
    }

    /// Changes the candidate list size of dissimilar searches.
    pub fn set_expansion_dissimilar(&mut self, expansion: usize) {
        self.config.expansion_dissimilar = expansion.max(1);
    }

    /// Appends rows on all rayon threads, calling `on_added(n)` as vectors go in. Capacity is
    /// reserved before the first insertion. Under i8 storage every component must lie in
    /// [-1, 1].
    pub fn add(&mut self, vectors: &[f32], on_added: &(dyn Fn(usize) + Sync)) -> Result<()> {
        if self.mapping.is_some() {
            return Err(IndexError::InvalidConfig(
                "a store opened from disk is read-only".into(),
            ));
        }
        let count = check_batch("vector", vectors, self.dimension, self.metric)?;
        if self.precision == VectorPrecision::I8 {
            check_i8_range(vectors, self.dimension)?;
        }

        if count == 0 {
            return Ok(());
        }
        let first_row = self.len();
        // Cosine graphs hold unit vectors: the i8 scale and the f32 copy are taken from them
        // (f32 and f16 graphs without a copy get the vectors as given; usearch normalises).
        let normalize = self.metric == Metric::Cosine
            && (self.precision == VectorPrecision::I8 || self.exact.is_some());
        let vectors: std::borrow::Cow<[f32]> = if normalize {
            let mut owned = vectors.to_vec();
            normalize_rows(&mut owned, self.dimension);
            std::borrow::Cow::Owned(owned)
        } else {
            std::borrow::Cow::Borrowed(vectors)
        };
        // What usearch stores in f16 must be finite there.
        if self.precision == VectorPrecision::F16 {
            check_f16_range(&vectors, self.dimension)?;
        }
        if self.precision == VectorPrecision::I8 && self.config.i8_scale.is_none() {
            self.config.i8_scale = Some(i8_scale_for(&vectors));
        }
        if let Some(Column::Owned(exact)) = &mut self.exact {
            exact.extend_from_slice(&vectors);
        }
        self.index
            .reserve_capacity_and_threads(first_row + count, rayon::current_num_threads())
            .map_err(hnsw_error)?;
        let index = &self.index;
        let i8_scale = self.i8_scale();
        vectors
            .par_chunks(self.dimension * 64)
            .enumerate()
            .try_for_each(|(chunk, rows)| {
                let mut quantized = Vec::new();
                for (offset, vector) in rows.chunks_exact(self.dimension).enumerate() {
                    let key = (first_row + chunk * 64 + offset) as u64;
                    match i8_scale {
                        Some(scale) => {
                            quantize_i8(vector, scale, &mut quantized);
                            index.add(key, &quantized)
                        }
                        None => index.add(key, vector),
                    }
                    .map_err(hnsw_error)?;
                }
                on_added(rows.len() / self.dimension);
                Ok(())
            })
    }

    /// Writes the graph and vectors in usearch's own format.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let path_text = path.to_str().ok_or_else(|| {
            IndexError::InvalidConfig(format!("{} is not valid UTF-8", path.display()))
        })?;
        self.index.save(path_text).map_err(|error| IndexError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(error.to_string()),
        })
    }

    /// Memory-maps a file written by [`save`](Self::save) after verifying its digest, and
    /// checks usearch's own header against what the manifest promises.
    pub(crate) fn open_mapped(
        path: &Path,
        digest: Option<&str>,
        dimension: usize,
        metric: Metric,
        precision: VectorPrecision,
        config: HnswConfig,
        count: usize,
    ) -> Result<Self> {
        let mapping = map_verified(path, digest)?;
        let header = usearch::Index::metadata_from_buffer(&mapping)
            .map_err(|error| IndexError::corrupt(path, error.to_string()))?;
        let expected = (
            dimension as u64,
            metric_kind(metric),
            scalar_kind(precision),
            count as u64,
        );
        let found = (
            header.dimensions,
            header.metric,
            header.quantization,
            header.count_present,
        );
        if found != expected || header.multi {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "the HNSW header says {} dimensions, {:?}, {:?}, {} vectors; the manifest says {dimension}, {:?}, {:?}, {count}",
                    found.0, found.1, found.2, found.3, expected.1, expected.2
                ),
            ));
        }
        let mut index = usearch::Index::new(&options(dimension, metric, precision, config))
            .map_err(hnsw_error)?;
        // SAFETY: the index reads from `mapping` for as long as it lives. Both move into the
        // returned store, whose field order drops the index first, and the mapping is
        // read-only and was verified against the manifest's digest just above.
        unsafe { index.view_from_buffer(&mapping) }
            .map_err(|error| IndexError::corrupt(path, error.to_string()))?;
        // Viewing a file sets the metric from its header: replace the kernel afterwards.
        use_faster_kernel(&mut index, dimension, metric, precision);
        index.change_expansion_search(config.expansion_search);
        Ok(HnswStore {
            index,
            mapping: Some(mapping),
            exact: None,
            dimension,
            metric,
            precision,
            config,
        })
    }

    /// Attaches the f32 copy of the vectors saved beside a quantised graph (memory-mapped
    /// from `path` by the caller), for exact re-ranking.
    pub(crate) fn attach_exact_vectors(&mut self, vectors: Column<f32>, path: &Path) -> Result<()> {
        let expected = self.len() * self.dimension;
        let found = vectors.as_slice().len();
        if found != expected {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "holds {found} values, the graph has {} rows × {}",
                    self.len(),
                    self.dimension
                ),
            ));
        }
        self.exact = Some(vectors);
        Ok(())
    }

    /// Bytes usearch holds for the graph and vectors.
    pub fn memory_usage(&self) -> usize {
        self.index.memory_usage()
    }
}

/// Replaces usearch's f32 inner-product kernel by [`dot`], which makes graphs build and
/// search faster (its docs say why). The replacement keeps usearch's convention for `IP`,
/// distance = `1 − a·b`, so [`similarity_from_distance`] stays the one conversion. Cosine and
/// the f16 and i8 kernels stay usearch's own. usearch only fails this on running out of memory
/// for a few query-sized buffers.
fn use_faster_kernel(
    index: &mut usearch::Index,
    dimension: usize,
    metric: Metric,
    precision: VectorPrecision,
) {
    if metric != Metric::InnerProduct || precision != VectorPrecision::F32 {
        return;
    }
    index.change_metric::<f32>(Box::new(move |first: *const f32, second: *const f32| {
        debug_assert!(first.is_aligned() && second.is_aligned());
        // SAFETY: usearch calls the metric with two vectors of the index's `dimension` f32
        // components each (a stored vector, and a stored one or the query), both alive for
        // the call.
        let (first, second) = unsafe {
            (
                std::slice::from_raw_parts(first, dimension),
                std::slice::from_raw_parts(second, dimension),
            )
        };
        1.0 - dot(first, second)
    }));
}

fn options(
    dimension: usize,
    metric: Metric,
    precision: VectorPrecision,
    config: HnswConfig,
) -> IndexOptions {
    IndexOptions {
        dimensions: dimension,
        metric: metric_kind(metric),
        quantization: scalar_kind(precision),
        connectivity: config.connectivity,
        expansion_add: config.expansion_add,
        expansion_search: config.expansion_search,
        multi: false,
    }
}

fn check_i8_range(vectors: &[f32], dimension: usize) -> Result<()> {
    for (row, vector) in vectors.chunks_exact(dimension).enumerate() {
        if let Some(component) = vector.iter().position(|v| v.abs() > 1.0) {
            return Err(IndexError::OutOfI8Range {
                row,
                component,
                value: vector[component],
            });
        }
    }
    Ok(())
}

/// The `k` best of `found` by the exact inner product with `query`, in the order of
/// `direction` (highest first for similar, lowest first for dissimilar searches).
fn rerank(
    mut found: Vec<RowMatch>,
    query: &[f32],
    vectors: &[f32],
    dimension: usize,
    k: usize,
    direction: SearchDirection,
) -> Vec<RowMatch> {
    for candidate in &mut found {
        let row = &vectors[candidate.row * dimension..][..dimension];
        candidate.similarity = dot(query, row);
    }
    match direction {
        SearchDirection::Similar => {
            found.sort_by(|a, b| {
                b.similarity
                    .total_cmp(&a.similarity)
                    .then(a.row.cmp(&b.row))
            });
        }
        SearchDirection::Dissimilar => {
            found.sort_by(|a, b| {
                a.similarity
                    .total_cmp(&b.similarity)
                    .then(a.row.cmp(&b.row))
            });
        }
    }
    found.truncate(k);
    found
}

impl VectorIndex for HnswStore {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn len(&self) -> usize {
        self.index.size()
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
        let queries = prepare_queries(queries, self.dimension, self.metric)?;
        let len = self.len();
        let k = k.min(len);
        let exact = self.exact_vectors().filter(|_| self.config.rerank > 0);
        // Candidates taken from the graph: k, or more to re-rank exactly.
        let candidates = match exact {
            Some(_) => self.config.rerank.max(k).min(len),
            None => k,
        };
        // usearch searches with a beam of max(ef, count): asking for more results than
        // needed widens the beam for this call only.
        let beam = self.config.expansion_dissimilar.max(candidates).min(len);
        let i8_scale = self.i8_scale();
        let unit = self.similarity_unit();
        let search_one = |query: &[f32]| -> Result<Vec<RowMatch>> {
            if k == 0 {
                return Ok(Vec::new());
            }
            let (sign, count) = match direction {
                SearchDirection::Similar => (1.0, candidates),
                SearchDirection::Dissimilar => (-1.0, beam),
            };
            let matches = match i8_scale {
                Some(scale) => {
                    let mut quantized = Vec::with_capacity(self.dimension);
                    quantize_i8(query, sign * scale, &mut quantized);
                    self.index.search(&quantized, count)
                }
                None if sign > 0.0 => self.index.search(query, count),
                None => {
                    let negated: Vec<f32> = query.iter().map(|v| -v).collect();
                    self.index.search(&negated, count)
                }
            }
            .map_err(hnsw_error)?;
            let found = matches
                .keys
                .iter()
                .zip(&matches.distances)
                .take(candidates)
                .map(|(&key, &distance)| {
                    let row = usize::try_from(key)
                        .ok()
                        .filter(|&row| row < len)
                        .ok_or_else(|| {
                            IndexError::Hnsw(format!(
                                "the graph returned key {key} outside 0..{len}"
                            ))
                        })?;
                    Ok(RowMatch {
                        row,
                        similarity: similarity_from_distance(distance, direction, unit),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(match exact {
                None => found,
                Some(vectors) => rerank(found, query, vectors, self.dimension, k, direction),
            })
        };
        let rows: Vec<&[f32]> = queries.chunks_exact(self.dimension).collect();
        if rows.len() == 1 {
            return Ok(vec![search_one(rows[0])?]);
        }
        rows.into_par_iter().map(search_one).collect()
    }

    /// The two directions are two graph walks, side by side on two threads (a single
    /// photo's searches each run on one thread, so together they take the longer one's time).
    fn search_rows_both(
        &self,
        queries: &[f32],
        k_similar: usize,
        k_dissimilar: usize,
    ) -> Result<TwoWayRowMatches> {
        let (similar, dissimilar) = rayon::join(
            || self.search_rows(queries, k_similar, SearchDirection::Similar),
            || self.search_rows(queries, k_dissimilar, SearchDirection::Dissimilar),
        );
        Ok(TwoWayRowMatches {
            similar: similar?,
            dissimilar: dissimilar?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_become_similarities_in_both_directions() {
        assert_eq!(
            similarity_from_distance(0.25, SearchDirection::Similar, 1.0),
            0.75
        );
        // Searching with −q: distance 1 − (−q·x) = 1 + q·x.
        assert_eq!(
            similarity_from_distance(0.25, SearchDirection::Dissimilar, 1.0),
            -0.75
        );
        // i8 graphs: integer inner products in units of the scale squared.
        assert_eq!(
            similarity_from_distance(1.0 - 2.0 * 64.0, SearchDirection::Similar, 1.0 / 64.0),
            2.0
        );
    }

    #[test]
    fn i8_quantization_spans_the_range_rounds_and_saturates() {
        let vectors = [0.02, -0.05, 0.01, 0.0];
        let scale = i8_scale_for(&vectors);
        assert_eq!(scale, 127.0 / 0.05);
        let mut out = Vec::new();
        quantize_i8(&vectors, scale, &mut out);
        assert_eq!(out, [51, -127, 25, 0]);
        // Beyond the first vectors' range: saturated, never wrapped.
        quantize_i8(&[0.5, -0.5], scale, &mut out);
        assert_eq!(out, [127, -127]);
        assert_eq!(i8_scale_for(&[0.0, 0.0]), 127.0);
    }

    #[test]
    fn i8_similarities_approximate_the_inner_product() {
        let dimension = 64;
        let vectors: Vec<f32> = (0..dimension * 50)
            .map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5) / 4.0)
            .collect();
        let mut store = HnswStore::new(
            dimension,
            Metric::InnerProduct,
            VectorPrecision::I8,
            HnswConfig::default(),
        )
        .unwrap();
        store.add(&vectors, &|_| {}).unwrap();
        assert!(store.config().i8_scale.is_some());
        let query = &vectors[3 * dimension..4 * dimension];
        for direction in [SearchDirection::Similar, SearchDirection::Dissimilar] {
            for found in &store.search_rows(query, 10, direction).unwrap()[0] {
                let exact = dot(query, &vectors[found.row * dimension..][..dimension]);
                assert!(
                    (found.similarity - exact).abs() < 0.01 * exact.abs().max(0.1),
                    "{direction:?}: {} vs {exact}",
                    found.similarity
                );
            }
        }
    }
}

//! [`HnswStore`]: a usearch HNSW graph. Every usearch type and error stays in this module.

use std::path::Path;

use g3_core::SearchDirection;
use memmap2::Mmap;
use rayon::prelude::*;
use usearch::ffi::{IndexOptions, MetricKind, ScalarKind};

use crate::column::map_verified;
use crate::config::{HnswConfig, Metric, VectorPrecision};
use crate::dot::dot;
use crate::error::{IndexError, Result};
use crate::store::{RowMatch, VectorIndex, check_batch, prepare_queries};

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
/// directions at several beams; the README has the figures.
/// Where exact dissimilar neighbours matter, use the [`ExactStore`](crate::ExactStore).
pub struct HnswStore {
    // Declared before `mapping` so the index is dropped before the memory it may view.
    index: usearch::Index,
    mapping: Option<Mmap>,
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
fn similarity_from_distance(distance: f32, direction: SearchDirection) -> f32 {
    match direction {
        SearchDirection::Similar => 1.0 - distance,
        SearchDirection::Dissimilar => distance - 1.0,
    }
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
        let mut index = usearch::Index::new(&options(dimension, metric, precision, config))
            .map_err(hnsw_error)?;
        use_faster_kernel(&mut index, dimension, metric, precision);
        Ok(HnswStore {
            index,
            mapping: None,
            dimension,
            metric,
            precision,
            config,
        })
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
        let first_row = self.len();
        self.index
            .reserve_capacity_and_threads(first_row + count, rayon::current_num_threads())
            .map_err(hnsw_error)?;
        let index = &self.index;
        vectors
            .par_chunks(self.dimension * 64)
            .enumerate()
            .try_for_each(|(chunk, rows)| {
                for (offset, vector) in rows.chunks_exact(self.dimension).enumerate() {
                    let row = first_row + chunk * 64 + offset;
                    index.add(row as u64, vector).map_err(hnsw_error)?;
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
        digest: &str,
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
            dimension,
            metric,
            precision,
            config,
        })
    }

    /// Bytes usearch holds for the graph and vectors.
    pub fn memory_usage(&self) -> usize {
        self.index.memory_usage()
    }
}

/// Replaces usearch's f32 inner-product kernel by [`dot`], which makes graphs build and
/// search faster (see `dot.rs`). The replacement keeps usearch's convention for `IP`,
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
        // usearch searches with a beam of max(ef, count): asking for more results than
        // needed widens the beam for this call only.
        let beam = self.config.expansion_dissimilar.max(k).min(len);
        let search_one = |query: &[f32]| -> Result<Vec<RowMatch>> {
            if k == 0 {
                return Ok(Vec::new());
            }
            let matches = match direction {
                SearchDirection::Similar => self.index.search(query, k),
                SearchDirection::Dissimilar => {
                    let negated: Vec<f32> = query.iter().map(|v| -v).collect();
                    self.index.search(&negated, beam)
                }
            }
            .map_err(hnsw_error)?;
            matches
                .keys
                .iter()
                .zip(&matches.distances)
                .take(k)
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
                        similarity: similarity_from_distance(distance, direction),
                    })
                })
                .collect()
        };
        let rows: Vec<&[f32]> = queries.chunks_exact(self.dimension).collect();
        if rows.len() == 1 {
            return Ok(vec![search_one(rows[0])?]);
        }
        rows.into_par_iter().map(search_one).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_become_similarities_in_both_directions() {
        assert_eq!(
            similarity_from_distance(0.25, SearchDirection::Similar),
            0.75
        );
        // Searching with −q: distance 1 − (−q·x) = 1 + q·x.
        assert_eq!(
            similarity_from_distance(0.25, SearchDirection::Dissimilar),
            -0.75
        );
    }
}

//! `g3rs.Database`: the image database (exact or HNSW store plus keys, locations and text
//! fields), searched with numpy queries.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use g3::core::SearchDirection;
use g3::index::{
    self, EntryMetadata, EntryMetadataBuilder, HnswConfig, MetadataCsvOptions, MetadataSource,
    Metric, RowMatch, StoreConfig, StoreKind, VectorPrecision,
};
use g3::{Embeddings, GeoPoint};
use numpy::ndarray::{Array2, Array3};
use numpy::{
    AllowTypeChange, IntoPyArray, PyArray2, PyArrayLike1, PyArrayLikeDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::convert::{setting, to_python_data};
use crate::errors::{G3Error, OrRaise};
use crate::interrupt::in_interruptible_chunks;
use crate::points::{points_from, points_to_array};

/// Queries answered per chunk of a long search: the exact store's own pass size, so that
/// chunking costs no extra pass over the vectors; Ctrl-C is honoured between chunks.
const QUERIES_PER_CHUNK: usize = 1024;

/// Above this many multiply-adds (queries × entries × dimension) an exact search runs on a
/// worker thread that Ctrl-C can stop (one query over 200k × 2304 vectors is about 4.6e8,
/// a tenth of a second on two cores); below it, the search runs inline.
const INTERRUPTIBLE_EXACT_WORK: usize = 1_000_000_000;

/// HNSW searches of more queries than this run on a worker thread that Ctrl-C can stop.
const INTERRUPTIBLE_HNSW_QUERIES: usize = 256;

/// Geotagged image embeddings: a vector store (exact, or an HNSW graph over f32, f16 or i8
/// vectors) with each entry's key, location and text fields.
///
/// Open one saved by `g3 index build` / `Database.save` (memory-mapped: opening reads no
/// vectors), build one from numpy arrays, or import the flat faiss index G3 publishes.
#[pyclass(frozen, name = "Database", module = "g3rs")]
pub struct PyDatabase {
    // A lock only for the few settings that change a graph's search (`set_expansion_search`,
    // `set_rerank`): searches share it.
    database: Arc<RwLock<index::Database>>,
}

/// A panic while the lock was held (a bug) left the database unusable.
fn poisoned() -> PyErr {
    PyRuntimeError::new_err("the database lock was poisoned by a panic")
}

impl PyDatabase {
    fn wrap(database: index::Database) -> Self {
        PyDatabase {
            database: Arc::new(RwLock::new(database)),
        }
    }

    fn read(&self) -> PyResult<std::sync::RwLockReadGuard<'_, index::Database>> {
        self.database.read().map_err(|_| poisoned())
    }

    fn write(&self) -> PyResult<std::sync::RwLockWriteGuard<'_, index::Database>> {
        self.database.write().map_err(|_| poisoned())
    }

    /// One direction of search for every query row of `queries`.
    fn search_direction<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        direction: SearchDirection,
    ) -> PyResult<Py<Neighbors>> {
        let queries = QueryMatrix::extract(queries)?;
        let database = self.read()?;
        let found = search_chunked(py, &database, &queries, |slice| {
            database.index().search_rows(slice, k, direction)
        })?;
        Neighbors::from_matches(py, &database, found, k, queries.single)
    }
}

/// Query rows as a contiguous float32 buffer: the caller's array itself when it is already
/// C-contiguous float32, one copy otherwise.
struct QueryMatrix<'py> {
    array: PyArrayLikeDyn<'py, f32, AllowTypeChange>,
    copy: Option<Vec<f32>>,
    rows: usize,
    dimension: usize,
    /// A single query given as a 1-D vector: results then drop the query axis.
    single: bool,
}

impl<'py> QueryMatrix<'py> {
    fn extract(object: &Bound<'py, PyAny>) -> PyResult<Self> {
        let array: PyArrayLikeDyn<'py, f32, AllowTypeChange> = object.extract().map_err(|_| {
            PyValueError::new_err("queries must be a float array of shape [N, D] or [D]")
        })?;
        let (rows, dimension, single) = match *array.shape() {
            [dimension] => (1, dimension, true),
            [rows, dimension] => (rows, dimension, false),
            ref shape => {
                return Err(PyValueError::new_err(format!(
                    "queries must have shape [N, D] or [D], not {shape:?}"
                )));
            }
        };
        let copy = match array.as_slice() {
            Ok(_) => None,
            Err(_) => Some(array.as_array().iter().copied().collect()),
        };
        Ok(QueryMatrix {
            array,
            copy,
            rows,
            dimension,
            single,
        })
    }

    fn as_slice(&self) -> &[f32] {
        match &self.copy {
            Some(values) => values,
            None => self.array.as_slice().unwrap_or_default(),
        }
    }
}

/// Runs `search` over the query rows, inline for short searches and on an interruptible
/// worker, chunk by chunk, for long ones.
fn search_chunked<T: Send>(
    py: Python<'_>,
    database: &index::Database,
    queries: &QueryMatrix<'_>,
    search: impl Fn(&[f32]) -> index::Result<Vec<T>> + Sync,
) -> PyResult<Vec<T>> {
    let store = database.index();
    if queries.dimension != store.dimension() {
        return Err(G3Error::new_err(format!(
            "the queries are {}-d but the database holds {}-d vectors",
            queries.dimension,
            store.dimension()
        )));
    }
    let slice = queries.as_slice();
    let long = match database.config().kind {
        StoreKind::Exact => {
            queries
                .rows
                .saturating_mul(store.len())
                .saturating_mul(store.dimension())
                > INTERRUPTIBLE_EXACT_WORK
        }
        StoreKind::Hnsw => queries.rows > INTERRUPTIBLE_HNSW_QUERIES,
    };
    if !long || queries.rows <= 1 {
        return py.detach(|| search(slice)).or_raise();
    }
    // Chunks of whole query rows.
    in_interruptible_chunks(py, slice, QUERIES_PER_CHUNK * queries.dimension, search)?.or_raise()
}

/// The neighbours of each query: `keys`, `rows`, `similarities` and `locations`, one row per
/// query, best first (for dissimilar searches: least similar first). A query answered by
/// fewer than `k` entries (a small database, an HNSW walk that reached fewer) is padded with
/// row -1, key 0 and NaN. A single 1-D query gives arrays without the query axis.
#[pyclass(frozen, name = "Neighbors", module = "g3rs")]
pub struct Neighbors {
    /// Database rows (insertion order), int64, -1 for padding (as faiss pads).
    #[pyo3(get)]
    rows: Py<PyAny>,
    /// Database keys, uint64 (0 for padding).
    #[pyo3(get)]
    keys: Py<PyAny>,
    /// Similarity to the query (inner product, or cosine), float32 (NaN for padding).
    #[pyo3(get)]
    similarities: Py<PyAny>,
    /// Latitude and longitude in degrees, float64, shape [..., k, 2] (NaN for padding).
    #[pyo3(get)]
    locations: Py<PyAny>,
}

impl Neighbors {
    /// Neighbours from arrays already made (rows, keys, similarities, locations).
    pub fn new(
        rows: Py<PyAny>,
        keys: Py<PyAny>,
        similarities: Py<PyAny>,
        locations: Py<PyAny>,
    ) -> Self {
        Neighbors {
            rows,
            keys,
            similarities,
            locations,
        }
    }

    fn from_matches(
        py: Python<'_>,
        database: &index::Database,
        found: Vec<Vec<RowMatch>>,
        k: usize,
        single: bool,
    ) -> PyResult<Py<Neighbors>> {
        let queries = found.len();
        let metadata = database.metadata();
        let mut rows = Array2::<i64>::from_elem((queries, k), -1);
        let mut keys = Array2::<u64>::zeros((queries, k));
        let mut similarities = Array2::<f32>::from_elem((queries, k), f32::NAN);
        let mut locations = Array3::<f64>::from_elem((queries, k, 2), f64::NAN);
        for (query, matches) in found.iter().enumerate() {
            for (rank, found) in matches.iter().take(k).enumerate() {
                let location = metadata.location(found.row);
                rows[[query, rank]] = found.row as i64;
                keys[[query, rank]] = metadata.key(found.row);
                similarities[[query, rank]] = found.similarity;
                locations[[query, rank, 0]] = location.lat_deg();
                locations[[query, rank, 1]] = location.lon_deg();
            }
        }
        let neighbors = if single {
            Neighbors {
                rows: rows.row(0).to_owned().into_pyarray(py).into_any().unbind(),
                keys: keys.row(0).to_owned().into_pyarray(py).into_any().unbind(),
                similarities: similarities
                    .row(0)
                    .to_owned()
                    .into_pyarray(py)
                    .into_any()
                    .unbind(),
                locations: locations
                    .index_axis_move(numpy::ndarray::Axis(0), 0)
                    .into_pyarray(py)
                    .into_any()
                    .unbind(),
            }
        } else {
            Neighbors {
                rows: rows.into_pyarray(py).into_any().unbind(),
                keys: keys.into_pyarray(py).into_any().unbind(),
                similarities: similarities.into_pyarray(py).into_any().unbind(),
                locations: locations.into_pyarray(py).into_any().unbind(),
            }
        };
        Py::new(py, neighbors)
    }
}

#[pymethods]
impl Neighbors {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let shape = self.keys.bind(py).getattr("shape")?.repr()?;
        Ok(format!("Neighbors(shape={shape})"))
    }
}

/// The store settings of a build or import.
#[allow(clippy::too_many_arguments)]
fn store_config(
    kind: &str,
    metric: &str,
    precision: &str,
    connectivity: Option<usize>,
    expansion_add: Option<usize>,
    expansion_search: Option<usize>,
    rerank: Option<usize>,
) -> PyResult<StoreConfig> {
    let defaults = HnswConfig::default();
    Ok(StoreConfig {
        kind: setting("kind", kind)?,
        metric: setting::<Metric>("metric", metric)?,
        precision: setting::<VectorPrecision>("precision", precision)?,
        hnsw: HnswConfig {
            connectivity: connectivity.unwrap_or(defaults.connectivity),
            expansion_add: expansion_add.unwrap_or(defaults.expansion_add),
            expansion_search: expansion_search.unwrap_or(defaults.expansion_search),
            rerank: rerank.unwrap_or(defaults.rerank),
            ..defaults
        },
    })
}

#[pymethods]
impl PyDatabase {
    /// Opens the database saved at `path` (memory-mapped; checks the manifest, file sizes
    /// and the verification stamp, hashing only files changed since they were verified).
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let database = py.detach(|| index::Database::open(&path)).or_raise()?;
        Ok(PyDatabase::wrap(database))
    }

    /// A database in memory from `vectors` ([N, D] float32) and `locations` ([N, 2]
    /// latitude, longitude in degrees), keyed by `keys` (default: the row) and with text
    /// columns `texts` ({column: [N strings]}). `kind` is `"exact"` (faiss IndexFlatIP's
    /// results) or `"hnsw"`; `metric` `"inner-product"` or `"cosine"`; `precision` `"f32"`,
    /// `"f16"` or `"i8"`; the HNSW settings default to usearch's (16, 128, 64); `rerank`
    /// keeps an f32 copy and re-scores that many of a quantised graph's candidates. Save it
    /// with `save`. The GIL is released while building; a Ctrl-C meanwhile is raised when
    /// the build returns (a graph cannot stop half-built). The store takes a copy of
    /// `vectors`: for collections near the machine's memory (MP16-Pro's 4.12M × 2304 is
    /// 38 GB in f32), stream them instead with `import_faiss` or `g3 index build`.
    #[staticmethod]
    #[pyo3(signature = (vectors, locations, keys = None, texts = None, kind = "exact", metric = "inner-product", precision = "f32", connectivity = None, expansion_add = None, expansion_search = None, rerank = None))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        vectors: &Bound<'_, PyAny>,
        locations: &Bound<'_, PyAny>,
        keys: Option<PyArrayLike1<'_, u64, AllowTypeChange>>,
        texts: Option<std::collections::BTreeMap<String, Vec<String>>>,
        kind: &str,
        metric: &str,
        precision: &str,
        connectivity: Option<usize>,
        expansion_add: Option<usize>,
        expansion_search: Option<usize>,
        rerank: Option<usize>,
    ) -> PyResult<Self> {
        let config = store_config(
            kind,
            metric,
            precision,
            connectivity,
            expansion_add,
            expansion_search,
            rerank,
        )?;
        let vectors = QueryMatrix::extract(vectors)?;
        if vectors.single {
            return Err(PyValueError::new_err("vectors must have shape [N, D]"));
        }
        let locations = points_from(locations, "locations")?;
        let count = vectors.rows;
        let check_rows = |what: &str, rows: usize| {
            if rows == count {
                Ok(())
            } else {
                Err(PyValueError::new_err(format!(
                    "{what} has {rows} rows but vectors has {count}"
                )))
            }
        };
        check_rows("locations", locations.len())?;
        let metadata = if keys.is_none() && texts.is_none() {
            EntryMetadata::from_locations(&locations)
        } else {
            let keys: Vec<u64> = match &keys {
                Some(keys) => keys.as_array().iter().copied().collect(),
                None => (0..count as u64).collect(),
            };
            check_rows("keys", keys.len())?;
            let texts = texts.unwrap_or_default();
            for (column, values) in &texts {
                check_rows(&format!("texts[{column:?}]"), values.len())?;
            }
            let mut builder = EntryMetadataBuilder::new(texts.keys().cloned().collect());
            for (row, (&key, &location)) in keys.iter().zip(&locations).enumerate() {
                let fields: Vec<&str> = texts.values().map(|column| column[row].as_str()).collect();
                builder.push(key, location, &fields).or_raise()?;
            }
            builder.build().or_raise()?
        };
        let values = vectors.as_slice().to_vec();
        let dimension = vectors.dimension;
        let vectors = Embeddings::new(dimension, values).or_raise()?;
        let database = py
            .detach(|| index::Database::build(vectors, metadata, &config, &|_| {}))
            .or_raise()?;
        Ok(PyDatabase::wrap(database))
    }

    /// Streams a flat faiss index (`IndexFlatIP`/`IndexFlatL2` written by `faiss.write_index`,
    /// such as G3's published 38 GB index) and its metadata CSV (one row per vector; columns
    /// `lat_column`, `lon_column`, optional `key_column`, every other column kept as text)
    /// into a database at `output`, in bounded memory for the exact store, and opens it.
    /// `output` appears only once complete; a Ctrl-C meanwhile is raised when the import
    /// returns.
    #[staticmethod]
    #[pyo3(signature = (index, metadata_csv, output, kind = "exact", metric = "inner-product", precision = "f32", lat_column = "LAT", lon_column = "LON", key_column = None, connectivity = None, expansion_add = None))]
    #[allow(clippy::too_many_arguments)]
    fn import_faiss(
        py: Python<'_>,
        index: PathBuf,
        metadata_csv: PathBuf,
        output: PathBuf,
        kind: &str,
        metric: &str,
        precision: &str,
        lat_column: &str,
        lon_column: &str,
        key_column: Option<String>,
        connectivity: Option<usize>,
        expansion_add: Option<usize>,
    ) -> PyResult<Self> {
        let config = store_config(
            kind,
            metric,
            precision,
            connectivity,
            expansion_add,
            None,
            None,
        )?;
        let options = MetadataCsvOptions {
            lat_column: lat_column.to_owned(),
            lon_column: lon_column.to_owned(),
            key_column,
            text_columns: None,
        };
        let database = py
            .detach(|| {
                index::import_faiss_index(
                    &index,
                    MetadataSource {
                        path: &metadata_csv,
                        options: &options,
                    },
                    &config,
                    &output,
                    &(),
                )?;
                index::Database::open(&output)
            })
            .or_raise()?;
        Ok(PyDatabase::wrap(database))
    }

    /// Writes the database to the directory `path`, atomically (a new directory renamed
    /// into place once complete).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let database = self.read()?;
        py.detach(|| database.save(&path)).or_raise()
    }

    /// For each query row of `queries` ([N, D] or a single [D] float32 vector), its `k` most
    /// similar entries, best first. Long searches run off the calling thread with the GIL
    /// released and stop at Ctrl-C. Do not write to `queries` from another thread meanwhile.
    #[pyo3(signature = (queries, k = 20))]
    fn search(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: usize,
    ) -> PyResult<Py<Neighbors>> {
        self.search_direction(py, queries, k, SearchDirection::Similar)
    }

    /// For each query, its `k` least similar entries, least similar first (G3's negative
    /// references; the reference negates the query for faiss).
    #[pyo3(signature = (queries, k = 20))]
    fn search_dissimilar(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: usize,
    ) -> PyResult<Py<Neighbors>> {
        self.search_direction(py, queries, k, SearchDirection::Dissimilar)
    }

    /// Both searches of a G3 query at once, `(similar, dissimilar)`: one pass over an exact
    /// store's vectors serves both.
    fn search_both(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k_similar: usize,
        k_dissimilar: usize,
    ) -> PyResult<(Py<Neighbors>, Py<Neighbors>)> {
        let queries = QueryMatrix::extract(queries)?;
        let database = self.read()?;
        let found = search_chunked(py, &database, &queries, |slice| {
            let both = database
                .index()
                .search_rows_both(slice, k_similar, k_dissimilar)?;
            Ok(both.similar.into_iter().zip(both.dissimilar).collect())
        })?;
        let (similar, dissimilar): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        Ok((
            Neighbors::from_matches(py, &database, similar, k_similar, queries.single)?,
            Neighbors::from_matches(py, &database, dissimilar, k_dissimilar, queries.single)?,
        ))
    }

    /// Changes how many candidates an HNSW search keeps (usearch's `expansion_search`, faiss's
    /// `efSearch`): higher is slower and finds more true neighbours. No effect on the exact
    /// store.
    fn set_expansion_search(&self, expansion: usize) -> PyResult<()> {
        let mut database = self.write()?;
        database.set_expansion_search(expansion);
        Ok(())
    }

    /// Changes how many HNSW candidates are re-scored exactly in f32 (0: none); an error
    /// for a graph built without `rerank`.
    fn set_rerank(&self, candidates: usize) -> PyResult<()> {
        let mut database = self.write()?;
        database.set_rerank(candidates).or_raise()
    }

    /// Number of entries.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.read()?.metadata().len())
    }

    /// Width of the vectors.
    #[getter]
    fn dimension(&self) -> PyResult<usize> {
        Ok(self.read()?.index().dimension())
    }

    /// The store settings as a dict (`kind`, `metric`, `precision`, `hnsw`).
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let config = *self.read()?.config();
        to_python_data(py, &config)
    }

    /// Every entry's key, uint64 [N] (a copy).
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self
            .read()?
            .metadata()
            .keys()
            .to_vec()
            .into_pyarray(py)
            .into_any())
    }

    /// Every entry's latitude and longitude in degrees, float64 [N, 2] (a copy).
    #[getter]
    fn locations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let database = self.read()?;
        let metadata = database.metadata();
        let points: Vec<GeoPoint> = (0..metadata.len())
            .map(|row| metadata.location(row))
            .collect();
        let values = points_to_array(&points);
        let array = Array2::from_shape_vec((points.len(), 2), values)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        Ok(array.into_pyarray(py))
    }

    /// The text columns' names.
    #[getter]
    fn text_columns(&self) -> PyResult<Vec<String>> {
        Ok(self.read()?.metadata().text_columns().to_vec())
    }

    /// The `column` text of each row in `rows` (None where the column is unknown).
    fn texts(&self, rows: Vec<usize>, column: &str) -> PyResult<Vec<Option<String>>> {
        let database = self.read()?;
        let metadata = database.metadata();
        rows.into_iter()
            .map(|row| {
                if row >= metadata.len() {
                    return Err(PyValueError::new_err(format!(
                        "row {row} is out of range: the database has {} entries",
                        metadata.len()
                    )));
                }
                Ok(metadata.text(row, column).map(str::to_owned))
            })
            .collect()
    }

    fn __repr__(&self) -> PyResult<String> {
        let database = self.read()?;
        let config = database.config();
        Ok(format!(
            "Database({} entries, {}-d, {:?} {:?} {:?})",
            database.metadata().len(),
            database.index().dimension(),
            config.kind,
            config.metric,
            config.precision
        ))
    }
}

/// The Rust API's own search rate, for `benches/compare/python_search.py`: `queries` searched
/// `batch` rows per call through `VectorIndex::search_rows` with keys and locations attached
/// (what `Database.search` does, minus Python), in a Rust loop; returns the seconds taken.
/// The comparison runs it beside `Database.search` in one process, on one build.
#[pyfunction]
#[pyo3(signature = (database, queries, k, batch, dissimilar = false))]
pub fn rust_search_seconds(
    py: Python<'_>,
    database: &PyDatabase,
    queries: &Bound<'_, PyAny>,
    k: usize,
    batch: usize,
    dissimilar: bool,
) -> PyResult<f64> {
    let queries = QueryMatrix::extract(queries)?;
    let database = database.read()?;
    let direction = if dissimilar {
        SearchDirection::Dissimilar
    } else {
        SearchDirection::Similar
    };
    let slice = queries.as_slice();
    let dimension = queries.dimension;
    let seconds = py.detach(|| {
        let started = std::time::Instant::now();
        for rows in slice.chunks(batch.max(1) * dimension) {
            let found = database.index().search_rows(rows, k, direction)?;
            let metadata = database.metadata();
            let attached: Vec<(u64, GeoPoint)> = found
                .iter()
                .flatten()
                .map(|found| (metadata.key(found.row), metadata.location(found.row)))
                .collect();
            std::hint::black_box(attached);
        }
        Ok::<_, index::IndexError>(started.elapsed().as_secs_f64())
    });
    seconds.or_raise()
}

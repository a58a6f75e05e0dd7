//! [`Database`]: a store plus per-entry metadata, saved as a checksummed directory.
//!
//! On disk a database is a directory:
//!
//! | file | content |
//! |---|---|
//! | `manifest.json` | format name and version, store settings, count, dimension, text column names, and the size and blake3 digest of every other file |
//! | `vectors.f32` | exact store: the vectors, row-major little-endian f32 (also an HNSW graph's re-ranking copy) |
//! | `vectors.f16` | exact store in half precision: the vectors, row-major little-endian f16 |
//! | `vectors.usearch` | HNSW store: usearch's own serialisation |
//! | `keys.u64` | one little-endian u64 key per row |
//! | `locations.f64` | `[lat_deg, lon_deg]` per row, little-endian f64 |
//! | `text_offsets.u64`, `text.utf8` | the text fields: row-major cell boundaries into one UTF-8 blob |
//! | `verified.json` | the verification stamp: each file's size, times and inode when its digest last matched |
//!
//! Saving (or a [`DatabaseWriter`](crate::DatabaseWriter)) writes a fresh directory next to
//! the target, hashing each file as it is written, and renames it into place, so a crash
//! never leaves a half-written database. Opening reads the manifest, checks every file's size
//! and the stores' headers, and memory-maps the files; a file the stamp does not vouch for
//! (changed, copied or replaced since it was verified) is hashed against the manifest before
//! anything reads it: usearch trusts its files completely (a flipped byte in a graph can
//! crash a search), so nothing reaches it unverified. [`Database::verify`] hashes everything
//! on demand.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use g3_core::{Embeddings, RetrievedNeighbor, SearchDirection, TwoWayNeighbors, VectorStore};
use serde::{Deserialize, Serialize};

use crate::column::Column;
use crate::config::{StoreConfig, StoreKind};
use crate::error::{IndexError, Result};
use crate::exact::ExactStore;
use crate::hnsw::HnswStore;
use crate::metadata::EntryMetadata;
use crate::staging::StagedDatabase;
use crate::store::{RowMatch, VectorIndex};
use crate::verification::Stamp;

/// The value of `format` in every manifest.
const FORMAT_NAME: &str = "g3-index";
/// The manifest and file layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const EXACT_VECTORS: &str = "vectors.f32";
const EXACT_VECTORS_F16: &str = "vectors.f16";
pub(crate) const HNSW_VECTORS: &str = "vectors.usearch";
pub(crate) const KEYS: &str = "keys.u64";
pub(crate) const LOCATIONS: &str = "locations.f64";
pub(crate) const TEXT_OFFSETS: &str = "text_offsets.u64";
pub(crate) const TEXT: &str = "text.utf8";

/// The exact store's vectors file for its precision.
pub(crate) fn exact_file(precision: crate::VectorPrecision) -> &'static str {
    match precision {
        crate::VectorPrecision::F16 => EXACT_VECTORS_F16,
        _ => EXACT_VECTORS,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    format: String,
    version: u32,
    count: usize,
    dimension: usize,
    store: StoreConfig,
    text_columns: Vec<String>,
    pub(crate) files: BTreeMap<String, FileRecord>,
}

impl Manifest {
    /// The manifest of a database of `count` rows of `dimension` (its files are recorded
    /// as they are written).
    pub(crate) fn new(
        count: usize,
        dimension: usize,
        store: StoreConfig,
        text_columns: Vec<String>,
    ) -> Self {
        Manifest {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            count,
            dimension,
            store,
            text_columns,
            files: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRecord {
    pub(crate) bytes: u64,
    pub(crate) blake3: String,
}

/// How much an open checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Hash the files the verification stamp does not vouch for.
    Unstamped,
    /// Hash every file and rewrite the stamp.
    All,
}

/// What [`Database::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// Files hashed.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
}

enum Store {
    Exact(ExactStore),
    Hnsw(HnswStore),
}

impl Store {
    fn index(&self) -> &dyn VectorIndex {
        match self {
            Store::Exact(store) => store,
            Store::Hnsw(store) => store,
        }
    }
}

/// Geotagged image embeddings: a vector store plus, row for row, each entry's key, location
/// and text fields. Implements [`g3_core::VectorStore`], so a pipeline retrieves neighbours
/// with their keys and locations in one call.
pub struct Database {
    store: Store,
    config: StoreConfig,
    metadata: EntryMetadata,
}

impl Database {
    /// Builds a database from `vectors` (one row per metadata entry) with the given settings;
    /// `on_added(n)` is called as vectors go in (for progress bars).
    ///
    /// Errors: a vector/metadata count mismatch, a NaN or infinite component, a zero vector
    /// under the cosine metric, or a component outside [-1, 1] for i8 storage.
    pub fn build(
        vectors: Embeddings,
        metadata: EntryMetadata,
        config: &StoreConfig,
        on_added: &(dyn Fn(usize) + Sync),
    ) -> Result<Self> {
        if vectors.len() != metadata.len() {
            return Err(IndexError::CountMismatch {
                vectors: vectors.len(),
                metadata: metadata.len(),
            });
        }
        let dimension = vectors.dimension();
        let store = match config.kind {
            StoreKind::Exact => {
                let count = vectors.len();
                let store = match config.precision {
                    crate::VectorPrecision::F32 => {
                        ExactStore::from_vectors(dimension, config.metric, vectors.into_values())?
                    }
                    precision => {
                        let mut store =
                            ExactStore::with_precision(dimension, config.metric, precision)?;
                        store.add(vectors.as_slice())?;
                        store
                    }
                };
                on_added(count);
                Store::Exact(store)
            }
            StoreKind::Hnsw => {
                let mut store =
                    HnswStore::new(dimension, config.metric, config.precision, config.hnsw)?;
                store.add(vectors.as_slice(), on_added)?;
                Store::Hnsw(store)
            }
        };
        let mut config = *config;
        if let Store::Hnsw(store) = &store {
            // Adding settles what the config leaves open (the i8 scale).
            config.hnsw = store.config();
        }
        Ok(Database {
            store,
            config,
            metadata,
        })
    }

    /// A database from an HNSW store the caller filled (with [`HnswStore::add`] in chunks,
    /// for collections that do not fit in memory as one `f32` matrix) and its metadata, row
    /// for row.
    pub fn from_hnsw_store(store: HnswStore, metadata: EntryMetadata) -> Result<Self> {
        let config = StoreConfig {
            kind: StoreKind::Hnsw,
            metric: store.metric(),
            precision: store.precision(),
            hnsw: store.config(),
        };
        Database::from_store(Store::Hnsw(store), config, metadata)
    }

    /// A database from an exact store the caller filled (with [`ExactStore::add`] in chunks)
    /// and its metadata, row for row.
    pub fn from_exact_store(store: ExactStore, metadata: EntryMetadata) -> Result<Self> {
        let config = StoreConfig {
            kind: StoreKind::Exact,
            metric: store.metric(),
            precision: store.precision(),
            ..StoreConfig::default()
        };
        Database::from_store(Store::Exact(store), config, metadata)
    }

    /// A filled store and its metadata, which must agree row for row.
    fn from_store(store: Store, config: StoreConfig, metadata: EntryMetadata) -> Result<Self> {
        let vectors = store.index().len();
        if vectors != metadata.len() {
            return Err(IndexError::CountMismatch {
                vectors,
                metadata: metadata.len(),
            });
        }
        Ok(Database {
            store,
            config,
            metadata,
        })
    }

    /// The store settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The per-entry metadata.
    pub fn metadata(&self) -> &EntryMetadata {
        &self.metadata
    }

    /// The vector store underneath, addressed by row.
    pub fn index(&self) -> &dyn VectorIndex {
        self.store.index()
    }

    /// Changes the HNSW search-time candidate list size (no effect on the exact store).
    pub fn set_expansion_search(&mut self, expansion: usize) {
        if let Store::Hnsw(store) = &mut self.store {
            store.set_expansion_search(expansion);
            self.config.hnsw = store.config();
        }
    }

    /// Changes how many HNSW candidates are re-ranked by their exact f32 score (0: none). An
    /// error for an HNSW graph built without `rerank` (it keeps no f32 copy); no effect on
    /// the exact store, whose scores are exact.
    pub fn set_rerank(&mut self, candidates: usize) -> Result<()> {
        if let Store::Hnsw(store) = &mut self.store {
            store.set_rerank(candidates)?;
            self.config.hnsw = store.config();
        }
        Ok(())
    }

    /// Changes the HNSW candidate list size of dissimilar searches (no effect on the exact
    /// store).
    pub fn set_expansion_dissimilar(&mut self, expansion: usize) {
        if let Store::Hnsw(store) = &mut self.store {
            store.set_expansion_dissimilar(expansion);
            self.config.hnsw = store.config();
        }
    }

    /// Writes the database to the directory `path`, atomically: everything goes to a new
    /// directory beside it, which replaces `path` only once complete. An existing `path`
    /// must be a database or an empty directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut staged = StagedDatabase::create(path)?;
        let columns = self.metadata.columns();
        staged.write(KEYS, columns.keys)?;
        staged.write(LOCATIONS, columns.locations)?;
        staged.write(TEXT_OFFSETS, columns.text_offsets)?;
        staged.write(TEXT, columns.text)?;
        match &self.store {
            Store::Exact(store) => {
                staged.write(exact_file(store.precision()), store.vector_bytes())?
            }
            Store::Hnsw(store) => {
                // A re-ranking graph's f32 copy sits beside it, in the exact store's format.
                if let Some(bytes) = store.exact_vector_bytes() {
                    staged.write(EXACT_VECTORS, bytes)?;
                }
                store.save(&staged.path(HNSW_VECTORS))?;
                staged.add_written(HNSW_VECTORS)?;
            }
        }
        staged.commit(Manifest::new(
            self.metadata.len(),
            self.index().dimension(),
            self.config,
            self.metadata.text_columns().to_vec(),
        ))
    }

    /// Opens a database saved by [`save`](Self::save) or a [`DatabaseWriter`]. The files are
    /// memory-mapped, not read: opening checks the manifest, every file's size, the stores'
    /// headers and the verification stamp (a `stat` per file, see [`verify`](Self::verify)),
    /// and hashes only files changed since they were last verified. A truncated, corrupted
    /// or replaced file, a manifest of another format version, or files that disagree with
    /// the manifest are errors naming the file.
    ///
    /// [`DatabaseWriter`]: crate::DatabaseWriter
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Database::open_with(path, Checks::Unstamped)?.0)
    }

    /// Hashes every file of the database at `path` against its manifest, checks that the
    /// columns agree, and records the verified state in its stamp (`verified.json`), so
    /// that later opens check sizes and file-system state instead of every byte. Writing a
    /// database verifies it already; this is for databases copied or touched since.
    pub fn verify(path: &Path) -> Result<Verification> {
        let (_, verification) = Database::open_with(path, Checks::All)?;
        Ok(verification)
    }

    fn open_with(path: &Path, checks: Checks) -> Result<(Self, Verification)> {
        let manifest_path = path.join(MANIFEST);
        let manifest_text = fs::read(&manifest_path).map_err(IndexError::io(&manifest_path))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_text).map_err(|error| {
            IndexError::corrupt(&manifest_path, format!("not a g3-index manifest: {error}"))
        })?;
        if manifest.format != FORMAT_NAME {
            return Err(IndexError::corrupt(
                &manifest_path,
                format!("format {:?} is not {FORMAT_NAME:?}", manifest.format),
            ));
        }
        if manifest.version != FORMAT_VERSION {
            return Err(IndexError::UnsupportedVersion {
                path: manifest_path,
                found: manifest.version,
                supported: FORMAT_VERSION,
            });
        }
        if manifest.dimension == 0 {
            return Err(IndexError::corrupt(&manifest_path, "dimension 0"));
        }
        let stamp = match checks {
            Checks::Unstamped => Stamp::read(path, &manifest_text),
            Checks::All => None,
        };
        let hashed = std::cell::Cell::new(Verification { files: 0, bytes: 0 });
        // The file's path, and its digest to check (`None`: the stamp vouches for it).
        let file = |name: &str| -> Result<(PathBuf, Option<String>)> {
            let record = manifest.files.get(name).ok_or_else(|| {
                IndexError::corrupt(&manifest_path, format!("lists no file {name}"))
            })?;
            let file_path = path.join(name);
            let bytes = fs::metadata(&file_path)
                .map_err(IndexError::io(&file_path))?
                .len();
            if bytes != record.bytes {
                return Err(IndexError::corrupt(
                    &file_path,
                    format!(
                        "{bytes} bytes, the manifest says {} (truncated or replaced?)",
                        record.bytes
                    ),
                ));
            }
            if stamp
                .as_ref()
                .is_some_and(|stamp| stamp.vouches_for(path, name))
            {
                return Ok((file_path, None));
            }
            let so_far = hashed.get();
            hashed.set(Verification {
                files: so_far.files + 1,
                bytes: so_far.bytes + bytes,
            });
            Ok((file_path, Some(record.blake3.clone())))
        };
        let count = manifest.count;
        let dimension = manifest.dimension;
        let config = manifest.store;
        let store = match config.kind {
            StoreKind::Exact => {
                let (vectors, digest) = file(exact_file(config.precision))?;
                Store::Exact(ExactStore::open_mapped(
                    &vectors,
                    digest.as_deref(),
                    dimension,
                    config.metric,
                    config.precision,
                    count,
                )?)
            }
            StoreKind::Hnsw => {
                let (vectors, digest) = file(HNSW_VECTORS)?;
                let mut store = HnswStore::open_mapped(
                    &vectors,
                    digest.as_deref(),
                    dimension,
                    config.metric,
                    config.precision,
                    config.hnsw,
                    count,
                )?;
                // Attached whenever saved, so that re-ranking can be switched back on.
                if config.hnsw.rerank > 0 || manifest.files.contains_key(EXACT_VECTORS) {
                    let (exact, digest) = file(EXACT_VECTORS)?;
                    store.attach_exact_vectors(
                        Column::map_file(&exact, digest.as_deref())?,
                        &exact,
                    )?;
                }
                Store::Hnsw(store)
            }
        };
        let keys = file(KEYS)?;
        let locations = file(LOCATIONS)?;
        let text_offsets = file(TEXT_OFFSETS)?;
        let text = file(TEXT)?;
        // The columns' contents were checked when their digests were; a column hashed now
        // is checked again.
        let check_contents = [&keys, &locations, &text_offsets, &text]
            .iter()
            .any(|(_, digest)| digest.is_some());
        let metadata = EntryMetadata::from_mapped(
            count,
            manifest.text_columns.clone(),
            (Column::map_file(&keys.0, keys.1.as_deref())?, &keys.0),
            (
                Column::map_file(&locations.0, locations.1.as_deref())?,
                &locations.0,
            ),
            (
                Column::map_file(&text_offsets.0, text_offsets.1.as_deref())?,
                &text_offsets.0,
            ),
            (Column::map_file(&text.0, text.1.as_deref())?, &text.0),
            check_contents,
        )?;
        let verification = hashed.get();
        if verification.files > 0 {
            // Everything is verified now: later opens need not hash it again.
            let stamped = Stamp::of_files(
                path,
                &manifest_text,
                manifest.files.keys().map(String::as_str),
            )
            .and_then(|stamp| stamp.write(path));
            if let (Err(error), Checks::All) = (stamped, checks) {
                return Err(IndexError::Io {
                    path: path.join(crate::verification::STAMP),
                    source: error,
                });
            }
            // An ordinary open of a read-only database goes on without the stamp: the next
            // open hashes again, nothing is trusted that was not checked.
        }
        Ok((
            Database {
                store,
                config,
                metadata,
            },
            verification,
        ))
    }

    /// [`VectorIndex::search_rows`] with keys and locations attached.
    pub fn search_neighbors(
        &self,
        queries: &Embeddings,
        k: usize,
        direction: SearchDirection,
    ) -> Result<Vec<Vec<RetrievedNeighbor>>> {
        self.check_query_dimension(queries)?;
        let found = self.index().search_rows(queries.as_slice(), k, direction)?;
        Ok(self.attach_metadata(found))
    }

    /// [`VectorIndex::search_rows_both`] with keys and locations attached: both directions
    /// from one pass over an exact store's vectors.
    pub fn search_neighbors_both(
        &self,
        queries: &Embeddings,
        k_similar: usize,
        k_dissimilar: usize,
    ) -> Result<TwoWayNeighbors> {
        self.check_query_dimension(queries)?;
        let found = self
            .index()
            .search_rows_both(queries.as_slice(), k_similar, k_dissimilar)?;
        Ok(TwoWayNeighbors {
            similar: self.attach_metadata(found.similar),
            dissimilar: self.attach_metadata(found.dissimilar),
        })
    }

    fn check_query_dimension(&self, queries: &Embeddings) -> Result<()> {
        let expected = self.index().dimension();
        if queries.dimension() != expected {
            return Err(IndexError::DimensionMismatch {
                what: "query",
                expected,
                found: queries.dimension(),
            });
        }
        Ok(())
    }

    /// Rows found by the index as neighbours: ranks, keys and locations.
    fn attach_metadata(&self, found: Vec<Vec<RowMatch>>) -> Vec<Vec<RetrievedNeighbor>> {
        found
            .into_iter()
            .map(|matches| {
                matches
                    .into_iter()
                    .enumerate()
                    .map(|(rank, found)| RetrievedNeighbor {
                        key: self.metadata.key(found.row),
                        rank,
                        similarity: found.similarity,
                        location: self.metadata.location(found.row),
                    })
                    .collect()
            })
            .collect()
    }
}

impl VectorStore for Database {
    fn dimension(&self) -> usize {
        self.index().dimension()
    }

    fn len(&self) -> usize {
        self.metadata.len()
    }

    fn search(
        &self,
        queries: &Embeddings,
        k: usize,
        direction: SearchDirection,
    ) -> g3_core::Result<Vec<Vec<RetrievedNeighbor>>> {
        Ok(self.search_neighbors(queries, k, direction)?)
    }

    fn search_both(
        &self,
        queries: &Embeddings,
        k_similar: usize,
        k_dissimilar: usize,
    ) -> g3_core::Result<TwoWayNeighbors> {
        Ok(self.search_neighbors_both(queries, k_similar, k_dissimilar)?)
    }
}

/// A database directory (it has a manifest) or an empty directory may be replaced.
pub(crate) fn is_replaceable(path: &Path) -> bool {
    path.join(MANIFEST).is_file()
        || fs::read_dir(path)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false)
}

/// Moves `staged` to `target`; an existing `target` is moved aside first and deleted only
/// after the new directory is in place.
pub(crate) fn replace_directory(staged: &Path, target: &Path) -> Result<()> {
    if !target.exists() {
        return fs::rename(staged, target).map_err(IndexError::io(target));
    }
    let aside = staged.with_extension("old");
    fs::rename(target, &aside).map_err(IndexError::io(target))?;
    if let Err(error) = fs::rename(staged, target) {
        // Put the previous database back rather than leave nothing at `target`.
        let _ = fs::rename(&aside, target);
        return Err(IndexError::Io {
            path: target.to_path_buf(),
            source: error,
        });
    }
    fs::remove_dir_all(&aside).map_err(IndexError::io(&aside))
}

#[cfg(test)]
mod tests {
    use g3_core::GeoPoint;

    use super::*;
    use crate::config::Metric;

    #[test]
    fn a_stamped_database_opens_without_hashing_and_a_touched_file_is_hashed_once() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("db");
        let locations = [
            GeoPoint::new(1.0, 2.0).unwrap(),
            GeoPoint::new(3.0, 4.0).unwrap(),
        ];
        Database::build(
            Embeddings::new(2, vec![1.0, 0.0, 0.0, 1.0]).unwrap(),
            EntryMetadata::from_locations(&locations),
            &StoreConfig::exact(Metric::InnerProduct),
            &|_| {},
        )
        .unwrap()
        .save(&path)
        .unwrap();
        let hashed = |path: &Path| Database::open_with(path, Checks::Unstamped).unwrap().1;
        assert_eq!(hashed(&path).files, 0, "writing stamped every file");

        // Rewritten with the same bytes: hashed on the next open, stamped again after.
        let keys = path.join(KEYS);
        let bytes = fs::read(&keys).unwrap();
        fs::remove_file(&keys).unwrap();
        fs::write(&keys, &bytes).unwrap();
        assert_eq!(
            hashed(&path),
            Verification {
                files: 1,
                bytes: 16
            }
        );
        assert_eq!(hashed(&path).files, 0);
        assert_eq!(Database::verify(&path).unwrap().files, 5);
    }
}

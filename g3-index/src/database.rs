//! [`Database`]: a store plus per-entry metadata, saved as a checksummed directory.
//!
//! On disk a database is a directory:
//!
//! | file | content |
//! |---|---|
//! | `manifest.json` | format name and version, store settings, count, dimension, text column names, and the size and blake3 digest of every other file |
//! | `vectors.f32` | exact store: the vectors, row-major little-endian f32 |
//! | `vectors.usearch` | HNSW store: usearch's own serialisation |
//! | `keys.u64` | one little-endian u64 key per row |
//! | `locations.f64` | `[lat_deg, lon_deg]` per row, little-endian f64 |
//! | `text_offsets.u64`, `text.utf8` | the text fields: row-major cell boundaries into one UTF-8 blob |
//!
//! Saving writes a fresh directory next to the target and renames it into place, so a crash
//! never leaves a half-written database. Opening reads the manifest, then memory-maps each
//! file and verifies its digest before anything else reads it: usearch trusts its files
//! completely (a flipped byte in a graph can crash a search), so nothing reaches it unverified.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use g3_core::atomic::sync_directory;
use g3_core::{Embeddings, RetrievedNeighbor, SearchDirection, VectorStore};
use serde::{Deserialize, Serialize};

use crate::column::{Column, digest_bytes, digest_file};
use crate::config::{StoreConfig, StoreKind};
use crate::error::{IndexError, Result};
use crate::exact::ExactStore;
use crate::hnsw::HnswStore;
use crate::metadata::EntryMetadata;
use crate::store::VectorIndex;

/// The value of `format` in every manifest.
const FORMAT_NAME: &str = "g3-index";
/// The manifest and file layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const EXACT_VECTORS: &str = "vectors.f32";
const EXACT_VECTORS_F16: &str = "vectors.f16";
const HNSW_VECTORS: &str = "vectors.usearch";
const KEYS: &str = "keys.u64";
const LOCATIONS: &str = "locations.f64";
const TEXT_OFFSETS: &str = "text_offsets.u64";
const TEXT: &str = "text.utf8";

/// The exact store's vectors file for its precision.
fn exact_file(precision: crate::VectorPrecision) -> &'static str {
    match precision {
        crate::VectorPrecision::F16 => EXACT_VECTORS_F16,
        _ => EXACT_VECTORS,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    version: u32,
    count: usize,
    dimension: usize,
    store: StoreConfig,
    text_columns: Vec<String>,
    files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecord {
    bytes: u64,
    blake3: String,
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
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if path.exists() && !is_replaceable(path) {
            return Err(IndexError::InvalidConfig(format!(
                "{} exists and is not a g3 database or an empty directory; refusing to replace it",
                path.display()
            )));
        }
        let staging = tempfile::Builder::new()
            .prefix(".g3-index-")
            .tempdir_in(&parent)
            .map_err(IndexError::io(&parent))?;
        let mut files = BTreeMap::new();
        let columns = self.metadata.columns();
        let mut write = |name: &str, bytes: &[u8]| -> Result<()> {
            let file_path = staging.path().join(name);
            write_synced(&file_path, bytes)?;
            files.insert(name.to_string(), record_of(bytes));
            Ok(())
        };
        write(KEYS, columns.keys)?;
        write(LOCATIONS, columns.locations)?;
        write(TEXT_OFFSETS, columns.text_offsets)?;
        write(TEXT, columns.text)?;
        match &self.store {
            Store::Exact(store) => write(exact_file(store.precision()), store.vector_bytes())?,
            Store::Hnsw(store) => {
                // A re-ranking graph's f32 copy sits beside it, in the exact store's format.
                if let Some(bytes) = store.exact_vector_bytes() {
                    write(EXACT_VECTORS, bytes)?;
                }
                let file_path = staging.path().join(HNSW_VECTORS);
                store.save(&file_path)?;
                fs::File::open(&file_path)
                    .and_then(|file| file.sync_all())
                    .map_err(IndexError::io(&file_path))?;
                let (bytes, blake3) = digest_file(&file_path)?;
                files.insert(HNSW_VECTORS.to_string(), FileRecord { bytes, blake3 });
            }
        }
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            count: self.metadata.len(),
            dimension: self.index().dimension(),
            store: self.config,
            text_columns: self.metadata.text_columns().to_vec(),
            files,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest always serialises");
        write_synced(&staging.path().join(MANIFEST), &text)?;

        // The files' directory entries, then the rename, are made durable as atomic files
        // are (`g3_core::atomic`).
        sync_directory(staging.path()).map_err(IndexError::io(staging.path()))?;
        let staged = staging.keep();
        let result = replace_directory(&staged, path)
            .and_then(|()| sync_directory(&parent).map_err(IndexError::io(&parent)));
        if result.is_err() {
            let _ = fs::remove_dir_all(&staged);
        }
        result
    }

    /// Opens a database saved by [`save`](Self::save). The files are memory-mapped (so
    /// opening costs one checksum pass, not a copy) and each is verified against the
    /// manifest before use. A truncated or corrupted file, a manifest of another format
    /// version, or files that disagree with the manifest are errors naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let manifest_path = path.join(MANIFEST);
        let text = fs::read(&manifest_path).map_err(IndexError::io(&manifest_path))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|error| {
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
        let file = |name: &str| -> Result<(PathBuf, String)> {
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
            Ok((file_path, record.blake3.clone()))
        };
        let count = manifest.count;
        let dimension = manifest.dimension;
        let config = manifest.store;
        let store = match config.kind {
            StoreKind::Exact => {
                let (vectors, digest) = file(exact_file(config.precision))?;
                Store::Exact(ExactStore::open_mapped(
                    &vectors,
                    &digest,
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
                    &digest,
                    dimension,
                    config.metric,
                    config.precision,
                    config.hnsw,
                    count,
                )?;
                // Attached whenever saved, so that re-ranking can be switched back on.
                if config.hnsw.rerank > 0 || manifest.files.contains_key(EXACT_VECTORS) {
                    let (exact, digest) = file(EXACT_VECTORS)?;
                    store.attach_exact_vectors(Column::map_file(&exact, &digest)?, &exact)?;
                }
                Store::Hnsw(store)
            }
        };
        let keys = file(KEYS)?;
        let locations = file(LOCATIONS)?;
        let text_offsets = file(TEXT_OFFSETS)?;
        let text = file(TEXT)?;
        let metadata = EntryMetadata::from_mapped(
            count,
            manifest.text_columns,
            (Column::map_file(&keys.0, &keys.1)?, &keys.0),
            (Column::map_file(&locations.0, &locations.1)?, &locations.0),
            (
                Column::map_file(&text_offsets.0, &text_offsets.1)?,
                &text_offsets.0,
            ),
            (Column::map_file(&text.0, &text.1)?, &text.0),
        )?;
        Ok(Database {
            store,
            config,
            metadata,
        })
    }

    /// [`VectorIndex::search_rows`] with keys and locations attached.
    pub fn search_neighbors(
        &self,
        queries: &Embeddings,
        k: usize,
        direction: SearchDirection,
    ) -> Result<Vec<Vec<RetrievedNeighbor>>> {
        let index = self.index();
        if queries.dimension() != index.dimension() {
            return Err(IndexError::DimensionMismatch {
                what: "query",
                expected: index.dimension(),
                found: queries.dimension(),
            });
        }
        let found = index.search_rows(queries.as_slice(), k, direction)?;
        Ok(found
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
            .collect())
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
}

fn record_of(bytes: &[u8]) -> FileRecord {
    FileRecord {
        bytes: bytes.len() as u64,
        blake3: digest_bytes(bytes),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path).map_err(IndexError::io(path))?;
    file.write_all(bytes).map_err(IndexError::io(path))?;
    file.sync_all().map_err(IndexError::io(path))
}

/// A database directory (it has a manifest) or an empty directory may be replaced.
fn is_replaceable(path: &Path) -> bool {
    path.join(MANIFEST).is_file()
        || fs::read_dir(path)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false)
}

/// Moves `staged` to `target`; an existing `target` is moved aside first and deleted only
/// after the new directory is in place.
fn replace_directory(staged: &Path, target: &Path) -> Result<()> {
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

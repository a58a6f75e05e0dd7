//! [`DatabaseWriter`]: a database written a chunk at a time, for collections that do not
//! fit in memory (G3's published index: 4.12M × 2304 floats, 38 GB).

use std::path::Path;

use g3_core::GeoPoint;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::config::{Metric, StoreConfig, StoreKind, VectorPrecision};
use crate::database::{
    EXACT_VECTORS, HNSW_VECTORS, KEYS, LOCATIONS, Manifest, TEXT, TEXT_OFFSETS, exact_file,
};
use crate::error::{IndexError, Result};
use crate::exact::check_row_limit;
use crate::hnsw::HnswStore;
use crate::metadata::{check_text_count, check_unique_keys};
use crate::staging::{HashedFile, StagedDatabase};
use crate::store::{check_batch, check_f16_range, normalize_rows};

/// Values checked or converted per rayon task.
const PARALLEL_BLOCK: usize = 1 << 16;

/// Writes a [`Database`](crate::Database) directory as vectors and entries arrive, in any
/// interleaving: row `i`'s vector is the `i`-th vector added, its metadata the `i`-th entry.
///
/// An exact store streams its vectors straight to disk (converted to f16 on the way if asked),
/// and the metadata columns stream too, so memory stays at one chunk of the caller's plus
/// 8 bytes per key (checked for duplicates at the end), whatever the size of the collection.
/// An HNSW graph is built in memory (usearch builds it there) and written at the end.
///
/// Every file goes to a staging directory beside `path` and is hashed as it is written;
/// [`finish`](Self::finish) writes the manifest and the verification stamp and renames the
/// directory into place. Dropped without `finish` (an error, Ctrl-C), the staging directory
/// is deleted and `path` is left as it was.
pub struct DatabaseWriter {
    staged: StagedDatabase,
    dimension: usize,
    config: StoreConfig,
    vectors: VectorSink,
    rows: usize,
    text_columns: Vec<String>,
    keys: Vec<u64>,
    locations: HashedFile,
    text_offsets: HashedFile,
    text: HashedFile,
    text_bytes: u64,
}

/// Where vectors go.
enum VectorSink {
    /// Straight to the exact store's file; `normalized` and `half` hold one chunk's
    /// conversion.
    Exact {
        file: Box<HashedFile>,
        normalized: Vec<f32>,
        half: Vec<f16>,
    },
    /// Into the graph in memory.
    Hnsw(Box<HnswStore>),
}

impl DatabaseWriter {
    /// Starts a database at `path` (an existing `path` must be a database or an empty
    /// directory; it is replaced only by [`finish`](Self::finish)) for vectors of width
    /// `dimension` stored as `config` says, with the given text fields per entry.
    pub fn create(
        path: &Path,
        dimension: usize,
        config: &StoreConfig,
        text_columns: Vec<String>,
    ) -> Result<Self> {
        if dimension == 0 {
            return Err(IndexError::InvalidConfig(
                "the dimension must be at least 1".into(),
            ));
        }
        let staged = StagedDatabase::create(path)?;
        let vectors = match config.kind {
            StoreKind::Exact => {
                if config.precision == VectorPrecision::I8 {
                    return Err(IndexError::InvalidConfig(
                        "the exact store keeps f32 or f16 vectors; i8 storage is for HNSW".into(),
                    ));
                }
                VectorSink::Exact {
                    file: Box::new(staged.create_file(exact_file(config.precision))?),
                    normalized: Vec::new(),
                    half: Vec::new(),
                }
            }
            StoreKind::Hnsw => VectorSink::Hnsw(Box::new(HnswStore::new(
                dimension,
                config.metric,
                config.precision,
                config.hnsw,
            )?)),
        };
        let mut text_offsets = staged.create_file(TEXT_OFFSETS)?;
        text_offsets.write(&0u64.to_le_bytes())?;
        Ok(DatabaseWriter {
            locations: staged.create_file(LOCATIONS)?,
            text: staged.create_file(TEXT)?,
            text_offsets,
            staged,
            dimension,
            config: *config,
            vectors,
            rows: 0,
            text_columns,
            keys: Vec::new(),
            text_bytes: 0,
        })
    }

    /// Appends vectors (row-major, rows of the database's dimension). Errors as
    /// [`Database::build`](crate::Database::build)'s: a NaN or infinite component, a zero
    /// vector under the cosine metric, a value f16 or i8 cannot hold; the row in the error
    /// counts from the start of this batch.
    pub fn add_vectors(&mut self, vectors: &[f32]) -> Result<()> {
        let to_f16 =
            self.config.kind == StoreKind::Exact && self.config.precision == VectorPrecision::F16;
        // One parallel pass for the common case; the sequential checks below find and name
        // the first bad value when there is one (and the zero rows cosine refuses).
        let largest = if to_f16 {
            f32::from(f16::MAX)
        } else {
            f32::INFINITY
        };
        let plainly_valid = vectors.len().is_multiple_of(self.dimension)
            && vectors
                .par_chunks(PARALLEL_BLOCK)
                .all(|block| block.iter().all(|v| v.is_finite() && v.abs() <= largest));
        let rows = if plainly_valid && self.config.metric == Metric::InnerProduct {
            vectors.len() / self.dimension
        } else {
            check_batch("vector", vectors, self.dimension, self.config.metric)?
        };
        check_row_limit(self.rows + rows)?;
        match &mut self.vectors {
            VectorSink::Exact {
                file,
                normalized,
                half,
            } => {
                let rows_to_store = if self.config.metric == Metric::Cosine {
                    normalized.clear();
                    normalized.extend_from_slice(vectors);
                    normalize_rows(normalized, self.dimension);
                    normalized.as_slice()
                } else {
                    vectors
                };
                match self.config.precision {
                    VectorPrecision::F16 => {
                        if !plainly_valid || self.config.metric == Metric::Cosine {
                            check_f16_range(rows_to_store, self.dimension)?;
                        }
                        half.clear();
                        half.resize(rows_to_store.len(), f16::ZERO);
                        half.par_chunks_mut(PARALLEL_BLOCK)
                            .zip(rows_to_store.par_chunks(PARALLEL_BLOCK))
                            .for_each(|(half, single)| half.convert_from_f32_slice(single));
                        file.write(bytemuck::cast_slice(half))?;
                    }
                    _ => file.write(bytemuck::cast_slice(rows_to_store))?,
                }
            }
            VectorSink::Hnsw(store) => store.add(vectors, &|_| {})?,
        }
        self.rows += rows;
        Ok(())
    }

    /// Appends one entry's metadata: its key, location and one value per text field.
    pub fn add_entry(&mut self, key: u64, location: GeoPoint, texts: &[&str]) -> Result<()> {
        check_text_count(texts, &self.text_columns)?;
        self.keys.push(key);
        let pair = [location.lat_deg(), location.lon_deg()];
        self.locations.write(bytemuck::cast_slice(&pair))?;
        for text in texts {
            self.text.write(text.as_bytes())?;
            self.text_bytes += text.len() as u64;
            self.text_offsets.write(&self.text_bytes.to_le_bytes())?;
        }
        Ok(())
    }

    /// Vectors added so far.
    pub fn vectors_added(&self) -> usize {
        self.rows
    }

    /// Entries added so far.
    pub fn entries_added(&self) -> usize {
        self.keys.len()
    }

    /// Checks that vectors and entries agree row for row and that no key repeats, writes
    /// the remaining files, the manifest and the stamp, and moves the database into place.
    pub fn finish(self) -> Result<()> {
        let DatabaseWriter {
            mut staged,
            dimension,
            mut config,
            vectors,
            rows,
            text_columns,
            keys,
            locations,
            text_offsets,
            text,
            ..
        } = self;
        if rows != keys.len() {
            return Err(IndexError::CountMismatch {
                vectors: rows,
                metadata: keys.len(),
            });
        }
        check_unique_keys(&keys)?;
        staged.write(KEYS, bytemuck::cast_slice(&keys))?;
        drop(keys);
        staged.add(LOCATIONS, locations.finish()?);
        staged.add(TEXT_OFFSETS, text_offsets.finish()?);
        staged.add(TEXT, text.finish()?);
        match vectors {
            VectorSink::Exact { file, .. } => {
                staged.add(exact_file(config.precision), file.finish()?);
            }
            VectorSink::Hnsw(store) => {
                if let Some(bytes) = store.exact_vector_bytes() {
                    staged.write(EXACT_VECTORS, bytes)?;
                }
                store.save(&staged.path(HNSW_VECTORS))?;
                staged.add_written(HNSW_VECTORS)?;
                // Adding settled what the config left open (the i8 scale).
                config.hnsw = store.config();
            }
        }
        staged.commit(Manifest::new(rows, dimension, config, text_columns))
    }
}

//! Building a database on disk in streaming, whatever the collection's size: from `.npy`
//! embeddings files (the parts of a split run, matched to the metadata by position or by
//! id) and from a faiss flat index (`g3 index build`, `g3 index import-faiss`, `g3 fetch`).
//!
//! The inputs are memory-mapped or read a chunk at a time and everything goes through a
//! [`DatabaseWriter`], so memory stays at a chunk plus a few bytes per key (an HNSW graph
//! excepted, which lives in memory while it is built). The database appears only once
//! complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use g3_core::Progress;
use g3_core::npy::MappedMatrix;

use crate::{
    DatabaseWriter, FaissFlatReader, FaissMetric, IndexError, MetadataCsvOptions,
    MetadataCsvReader, Result, StoreConfig,
};

/// Rows added to a streamed build at a time.
const BUILD_CHUNK_ROWS: usize = 1 << 13;

/// Rows read from the faiss file and added to the store at a time: 8,192 × 2304 floats
/// (75 MB) for G3's index. A reader thread fills the next chunk while the current one is
/// checked, converted and written, so at most three are alive: memory stays near 300 MB
/// whatever the file size, and reading overlaps writing.
const IMPORT_CHUNK_ROWS: usize = 1 << 13;

/// The metadata CSV that describes a database's entries.
#[derive(Debug, Clone)]
pub struct MetadataSource<'a> {
    /// The CSV file.
    pub path: &'a Path,
    /// Its columns.
    pub options: &'a MetadataCsvOptions,
}

/// What a streamed build or import wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSummary {
    /// Vectors written.
    pub vectors: usize,
    /// Their dimension.
    pub dimension: usize,
    /// Seconds spent reading and adding the vectors.
    pub add_seconds: f64,
    /// Seconds in all, writing included.
    pub total_seconds: f64,
    /// Metadata rows left out because no embedding has their id (photos skipped while
    /// embedding), for a build matched by id.
    pub rows_without_embedding: usize,
    /// The first of them, as an example for the user.
    pub first_without_embedding: Option<String>,
}

fn write_error(output: &Path) -> impl FnOnce(IndexError) -> IndexError + '_ {
    move |error| error.context(format!("cannot write the database {}", output.display()))
}

/// Builds a database at `output` from embeddings files (memory-mapped, in order) and the
/// metadata CSV. Without `id_column` the metadata describes the files' rows in order; with
/// it, each file's `rows.csv` (written beside it by the embedding job) names each row's id,
/// matched to the CSV's `id_column`: metadata rows without an embedding are left out and
/// counted, an embedding without a metadata row is an error.
pub fn build_from_embeddings(
    files: &[PathBuf],
    metadata: MetadataSource<'_>,
    id_column: Option<&str>,
    config: &StoreConfig,
    output: &Path,
    progress: &dyn Progress,
) -> Result<BuildSummary> {
    let started = Instant::now();
    let matrices = files
        .iter()
        .map(|file| MappedMatrix::open(file))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let Some(first) = matrices.first() else {
        return Err(IndexError::InvalidConfig(
            "no embeddings files to build from".into(),
        ));
    };
    let dimension = first.columns();
    if let Some(other) = matrices.iter().find(|matrix| matrix.columns() != dimension) {
        return Err(IndexError::BadInput {
            path: other.path().to_owned(),
            line: None,
            message: format!(
                "{} columns, {} has {dimension}",
                other.columns(),
                first.path().display()
            ),
        });
    }
    let total: usize = matrices.iter().map(MappedMatrix::rows).sum();
    let mut csv = MetadataCsvReader::open(metadata.path, metadata.options)?;
    let mut writer = DatabaseWriter::create(output, dimension, config, csv.text_columns().to_vec())
        .map_err(write_error(output))?;
    progress.start("adding vectors", "vectors", Some(total as u64));
    let mut chunk: Vec<f32> = Vec::with_capacity(BUILD_CHUNK_ROWS * dimension);
    let flush = |chunk: &mut Vec<f32>, writer: &mut DatabaseWriter| -> Result<()> {
        writer.add_vectors(chunk)?;
        progress.advance((chunk.len() / dimension) as u64);
        chunk.clear();
        // What was read is in the chunk's copy: the mapped pages need not stay resident.
        for matrix in &matrices {
            matrix.release_pages();
        }
        Ok(())
    };
    let mut rows_without_embedding = 0usize;
    let mut first_without_embedding = None;
    match id_column {
        None => {
            csv.for_each_entry(|key, location, texts| writer.add_entry(key, location, texts))?;
            if writer.entries_added() != total {
                return Err(IndexError::CountMismatch {
                    vectors: total,
                    metadata: writer.entries_added(),
                }
                .context("the embeddings and the metadata must match row for row (or pass --id-column to match them by id)"));
            }
            for matrix in &matrices {
                for row in 0..matrix.rows() {
                    chunk.extend_from_slice(matrix.row(row));
                    if chunk.len() == BUILD_CHUNK_ROWS * dimension {
                        flush(&mut chunk, &mut writer)?;
                    }
                }
            }
        }
        Some(id_column) => {
            let id_field = csv
                .text_columns()
                .iter()
                .position(|column| column == id_column)
                .ok_or_else(|| {
                    IndexError::InvalidConfig(format!(
                        "--id-column {id_column} is not among the text columns kept ({})",
                        csv.text_columns().join(", ")
                    ))
                })?;
            let mut rows_by_id = embedding_ids(&matrices)?;
            csv.for_each_entry(|key, location, texts| {
                match rows_by_id.remove(texts[id_field]) {
                    Some((matrix, row)) => {
                        chunk.extend_from_slice(matrices[matrix].row(row));
                        writer.add_entry(key, location, texts)?;
                        if chunk.len() == BUILD_CHUNK_ROWS * dimension {
                            flush(&mut chunk, &mut writer)?;
                        }
                    }
                    None => {
                        rows_without_embedding += 1;
                        first_without_embedding.get_or_insert_with(|| texts[id_field].to_owned());
                    }
                }
                Ok(())
            })?;
            if let Some(unmatched) = rows_by_id.keys().next() {
                return Err(IndexError::InvalidConfig(format!(
                    "{} embedded photos have no metadata row with that {id_column} (for example {unmatched:?}): were the photos embedded from another list?",
                    rows_by_id.len()
                )));
            }
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut writer)?;
    }
    progress.finish();
    let vectors = writer.vectors_added();
    let add_seconds = started.elapsed().as_secs_f64();
    writer.finish().map_err(write_error(output))?;
    Ok(BuildSummary {
        vectors,
        dimension,
        add_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        rows_without_embedding,
        first_without_embedding,
    })
}

/// Each embedding's `(file, row)` by the id its rows CSV gives; an id twice is an error.
fn embedding_ids(matrices: &[MappedMatrix]) -> Result<HashMap<String, (usize, usize)>> {
    let mut ids = HashMap::new();
    for (index, matrix) in matrices.iter().enumerate() {
        let rows_path = matrix.path().with_extension("rows.csv");
        let bad = |message: String| IndexError::BadInput {
            path: rows_path.clone(),
            line: None,
            message,
        };
        let mut reader = csv::Reader::from_path(&rows_path).map_err(|error| {
            bad(format!(
                "--id-column needs the rows CSV that g3 embed-images writes beside {} ({error})",
                matrix.path().display()
            ))
        })?;
        let id_index = reader
            .headers()
            .map_err(|error| bad(error.to_string()))?
            .iter()
            .position(|column| column == "id")
            .ok_or_else(|| bad("no id column".into()))?;
        let mut count = 0;
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|error| bad(error.to_string()))?;
            let id = record[id_index].to_owned();
            if let Some((other, other_row)) = ids.insert(id.clone(), (index, row)) {
                return Err(IndexError::InvalidConfig(format!(
                    "id {id:?} is embedded twice: row {other_row} of {} and row {row} of {}",
                    matrices[other].path().display(),
                    matrix.path().display()
                )));
            }
            count += 1;
        }
        if count != matrix.rows() {
            return Err(bad(format!(
                "names {count} rows, {} holds {}",
                matrix.path().display(),
                matrix.rows()
            )));
        }
    }
    Ok(ids)
}

/// Streams a faiss flat index and its metadata CSV into a database at `output`: the CSV
/// entry by entry, then the vectors a chunk at a time, straight to disk for an exact store
/// (memory: one chunk plus 8 bytes per key, whatever the index size) or into the graph for
/// HNSW (memory: the graph). The database appears at `output` only once complete.
pub fn import_faiss_index(
    faiss: &Path,
    metadata: MetadataSource<'_>,
    config: &StoreConfig,
    output: &Path,
    progress: &dyn Progress,
) -> Result<BuildSummary> {
    let started = Instant::now();
    let mut reader = FaissFlatReader::open(faiss)?;
    let (count, dimension) = (reader.len(), reader.dimension());
    let mut csv = MetadataCsvReader::open(metadata.path, metadata.options)?;
    let mut writer = DatabaseWriter::create(output, dimension, config, csv.text_columns().to_vec())
        .map_err(write_error(output))?;

    progress.start("reading metadata", "rows", Some(count as u64));
    csv.for_each_entry(|key, location, texts| {
        progress.advance(1);
        writer.add_entry(key, location, texts)
    })?;
    progress.finish();
    // Checked before the long part: the CSV must describe the index row for row.
    if writer.entries_added() != count {
        return Err(IndexError::CountMismatch {
            vectors: count,
            metadata: writer.entries_added(),
        }
        .context(format!(
            "{} does not describe {} row for row",
            metadata.path.display(),
            faiss.display()
        )));
    }

    progress.start(
        "importing vectors",
        "bytes",
        Some((count * dimension * 4) as u64),
    );
    let faiss_path = faiss.display().to_string();
    let mut warn_l2 = reader.metric() == FaissMetric::L2;
    let mut first_row = 0;
    let (chunks, next_chunk) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|scope| -> Result<()> {
        // Owned here, so that an error returning from this closure drops it and a reader
        // blocked on a full channel stops instead of waiting forever.
        let next_chunk = next_chunk;
        scope.spawn(move || {
            loop {
                let chunk = reader.next_rows(IMPORT_CHUNK_ROWS).transpose();
                let last = !matches!(chunk, Some(Ok(_)));
                // A closed channel means the writer failed: stop reading.
                if chunks.send(chunk).is_err() || last {
                    break;
                }
            }
        });
        while let Some(chunk) = next_chunk.recv().ok().flatten() {
            let chunk = chunk?;
            if warn_l2 && !all_unit_length(&chunk, dimension) {
                progress.notice(&format!(
                    "warning: {faiss_path} is an IndexFlatL2 whose vectors are not unit length; this database ranks by {}, which orders them differently from L2 distance",
                    config.metric.short_name()
                ));
                warn_l2 = false;
            }
            // Store errors count rows within the chunk they were given: say where it starts.
            writer.add_vectors(&chunk).map_err(|error| {
                error.context(format!(
                    "cannot import {faiss_path}: in the chunk starting at vector {first_row} (the row below counts from there)"
                ))
            })?;
            first_row += chunk.len() / dimension;
            progress.advance((chunk.len() * 4) as u64);
        }
        Ok(())
    })?;
    progress.finish();
    let add_seconds = started.elapsed().as_secs_f64();
    progress.start(&format!("writing {}", output.display()), "", None);
    writer.finish().map_err(write_error(output))?;
    progress.finish();
    Ok(BuildSummary {
        vectors: count,
        dimension,
        add_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        rows_without_embedding: 0,
        first_without_embedding: None,
    })
}

fn all_unit_length(vectors: &[f32], dimension: usize) -> bool {
    vectors.chunks_exact(dimension).all(|row| {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        (norm - 1.0).abs() < 1e-3
    })
}

//! Reading flat faiss indexes (`IndexFlatIP`, `IndexFlatL2`) as written by
//! `faiss.write_index`, such as the database the G3 authors publish.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{IndexError, Result};

/// The metric a faiss flat index was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaissMetric {
    /// `IndexFlatIP` (faiss `METRIC_INNER_PRODUCT`).
    InnerProduct,
    /// `IndexFlatL2` (faiss `METRIC_L2`).
    L2,
}

/// The vectors of a flat faiss index, row-major, in faiss's row order (faiss ids are rows).
#[derive(Debug, Clone, PartialEq)]
pub struct FaissFlatIndex {
    /// The metric the faiss index ranked by.
    pub metric: FaissMetric,
    /// Width of each vector.
    pub dimension: usize,
    /// `ntotal × dimension` values.
    pub vectors: Vec<f32>,
}

impl FaissFlatIndex {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.vectors.len() / self.dimension
    }

    /// Whether the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
}

/// faiss's four-character type codes, little-endian as `write_index` stores them.
const FLAT_IP: &[u8; 4] = b"IxFI";
const FLAT_L2: &[u8; 4] = b"IxF2";
const FLAT_OTHER: &[u8; 4] = b"IxFl";

/// faiss's `MetricType` values.
const METRIC_INNER_PRODUCT: i32 = 0;
const METRIC_L2: i32 = 1;

/// Reads a flat faiss index file whole. For files larger than memory, read it in chunks
/// with [`FaissFlatReader`].
pub fn read_faiss_flat(path: &Path) -> Result<FaissFlatIndex> {
    let mut reader = FaissFlatReader::open(path)?;
    let mut vectors = Vec::with_capacity(reader.len() * reader.dimension());
    while let Some(chunk) = reader.next_rows(1 << 16)? {
        vectors.extend_from_slice(&chunk);
    }
    Ok(FaissFlatIndex {
        metric: reader.metric(),
        dimension: reader.dimension(),
        vectors,
    })
}

/// A flat faiss index read a chunk of rows at a time, so that importing G3's 38 GB index
/// needs memory for one chunk rather than the whole file.
///
/// The layout (faiss `index_write.cpp`): the type code, then the common header — `d` (i32),
/// `ntotal` (i64), two unused i64, `is_trained` (u8), `metric_type` (i32), and `metric_arg`
/// (f32) only for metrics beyond L2 — then the codes as a u64 count followed by the data.
/// Current faiss counts the codes in floats; faiss before 1.7.3 counted bytes; both are read.
/// Sizes are checked against the file length before anything is allocated.
pub struct FaissFlatReader {
    path: std::path::PathBuf,
    reader: BufReader<File>,
    metric: FaissMetric,
    dimension: usize,
    count: usize,
    rows_read: usize,
}

impl FaissFlatReader {
    /// Opens `path` and checks its header against the file's length.
    pub fn open(path: &Path) -> Result<Self> {
        let corrupt = |reason: String| IndexError::corrupt(path, reason);
        let file = File::open(path).map_err(IndexError::io(path))?;
        let file_len = file.metadata().map_err(IndexError::io(path))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut read = |buffer: &mut [u8], what: &str| {
            reader
                .read_exact(buffer)
                .map_err(|_| corrupt(format!("the file ends inside the {what}")))
        };
        let mut code = [0u8; 4];
        read(&mut code, "type code")?;
        if &code != FLAT_IP && &code != FLAT_L2 && &code != FLAT_OTHER {
            return Err(IndexError::UnsupportedFaissIndex {
                path: path.to_path_buf(),
                reason: format!(
                    "type code {:?} is not a flat index (IxFI, IxF2); only IndexFlatIP and IndexFlatL2 can be imported",
                    String::from_utf8_lossy(&code)
                ),
            });
        }
        let mut header = [0u8; 4 + 8 + 8 + 8 + 1 + 4];
        read(&mut header, "header")?;
        let dimension = i32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let count = i64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
        let metric_type = i32::from_le_bytes(header[29..33].try_into().expect("4 bytes"));
        let metric = match metric_type {
            METRIC_INNER_PRODUCT => FaissMetric::InnerProduct,
            METRIC_L2 => FaissMetric::L2,
            other => {
                return Err(IndexError::UnsupportedFaissIndex {
                    path: path.to_path_buf(),
                    reason: format!("metric type {other} is neither inner product (0) nor L2 (1)"),
                });
            }
        };
        let dimension = usize::try_from(dimension)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| corrupt(format!("dimension {dimension} is not positive")))?;
        let count = usize::try_from(count)
            .map_err(|_| corrupt(format!("vector count {count} is negative")))?;
        let mut size = [0u8; 8];
        read(&mut size, "code size")?;
        let size = u64::from_le_bytes(size);
        let values = count
            .checked_mul(dimension)
            .ok_or_else(|| corrupt(format!("{count} × {dimension} values overflow")))?;
        let data_start = 4 + header.len() as u64 + 8;
        let data_bytes = u64::try_from(values)
            .ok()
            .and_then(|values| values.checked_mul(4))
            .ok_or_else(|| corrupt(format!("{count} × {dimension} floats overflow a file size")))?;
        if size != values as u64 && size != data_bytes {
            return Err(corrupt(format!(
                "the code size {size} fits neither {count} × {dimension} floats nor their bytes"
            )));
        }
        let expected_len = data_start
            .checked_add(data_bytes)
            .ok_or_else(|| corrupt(format!("{count} × {dimension} floats overflow a file size")))?;
        if file_len != expected_len {
            return Err(corrupt(format!(
                "{file_len} bytes, but a flat index of {count} × {dimension} floats has {expected_len}"
            )));
        }
        Ok(FaissFlatReader {
            path: path.to_path_buf(),
            reader,
            metric,
            dimension,
            count,
            rows_read: 0,
        })
    }

    /// The metric the faiss index ranked by.
    pub fn metric(&self) -> FaissMetric {
        self.metric
    }

    /// Width of each vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Number of vectors in the file.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the file holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The next up to `max_rows` vectors (row-major), or `None` after the last. A value that
    /// is not finite is an error naming its row and component.
    pub fn next_rows(&mut self, max_rows: usize) -> Result<Option<Vec<f32>>> {
        let rows = max_rows.max(1).min(self.count - self.rows_read);
        if rows == 0 {
            return Ok(None);
        }
        let mut vectors = vec![0.0f32; rows * self.dimension];
        self.reader
            .read_exact(bytemuck::cast_slice_mut(&mut vectors))
            .map_err(|_| IndexError::corrupt(&self.path, "the file ends inside the vectors"))?;
        if cfg!(target_endian = "big") {
            for value in &mut vectors {
                *value = f32::from_bits(value.to_bits().swap_bytes());
            }
        }
        if let Some(position) = vectors.iter().position(|v| !v.is_finite()) {
            return Err(IndexError::corrupt(
                &self.path,
                format!(
                    "vector {}, component {} is {}",
                    self.rows_read + position / self.dimension,
                    position % self.dimension,
                    vectors[position]
                ),
            ));
        }
        self.rows_read += rows;
        Ok(Some(vectors))
    }
}

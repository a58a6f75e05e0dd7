//! Embedding matrices as `.npy` files (float32, C order): written atomically, read with
//! their shape checked.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use g3_core::Embeddings;
use npyz::WriterBuilder;

use crate::atomic_file::AtomicFile;
use crate::error::{Error, Result};

/// Writes a `[rows, dimension]` float32 `.npy` file batch by batch, so that matrices larger
/// than memory can be produced. The data goes to a temporary file in the same directory that
/// is renamed into place by [`EmbeddingFileWriter::finish`]; dropping the writer earlier (an
/// error, Ctrl-C) leaves no partial file behind.
pub struct EmbeddingFileWriter {
    path: PathBuf,
    temporary: AtomicFile,
    writer: npyz::NpyWriter<f32, BufWriter<File>>,
    rows: usize,
    dimension: usize,
    rows_written: usize,
}

impl EmbeddingFileWriter {
    /// Starts a file that will hold exactly `rows` rows of width `dimension`.
    pub fn create(path: &Path, rows: usize, dimension: usize) -> Result<Self> {
        let io_error = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let temporary = AtomicFile::create(path)?;
        let file = temporary.file().try_clone().map_err(io_error)?;
        let writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, dimension as u64])
            .writer(BufWriter::with_capacity(1 << 20, file))
            .begin_nd()
            .map_err(io_error)?;
        Ok(EmbeddingFileWriter {
            path: path.to_path_buf(),
            temporary,
            writer,
            rows,
            dimension,
            rows_written: 0,
        })
    }

    /// Appends the rows of `batch`.
    pub fn write(&mut self, batch: &Embeddings) -> Result<()> {
        check_width(batch, self.dimension)?;
        if self.rows_written + batch.len() > self.rows {
            return Err(self.row_count_error(self.rows_written + batch.len()));
        }
        self.writer
            .extend(batch.as_slice().iter().copied())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.rows_written += batch.len();
        Ok(())
    }

    /// Checks that every row was written, flushes, and renames the file into place.
    pub fn finish(self) -> Result<()> {
        if self.rows_written != self.rows {
            return Err(self.row_count_error(self.rows_written));
        }
        let io_error = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        // Finishing flushes the buffered writer into the temporary file.
        self.writer.finish().map_err(io_error)?;
        self.temporary.commit()
    }

    fn row_count_error(&self, found: usize) -> Error {
        Error::Io {
            path: self.path.clone(),
            source: std::io::Error::other(format!(
                "the file was declared with {} rows but {found} were written",
                self.rows
            )),
        }
    }
}

/// A batch written to a matrix file must have the file's width.
fn check_width(batch: &Embeddings, dimension: usize) -> Result<()> {
    if batch.dimension() != dimension {
        return Err(g3_core::Error::DimensionMismatch {
            what: "embedding batch written to an .npy file",
            expected: dimension,
            found: batch.dimension(),
        }
        .into());
    }
    Ok(())
}

/// Writes a float32 `.npy` matrix whose number of rows is known only at the end (rows of
/// undecodable images skipped, for example): rows go to a temporary raw file beside the
/// target, and [`GrowingEmbeddingFile::finish`] streams them into the final `.npy` file,
/// written atomically. Dropped earlier, it leaves nothing behind.
pub struct GrowingEmbeddingFile {
    path: PathBuf,
    rows: AtomicFile,
    writer: BufWriter<File>,
    dimension: usize,
    rows_written: usize,
}

impl GrowingEmbeddingFile {
    /// Starts a matrix of width `dimension` for `path`.
    pub fn create(path: &Path, dimension: usize) -> Result<Self> {
        let rows = AtomicFile::create(&path.with_extension("rows.tmp"))?;
        let file = rows.file().try_clone().map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(GrowingEmbeddingFile {
            path: path.to_path_buf(),
            rows,
            writer: BufWriter::with_capacity(1 << 20, file),
            dimension,
            rows_written: 0,
        })
    }

    /// Appends the rows of `batch`.
    pub fn write(&mut self, batch: &Embeddings) -> Result<()> {
        use std::io::Write;
        check_width(batch, self.dimension)?;
        for value in batch.as_slice() {
            self.writer
                .write_all(&value.to_le_bytes())
                .map_err(|source| Error::Io {
                    path: self.path.clone(),
                    source,
                })?;
        }
        self.rows_written += batch.len();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows_written
    }

    /// Writes the `.npy` file with every row so far, atomically; the temporary rows go.
    pub fn finish(self) -> Result<()> {
        use std::io::{Seek, Write};
        let io_error = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = self
            .writer
            .into_inner()
            .map_err(|error| io_error(error.into_error()))?;
        file.flush().map_err(io_error)?;
        file.seek(std::io::SeekFrom::Start(0)).map_err(io_error)?;
        let mut output =
            EmbeddingFileWriter::create(&self.path, self.rows_written, self.dimension)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let row_bytes = self.dimension * 4;
        let rows_per_chunk = ((1 << 20) / row_bytes.max(1)).max(1);
        let mut buffer = vec![0u8; rows_per_chunk * row_bytes];
        let mut remaining = self.rows_written;
        while remaining > 0 {
            let rows = remaining.min(rows_per_chunk);
            let bytes = &mut buffer[..rows * row_bytes];
            reader.read_exact(bytes).map_err(io_error)?;
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            output.write(&Embeddings::new(self.dimension, values)?)?;
            remaining -= rows;
        }
        drop(self.rows);
        output.finish()
    }
}

/// Reads a 2-D `.npy` matrix of float32 (or float64, converted) in C order, as numpy's
/// `np.save` writes it, into one batch of embeddings.
///
/// Errors name the file: not an `.npy` file, not 2-D, Fortran order, another dtype, a
/// zero-width matrix, or data shorter than its header promises.
pub fn read_embeddings_npy(path: &Path) -> Result<Embeddings> {
    let invalid = |reason: String| Error::InvalidNpy {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_len = file
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if declared_values_overflow(&mut reader) {
        return Err(invalid(
            "the header's shape holds more values than 64 bits can count".into(),
        ));
    }
    let npy = npyz::NpyFile::new(reader)
        .map_err(|error| invalid(format!("not an .npy file: {error}")))?;
    let shape = npy.shape().to_vec();
    let [rows, dimension] = shape[..] else {
        return Err(invalid(format!(
            "shape {shape:?}: expected a 2-D matrix [rows, dimension]"
        )));
    };
    if npy.order() != npyz::Order::C {
        return Err(invalid(
            "Fortran order: save a C-ordered array (np.ascontiguousarray)".into(),
        ));
    }
    let (rows, dimension) = (rows as usize, dimension as usize);
    if dimension == 0 {
        return Err(invalid("the matrix has zero columns".into()));
    }
    let dtype = match npy.dtype() {
        npyz::DType::Plain(type_string) => type_string.to_string(),
        other => other.descr(),
    };
    // A garbled header must not drive a huge allocation: the data it promises has to fit in
    // the file before anything is allocated for it.
    let item_bytes: u64 = match dtype.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(invalid(format!(
                "dtype {other}: expected little-endian float32 (<f4) or float64 (<f8)"
            )));
        }
    };
    let promised_bytes = u64::try_from(rows)
        .ok()
        .and_then(|rows| rows.checked_mul(u64::try_from(dimension).ok()?))
        .and_then(|values| values.checked_mul(item_bytes));
    if promised_bytes.is_none_or(|bytes| bytes > file_len) {
        return Err(invalid(format!(
            "the header promises a [{rows}, {dimension}] matrix, more data than the file's {file_len} bytes hold"
        )));
    }
    let read_error = |error: std::io::Error| invalid(format!("cannot read the data: {error}"));
    let values: Vec<f32> = if item_bytes == 4 {
        npy.into_vec::<f32>().map_err(read_error)?
    } else {
        npy.into_vec::<f64>()
            .map_err(read_error)?
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    if values.len() != rows.saturating_mul(dimension) {
        return Err(invalid(format!(
            "{} values for a [{rows}, {dimension}] matrix",
            values.len()
        )));
    }
    Ok(Embeddings::new(dimension, values)?)
}

/// Whether the header of an `.npy` file declares a shape whose element count overflows 64
/// bits. npyz 0.9 multiplies the shape without overflow checks (a panic in debug builds, a
/// wrapped count in release), so a garbled header is screened here first. The reader is
/// rewound; anything unparsable is left for npyz to report.
fn declared_values_overflow<R: Read + std::io::Seek>(reader: &mut R) -> bool {
    let mut preamble = [0u8; 12];
    let header = reader.read_exact(&mut preamble).ok().and_then(|()| {
        if &preamble[..6] != b"\x93NUMPY" {
            return None;
        }
        let (length, start) = match preamble[6] {
            1 => (u16::from_le_bytes([preamble[8], preamble[9]]) as usize, 10),
            _ => (
                u32::from_le_bytes(preamble[8..12].try_into().ok()?) as usize,
                12,
            ),
        };
        let mut header = vec![0u8; length.min(1 << 20)];
        reader.seek(std::io::SeekFrom::Start(start)).ok()?;
        reader.read_exact(&mut header).ok()?;
        String::from_utf8(header).ok()
    });
    let overflows = header.is_some_and(|header| {
        let Some(after_key) = header.split("'shape'").nth(1) else {
            return false;
        };
        let tuple = after_key
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inside, _)| inside);
        tuple.is_some_and(|inside| {
            let mut product = Some(1u64);
            for part in inside.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Ok(size) = part.trim_end_matches('L').parse::<u64>() else {
                    return false;
                };
                product = product.and_then(|product| product.checked_mul(size));
            }
            product.is_none()
        })
    });
    let _ = reader.seek(std::io::SeekFrom::Start(0));
    overflows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an `.npy` file whose header claims `shape` but that holds `values` only.
    fn npy_with_header(path: &Path, descr: &str, shape: &str, values: &[f32]) {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn reads_a_well_formed_matrix() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ok.npy");
        npy_with_header(&path, "<f4", "(2, 3)", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let embeddings = read_embeddings_npy(&path).unwrap();
        assert_eq!((embeddings.len(), embeddings.dimension()), (2, 3));
        assert_eq!(embeddings.row(1), &[4.0, 5.0, 6.0]);
    }

    /// A header promising more data than the file holds (or a size that overflows) is
    /// refused before anything is allocated for it.
    #[test]
    fn headers_promising_more_than_the_file_holds_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("lying.npy");
        for shape in [
            "(3, 3)",
            "(1000000000000, 768)",
            "(18446744073709551615, 2)",
            "(4611686018427387904, 4)",
        ] {
            npy_with_header(&path, "<f4", shape, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            let error = read_embeddings_npy(&path).unwrap_err().to_string();
            assert!(error.contains("lying.npy"), "{shape}: {error}");
        }
        npy_with_header(&path, "<i4", "(2, 3)", &[0.0; 6]);
        let error = read_embeddings_npy(&path).unwrap_err().to_string();
        assert!(error.contains("dtype <i4"), "{error}");
    }
}

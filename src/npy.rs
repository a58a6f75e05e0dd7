//! Embedding matrices as `.npy` files (float32, C order): written atomically, read with
//! their shape checked.

use std::fs::File;
use std::io::{BufReader, BufWriter};
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
        if batch.dimension() != self.dimension {
            return Err(g3_core::Error::DimensionMismatch {
                what: "embedding batch written to an .npy file",
                expected: self.dimension,
                found: batch.dimension(),
            }
            .into());
        }
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
    let npy = npyz::NpyFile::new(BufReader::with_capacity(1 << 20, file))
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
    let read_error = |error: std::io::Error| invalid(format!("cannot read the data: {error}"));
    let values: Vec<f32> = match dtype.as_str() {
        "<f4" => npy.into_vec::<f32>().map_err(read_error)?,
        "<f8" => npy
            .into_vec::<f64>()
            .map_err(read_error)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => {
            return Err(invalid(format!(
                "dtype {other}: expected little-endian float32 (<f4) or float64 (<f8)"
            )));
        }
    };
    if values.len() != rows * dimension {
        return Err(invalid(format!(
            "{} values for a [{rows}, {dimension}] matrix",
            values.len()
        )));
    }
    Ok(Embeddings::new(dimension, values)?)
}

//! Float matrices as `.npy` files, as `np.save` writes them: the one reader and writer of
//! embeddings, features and galleries in every crate and command.
//!
//! Every reader goes through one header check: a 2-D matrix in C order, little-endian
//! float32 (or float64 where converting is fine), at least one column, a shape whose size
//! does not overflow, and exactly as many data bytes as the shape promises. A corrupted or
//! foreign file is an [`Error::InvalidNpy`] naming it, never a panic or a huge allocation.
//! Writers are atomic ([`AtomicFile`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use npyz::WriterBuilder;

use crate::atomic::AtomicFile;
use crate::embedding::Embeddings;
use crate::error::{Error, Result};

/// The element type of a float matrix file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatType {
    F32,
    F64,
}

impl FloatType {
    fn bytes(self) -> u64 {
        match self {
            FloatType::F32 => 4,
            FloatType::F64 => 8,
        }
    }
}

/// What a checked header says about the matrix that follows it.
#[derive(Debug, Clone, Copy)]
struct MatrixHeader {
    rows: usize,
    columns: usize,
    float: FloatType,
    /// Where the data starts, in bytes from the start of the file.
    data_offset: u64,
}

/// Reads and checks the header of the `.npy` file `path` from `reader` (at its start), whose
/// whole length is `file_len`. Leaves the reader at the data.
fn read_header(
    path: &Path,
    reader: &mut (impl Read + Seek),
    file_len: u64,
) -> Result<MatrixHeader> {
    let invalid = |reason: String| Error::InvalidNpy {
        path: path.to_path_buf(),
        reason,
    };
    if declared_values_overflow(reader) {
        return Err(invalid(
            "the header's shape holds more values than 64 bits can count".into(),
        ));
    }
    let header = npyz::NpyHeader::from_reader(&mut *reader)
        .map_err(|error| invalid(format!("not an .npy file: {error}")))?;
    let data_offset = reader.stream_position().map_err(Error::io(path))?;
    let shape = header.shape().to_vec();
    let [rows, columns] = shape[..] else {
        return Err(invalid(format!(
            "shape {shape:?}: expected a 2-D matrix [rows, columns]"
        )));
    };
    if header.order() != npyz::Order::C {
        return Err(invalid(
            "Fortran order: save a C-ordered array (np.ascontiguousarray)".into(),
        ));
    }
    let dtype = match header.dtype() {
        npyz::DType::Plain(type_string) => type_string.to_string(),
        other => other.descr(),
    };
    let float = match dtype.as_str() {
        "<f4" => FloatType::F32,
        "<f8" => FloatType::F64,
        other => {
            return Err(invalid(format!(
                "dtype {other}: expected little-endian float32 (<f4) or float64 (<f8)"
            )));
        }
    };
    if columns == 0 {
        return Err(invalid("the matrix has zero columns".into()));
    }
    // A garbled header must not drive a huge allocation: the data it promises has to be the
    // data the file holds before anything is allocated for it.
    let data_bytes = file_len.saturating_sub(data_offset);
    let promised = rows
        .checked_mul(columns)
        .and_then(|values| values.checked_mul(float.bytes()));
    if promised != Some(data_bytes) {
        return Err(invalid(format!(
            "the header promises a [{rows}, {columns}] {dtype} matrix, but {data_bytes} data bytes follow the header (truncated or appended to?)"
        )));
    }
    let size = |value: u64| {
        usize::try_from(value).map_err(|_| invalid(format!("{value} does not fit this machine")))
    };
    Ok(MatrixHeader {
        rows: size(rows)?,
        columns: size(columns)?,
        float,
        data_offset,
    })
}

/// Whether the header of an `.npy` file declares a shape whose element count overflows 64
/// bits. npyz multiplies the shape without overflow checks (a panic in debug builds, a
/// wrapped count in release), so a garbled header is screened here first. The reader is
/// rewound; anything unparsable is left for npyz to report.
fn declared_values_overflow(reader: &mut (impl Read + Seek)) -> bool {
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
        reader.seek(SeekFrom::Start(start)).ok()?;
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
    let _ = reader.seek(SeekFrom::Start(0));
    overflows
}

/// Reads a 2-D `.npy` matrix of float32 (or float64, converted) into one batch of
/// embeddings. Errors name the file.
pub fn read_embeddings_npy(path: &Path) -> Result<Embeddings> {
    let file = File::open(path).map_err(Error::io(path))?;
    let file_len = file.metadata().map_err(Error::io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = read_header(path, &mut reader, file_len)?;
    let values_count = header.rows * header.columns;
    let read_error = |error: std::io::Error| Error::InvalidNpy {
        path: path.to_path_buf(),
        reason: format!("cannot read the data: {error}"),
    };
    let mut bytes = vec![0u8; values_count * header.float.bytes() as usize];
    reader.read_exact(&mut bytes).map_err(read_error)?;
    let values: Vec<f32> = match header.float {
        FloatType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        FloatType::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of eight")) as f32)
            .collect(),
    };
    Embeddings::new(header.columns, values)
}

/// A float32 `.npy` matrix mapped into memory: rows are read from the page cache on demand,
/// so matrices far larger than RAM (MP16-Pro's 4.12M × 768 features are 12.7 GB) can be used.
#[derive(Debug)]
pub struct MappedMatrix {
    path: PathBuf,
    map: Mmap,
    offset: usize,
    rows: usize,
    columns: usize,
}

impl MappedMatrix {
    /// Maps a 2-D little-endian float32 matrix in C order. Errors name the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        // Safety: the mapping is read-only; a file truncated by another process while mapped
        // would fault, as with any memory-mapped reader. The files g3 writes are written
        // once and renamed into place, never modified where they lie.
        let map = unsafe { Mmap::map(&file) }.map_err(Error::io(path))?;
        let header = read_header(path, &mut std::io::Cursor::new(&map[..]), map.len() as u64)?;
        let invalid = |reason: String| Error::InvalidNpy {
            path: path.to_path_buf(),
            reason,
        };
        if header.float != FloatType::F32 {
            return Err(invalid(
                "dtype <f8: a mapped matrix must be float32 (<f4); re-save with .astype(np.float32)"
                    .into(),
            ));
        }
        if header.data_offset % 4 != 0 {
            return Err(invalid(format!(
                "a header of {} bytes leaves the data unaligned: re-save with numpy",
                header.data_offset
            )));
        }
        Ok(MappedMatrix {
            path: path.to_path_buf(),
            map,
            offset: header.data_offset as usize,
            rows: header.rows,
            columns: header.columns,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the pages read so far from this process's memory (they stay in the page cache
    /// and are read again from there if needed), so that a pass over a matrix larger than RAM
    /// does not show up as resident memory. Best effort: a system without the advice ignores
    /// it.
    pub fn release_pages(&self) {
        #[cfg(unix)]
        // SAFETY: the map is a read-only shared mapping of a file nobody modifies (see
        // `open`); MADV_DONTNEED only unmaps its pages, and the next access reads the same
        // bytes back from the file.
        unsafe {
            let _ = self
                .map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed);
        }
    }

    /// Row `index` (panics when out of range, like slice indexing).
    pub fn row(&self, index: usize) -> &[f32] {
        let start = self.offset + index * self.columns * 4;
        bytemuck::cast_slice(&self.map[start..start + self.columns * 4])
    }
}

/// Writes a `[rows, dimension]` float32 `.npy` file batch by batch, so that matrices larger
/// than memory can be produced. [`finish`](Self::finish) renames it into place; dropping the
/// writer earlier (an error, Ctrl-C) leaves no partial file behind.
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
        let temporary = AtomicFile::create(path)?;
        let file = temporary.file().try_clone().map_err(Error::io(path))?;
        let writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, dimension as u64])
            .writer(BufWriter::with_capacity(1 << 20, file))
            .begin_nd()
            .map_err(Error::io(path))?;
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
            .map_err(Error::io(&self.path))?;
        self.rows_written += batch.len();
        Ok(())
    }

    /// Checks that every row was written, flushes, and renames the file into place.
    pub fn finish(self) -> Result<()> {
        if self.rows_written != self.rows {
            return Err(self.row_count_error(self.rows_written));
        }
        // Finishing flushes the buffered writer into the temporary file.
        self.writer.finish().map_err(Error::io(&self.path))?;
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

impl std::fmt::Debug for EmbeddingFileWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmbeddingFileWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .field("dimension", &self.dimension)
            .field("rows_written", &self.rows_written)
            .finish()
    }
}

/// A batch written to a matrix file must have the file's width.
fn check_width(batch: &Embeddings, dimension: usize) -> Result<()> {
    if batch.dimension() != dimension {
        return Err(Error::DimensionMismatch {
            what: "embedding batch written to an .npy file",
            expected: dimension,
            found: batch.dimension(),
        });
    }
    Ok(())
}

/// Writes a float32 `.npy` matrix whose number of rows is known only at the end (rows of
/// undecodable images skipped, for example): rows go to a temporary raw file beside the
/// target, and [`finish`](Self::finish) streams them into the final `.npy` file, written
/// atomically. Dropped earlier, it leaves nothing behind.
#[derive(Debug)]
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
        let file = rows.file().try_clone().map_err(Error::io(path))?;
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
        check_width(batch, self.dimension)?;
        let bytes: &[u8] = bytemuck::cast_slice(batch.as_slice());
        if cfg!(target_endian = "little") {
            self.writer
                .write_all(bytes)
                .map_err(Error::io(&self.path))?;
        } else {
            for value in batch.as_slice() {
                self.writer
                    .write_all(&value.to_le_bytes())
                    .map_err(Error::io(&self.path))?;
            }
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
        let io_error = Error::io(&self.path);
        let mut file = match self.writer.into_inner() {
            Ok(file) => file,
            Err(error) => return Err(io_error(error.into_error())),
        };
        let result = file
            .flush()
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop));
        if let Err(error) = result {
            return Err(Error::io(&self.path)(error));
        }
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
            reader.read_exact(bytes).map_err(Error::io(&self.path))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an `.npy` file whose header claims `shape` but that holds `values` only.
    fn npy_with_header(path: &Path, descr: &str, fortran: bool, shape: &str, values: &[f32]) {
        let fortran = if fortran { "True" } else { "False" };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
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

    /// Both readers, as one error message each (or "ok").
    fn read_both(path: &Path) -> [String; 2] {
        [
            read_embeddings_npy(path).map_or_else(|e| e.to_string(), |_| "ok".into()),
            MappedMatrix::open(path).map_or_else(|e| e.to_string(), |_| "ok".into()),
        ]
    }

    #[test]
    fn a_well_formed_matrix_reads_the_same_through_both_readers() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ok.npy");
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut writer = EmbeddingFileWriter::create(&path, 2, 3).unwrap();
        writer
            .write(&Embeddings::new(3, values.to_vec()).unwrap())
            .unwrap();
        writer.finish().unwrap();
        let embeddings = read_embeddings_npy(&path).unwrap();
        assert_eq!((embeddings.len(), embeddings.dimension()), (2, 3));
        assert_eq!(embeddings.row(1), &[4.0, 5.0, 6.0]);
        let mapped = MappedMatrix::open(&path).unwrap();
        assert_eq!((mapped.rows(), mapped.columns()), (2, 3));
        assert_eq!(mapped.row(1), &[4.0, 5.0, 6.0]);
    }

    /// Headers that lie, overflow or describe something else are errors naming the file from
    /// every reader, before anything is allocated for them.
    #[test]
    fn corrupted_headers_are_errors_naming_the_file_from_every_reader() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("lying.npy");
        let six = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let cases: [(&str, bool, &str, &str); 9] = [
            ("<f4", false, "(3, 3)", "truncated"),
            ("<f4", false, "(1000000000000, 768)", "promises"),
            ("<f4", false, "(18446744073709551615, 2)", "64 bits"),
            ("<f4", false, "(4611686018427387904, 4)", "64 bits"),
            ("<f4", false, "(4294967296, 4294967296, 2)", "64 bits"),
            ("<f4", false, "(6,)", "2-D"),
            ("<f4", false, "(6, 0)", "zero columns"),
            ("<f4", true, "(2, 3)", "Fortran order"),
            ("<i4", false, "(2, 3)", "dtype <i4"),
        ];
        for (descr, fortran, shape, expected) in cases {
            npy_with_header(&path, descr, fortran, shape, &six);
            for message in read_both(&path) {
                assert!(
                    message.contains("lying.npy") && message.contains(expected),
                    "{shape}: {message}"
                );
            }
        }
        std::fs::write(&path, b"not numpy at all").unwrap();
        for message in read_both(&path) {
            assert!(message.contains("not an .npy file"), "{message}");
        }
    }

    #[test]
    fn float64_is_converted_when_read_and_refused_when_mapped() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("f8.npy");
        let mut writer = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&[1, 2])
            .writer(File::create(&path).unwrap())
            .begin_nd()
            .unwrap();
        writer.extend([0.5, -2.0]).unwrap();
        writer.finish().unwrap();
        assert_eq!(read_embeddings_npy(&path).unwrap().row(0), &[0.5, -2.0]);
        let error = MappedMatrix::open(&path).unwrap_err().to_string();
        assert!(error.contains("float32"), "{error}");
    }

    #[test]
    fn a_growing_file_holds_every_row_written() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("grown.npy");
        let mut file = GrowingEmbeddingFile::create(&path, 2).unwrap();
        for row in 0..3 {
            let value = row as f32;
            file.write(&Embeddings::new(2, vec![value, -value]).unwrap())
                .unwrap();
        }
        assert_eq!(file.rows(), 3);
        file.finish().unwrap();
        let read = read_embeddings_npy(&path).unwrap();
        assert_eq!(read.as_slice(), &[0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
        let names: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["grown.npy"], "no temporary file is left");
    }
}

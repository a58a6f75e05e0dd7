//! Predictions of a dataset run as a CSV that grows row by row and resumes after a kill
//! (`g3 run`).
//!
//! Each finished image is one line, flushed to disk with its batch. Opening an existing file
//! keeps its complete rows and cuts off a last line that a kill left half-written, so a rerun
//! skips exactly the images already done. The columns are what `g3 eval` reads
//! (`IMG_ID, LAT, LON, LAT_pred, LON_pred`), the error in km, and the candidate pool:
//! [`RESULT_COLUMNS`].

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use g3_core::{CandidateSource, DistanceMetric, GeoPoint, Prediction};

use crate::error::{Error, Result};

/// The header of a results file.
pub const RESULT_COLUMNS: [&str; 10] = [
    "IMG_ID",
    "LAT",
    "LON",
    "LAT_pred",
    "LON_pred",
    "geodesic",
    "source",
    "score",
    "rejected",
    "candidates",
];

/// An append-only results file; see the [module documentation](self).
#[derive(Debug)]
pub struct ResultsFile {
    path: PathBuf,
    writer: BufWriter<File>,
    finished: HashSet<String>,
}

impl ResultsFile {
    /// Opens `path` for appending, creating it with the header when absent. An existing file
    /// must have [`RESULT_COLUMNS`] as its header; its complete rows count as finished, and
    /// a half-written last line is removed.
    pub fn open(path: &Path) -> Result<Self> {
        let io_error = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut finished = HashSet::new();
        let exists = path.is_file() && std::fs::metadata(path).map_err(io_error)?.len() > 0;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        if exists {
            let complete_length = read_finished(path, &mut finished)?;
            if complete_length < file.metadata().map_err(io_error)?.len() {
                file.set_len(complete_length).map_err(io_error)?;
            }
            file.seek(SeekFrom::End(0)).map_err(io_error)?;
        } else {
            writeln!(file, "{}", RESULT_COLUMNS.join(",")).map_err(io_error)?;
        }
        Ok(ResultsFile {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            finished,
        })
    }

    /// Whether `image_id` already has a row.
    pub fn is_finished(&self, image_id: &str) -> bool {
        self.finished.contains(image_id)
    }

    /// How many images have rows.
    pub fn finished_count(&self) -> usize {
        self.finished.len()
    }

    /// Appends the row of one image (not yet flushed; see [`flush`](Self::flush)).
    pub fn append(&mut self, truth: GeoPoint, prediction: &Prediction) -> Result<()> {
        let chosen = prediction.chosen_candidate();
        let source = match &chosen.source {
            CandidateSource::Generated {
                prompt_index,
                sample_index,
            } => format!("generated:{prompt_index}:{sample_index}"),
            CandidateSource::Retrieved { rank, .. } => format!("retrieved:{rank}"),
            CandidateSource::Gallery { index } => format!("gallery:{index}"),
            CandidateSource::Custom { stage } => format!("custom:{stage}"),
            _ => "other".to_owned(),
        };
        let candidates =
            serde_json::to_string(&prediction.candidates).expect("candidates serialise as JSON");
        let error_km = DistanceMetric::Geodesic.distance_km(truth, prediction.location);
        let fields = [
            prediction.image_id.clone(),
            truth.lat_deg().to_string(),
            truth.lon_deg().to_string(),
            prediction.location.lat_deg().to_string(),
            prediction.location.lon_deg().to_string(),
            error_km.to_string(),
            source,
            chosen
                .score
                .map_or_else(String::new, |score| score.to_string()),
            prediction.rejected.len().to_string(),
            candidates,
        ];
        let mut line = Vec::new();
        {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(&mut line);
            writer.write_record(&fields).map_err(|source| Error::Csv {
                path: self.path.clone(),
                source,
            })?;
        }
        self.writer.write_all(&line).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.finished.insert(prediction.image_id.clone());
        Ok(())
    }

    /// Writes buffered rows to the operating system and syncs them to disk, so a kill or a
    /// power loss after this point loses none of them.
    pub fn flush(&mut self) -> Result<()> {
        let io_error = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.writer.flush().map_err(io_error)?;
        self.writer.get_ref().sync_data().map_err(io_error)
    }
}

/// Reads the finished image ids of an existing file; returns the byte length of its complete
/// rows (the header included), after which anything is a half-written line.
fn read_finished(path: &Path, finished: &mut HashSet<String>) -> Result<u64> {
    let csv_error = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Only lines ending in a newline were completely written.
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |end| end + 1);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&bytes[..complete]);
    let header = reader.headers().map_err(csv_error)?;
    if header.iter().ne(RESULT_COLUMNS) {
        return Err(Error::InvalidPipeline(format!(
            "{} exists and is not a g3 run results file (header {:?}, expected {:?}); pass another --output or remove it",
            path.display(),
            header.iter().collect::<Vec<_>>(),
            RESULT_COLUMNS
        )));
    }
    if complete == 0 {
        return Ok(0);
    }
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        if record.len() == RESULT_COLUMNS.len() {
            finished.insert(record[0].to_owned());
        }
    }
    Ok(complete as u64)
}

#[cfg(test)]
mod tests {
    use g3_core::Candidate;

    use super::*;

    fn prediction(id: &str, lon: f64) -> Prediction {
        let location = GeoPoint::new(10.0, lon).unwrap();
        Prediction {
            image_id: id.into(),
            location,
            chosen: 0,
            candidates: vec![Candidate {
                location,
                source: CandidateSource::Retrieved {
                    key: 4,
                    rank: 0,
                    similarity: 0.5,
                },
                score: Some(0.25),
            }],
            rejected: Vec::new(),
        }
    }

    #[test]
    fn rows_survive_a_reopen_and_a_half_written_line_is_cut() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("results.csv");
        let truth = GeoPoint::new(10.0, 0.0).unwrap();
        let mut results = ResultsFile::open(&path).unwrap();
        results.append(truth, &prediction("a.jpg", 1.0)).unwrap();
        results
            .append(truth, &prediction("b, with comma.jpg", 2.0))
            .unwrap();
        results.flush().unwrap();
        drop(results);
        // A kill in the middle of the third row.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"c.jpg,10,0,10,3,328.").unwrap();
        drop(file);

        let mut results = ResultsFile::open(&path).unwrap();
        assert_eq!(results.finished_count(), 2);
        assert!(results.is_finished("b, with comma.jpg"));
        assert!(!results.is_finished("c.jpg"));
        results.append(truth, &prediction("c.jpg", 3.0)).unwrap();
        results.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.ends_with('\n'));
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[2][0], "c.jpg");
        assert_eq!(&rows[2][6], "retrieved:0");
        let candidates: Vec<Candidate> = serde_json::from_str(&rows[2][9]).unwrap();
        assert_eq!(candidates.len(), 1);
        let error_km: f64 = rows[0][5].parse().unwrap();
        assert!((error_km - 109.6).abs() < 0.5, "{error_km}");
    }

    #[test]
    fn another_csv_is_not_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("other.csv");
        std::fs::write(&path, "IMG_ID,LAT,LON\nx,1,2\n").unwrap();
        let error = ResultsFile::open(&path).unwrap_err().to_string();
        assert!(error.contains("not a g3 run results file"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "IMG_ID,LAT,LON\nx,1,2\n"
        );
    }
}

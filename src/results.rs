//! Predictions of a dataset run as a CSV that grows row by row and resumes after a kill
//! (`g3 run`).
//!
//! Each finished image is one line, flushed to disk with its batch. Opening an existing file
//! keeps its complete rows and cuts off a last line that a kill left half-written, so a rerun
//! skips exactly the images already done. The columns are what `g3 eval` reads
//! (`IMG_ID, LAT, LON, LAT_pred, LON_pred`), the error in km, and the candidate pool:
//! [`RESULT_COLUMNS`]. Photos that failed are not rows (so a rerun retries them); a run
//! lists them in [`ResultsFile::errors_path`] and adds what the LMM cost to the
//! [`UsageLog`] at [`ResultsFile::usage_path`].

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use g3_core::{CandidateSource, DistanceMetric, GeoPoint, Prediction};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::GenerationReport;
use g3_core::atomic::AtomicFile;

/// The header of a results file. `rejected` counts answers that arrived unreadable, `lost`
/// the samples that never arrived (non-zero only for pools accepted by `min_answers`).
pub const RESULT_COLUMNS: [&str; 11] = [
    "IMG_ID",
    "LAT",
    "LON",
    "LAT_pred",
    "LON_pred",
    "geodesic",
    "source",
    "score",
    "rejected",
    "lost",
    "candidates",
];

/// The header g3 wrote before it recorded lost answers.
const COLUMNS_WITHOUT_LOST: [&str; 10] = [
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

    /// Where a run writes the photos that failed, next to `output`
    /// (`results.csv` → `results.errors.csv`).
    pub fn errors_path(output: &Path) -> PathBuf {
        sibling(output, ".errors.csv")
    }

    /// Where runs add up what the LMM cost, next to `output`
    /// (`results.csv` → `results.usage.json`).
    pub fn usage_path(output: &Path) -> PathBuf {
        sibling(output, ".usage.json")
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
            prediction.lost_samples().to_string(),
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
    if header.iter().eq(COLUMNS_WITHOUT_LOST) {
        return Err(Error::InvalidPipeline(format!(
            "{} was written by an earlier g3 that recorded photos whose LMM answers were lost as if they had been answered (its rows have no `lost` column); g3 eval still reads it, but start a new results file with another --output for this run",
            path.display()
        )));
    }
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

/// `output` with its extension replaced by `suffix`.
fn sibling(output: &Path, suffix: &str) -> PathBuf {
    let mut name = output.file_stem().unwrap_or_default().to_os_string();
    name.push(suffix);
    output.with_file_name(name)
}

/// One run's account in the [`UsageLog`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// When the run ended, in seconds since the Unix epoch.
    pub finished_unix_seconds: u64,
    /// Photos the run added to the results.
    pub photos_located: u64,
    /// Photos that failed in the run.
    pub photos_failed: u64,
    /// What the LMM generator was asked, gave, lost and spent.
    pub generation: GenerationReport,
}

/// What every run that wrote a results file cost, run by run and in total
/// (`results.usage.json`). Each run adds itself with [`UsageLog::append`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageLog {
    /// The runs, oldest first.
    pub runs: Vec<RunUsage>,
    /// The sum over the runs; the last run's generator description.
    pub total: GenerationReport,
}

impl UsageLog {
    /// Reads the log at `path`, adds `run` and writes it back atomically; returns the log.
    /// A file that is not a usage log is an error naming it, and is left as it is.
    pub fn append(path: &Path, run: RunUsage) -> Result<UsageLog> {
        let mut log = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<UsageLog>(&bytes).map_err(|error| {
                Error::InvalidPipeline(format!(
                    "{}: not a g3 usage log ({error}); move it away to start a new one",
                    path.display()
                ))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => UsageLog {
                runs: Vec::new(),
                total: GenerationReport::new(run.generation.generator.clone()),
            },
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        log.total.add(&run.generation);
        log.total.generator = run.generation.generator.clone();
        log.runs.push(run);
        let file = AtomicFile::create(path)?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(file.file()), &log).map_err(
            |error| Error::Io {
                path: path.to_path_buf(),
                source: error.into(),
            },
        )?;
        file.commit()?;
        Ok(log)
    }
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
            lost: Vec::new(),
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
        assert_eq!(&rows[2][9], "0", "nothing lost");
        let candidates: Vec<Candidate> = serde_json::from_str(&rows[2][10]).unwrap();
        assert_eq!(candidates.len(), 1);
        let error_km: f64 = rows[0][5].parse().unwrap();
        assert!((error_km - 109.6).abs() < 0.5, "{error_km}");
    }

    #[test]
    fn a_results_file_without_the_lost_column_is_refused_untouched() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("old.csv");
        let old = format!(
            "{}\nx.jpg,1,2,1,2,0,retrieved:0,0.5,0,[]\n",
            COLUMNS_WITHOUT_LOST.join(",")
        );
        std::fs::write(&path, &old).unwrap();
        let error = ResultsFile::open(&path).unwrap_err().to_string();
        assert!(error.contains("no `lost` column"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
    }

    #[test]
    fn runs_add_up_in_the_usage_log() {
        use g3_core::{GeneratorDescription, LmmUsage, LossCause};
        let directory = tempfile::tempdir().unwrap();
        let output = directory.path().join("results.csv");
        let path = ResultsFile::usage_path(&output);
        assert_eq!(path, directory.path().join("results.usage.json"));
        assert_eq!(
            ResultsFile::errors_path(&output),
            directory.path().join("results.errors.csv")
        );
        let run = |lost: u64, tokens: u64| RunUsage {
            finished_unix_seconds: 1,
            photos_located: 2,
            photos_failed: u64::from(lost > 0),
            generation: GenerationReport {
                generator: GeneratorDescription::model("mock"),
                photos: 3,
                failed_photos: u64::from(lost > 0),
                answers_asked: 60,
                answers_obtained: 60 - lost,
                answers_rejected: 1,
                answers_lost: lost,
                lost_by_cause: [(LossCause::Unreachable, lost)]
                    .into_iter()
                    .filter(|&(_, count)| count > 0)
                    .collect(),
                usage: Some(LmmUsage {
                    prompt_tokens: tokens,
                    ..LmmUsage::default()
                }),
                halted: None,
            },
        };
        UsageLog::append(&path, run(20, 1000)).unwrap();
        let log = UsageLog::append(&path, run(0, 500)).unwrap();
        assert_eq!(log.runs.len(), 2);
        assert_eq!(log.total.answers_asked, 120);
        assert_eq!(log.total.answers_lost, 20);
        assert_eq!(log.total.lost_by_cause[&LossCause::Unreachable], 20);
        assert_eq!(log.total.usage.unwrap().prompt_tokens, 1500);
        let reread: UsageLog = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(reread, log);

        std::fs::write(&path, "not json").unwrap();
        let error = UsageLog::append(&path, run(0, 1)).unwrap_err().to_string();
        assert!(error.contains("not a g3 usage log"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
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

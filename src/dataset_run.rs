//! The pipeline over a whole dataset, resumable (`g3 run`, the ablation sweep): each
//! photo's prediction is appended to a [`ResultsFile`] as its batch finishes, so a stopped
//! run loses at most one batch and the next run skips what is done.
//!
//! A photo that fails gets no row: it is listed in `results.errors.csv` (`IMG_ID,reason,
//! error`) and retried by the next run. A photo never sent to the LMM because the pipeline
//! stopped asking (an unreachable server, a refused key) is neither a row nor a failure:
//! it is counted as not sent. What the LMM cost is added to `results.usage.json`.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::atomic::AtomicBool;
//! use g3::data::{FolderImageSource, MetadataOptions, MetadataReader};
//! use g3::dataset_run::{DatasetRunOptions, run_dataset};
//! use g3::Preset;
//!
//! let records = MetadataReader::open(Path::new("im2gps3k.csv"), MetadataOptions::default())?
//!     .collect::<Result<Vec<_>, _>>()?;
//! let images = FolderImageSource::new(Path::new("im2gps3k/"))?;
//! let summary = run_dataset(
//!     &records,
//!     &images,
//!     Path::new("results.csv"),
//!     &DatasetRunOptions::default(),
//!     &mut || Preset::G3.config().build(&mut |_| {}),
//!     &AtomicBool::new(false),
//!     &(),
//! )?;
//! println!("{} located, {} failed", summary.located, summary.failed());
//! # Ok::<(), g3::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use g3_core::Progress;
use g3_core::table::csv_field;
use g3_data::{ImageSource, MetadataRecord};
use serde::{Deserialize, Serialize};

use crate::pipeline::{GenerationReport, Pipeline};
use crate::{Error, Result, ResultsFile, RunUsage, UsageLog};

/// How a dataset is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetRunOptions {
    /// Photos per pipeline call (embedded and searched together, then located concurrently):
    /// also the most a stop loses.
    pub batch: usize,
}

impl Default for DatasetRunOptions {
    fn default() -> Self {
        DatasetRunOptions { batch: 16 }
    }
}

/// What a dataset run did.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRunSummary {
    /// Photos in the dataset (after any limit the caller applied).
    pub total: usize,
    /// Photos that already had a row when the run started.
    pub done_before: usize,
    /// Photos this run added to the results.
    pub located: u64,
    /// Photos that failed in this run, by reason (listed in [`errors_path`](Self::errors_path)).
    pub failed_by_reason: BTreeMap<String, usize>,
    /// This run's failures, one per line.
    pub errors_path: PathBuf,
    /// Photos not sent to the LMM because the pipeline stopped asking
    /// ([`halt`](Self::halt) says why); the next run tries them again.
    pub not_sent: usize,
    /// Why the pipeline stopped asking the LMM, if it did.
    pub halt: Option<String>,
    /// The run stopped early because `stop` was raised.
    pub stopped: bool,
    /// Rows in the results file at the end.
    pub finished: usize,
    /// What the LMM generator was asked, gave, lost and spent in this run.
    pub generation: Option<GenerationReport>,
    /// Why the usage log could not be updated, if it could not (the results are kept).
    pub usage_log_error: Option<String>,
}

impl DatasetRunSummary {
    /// Photos that failed in this run.
    pub fn failed(&self) -> usize {
        self.failed_by_reason.values().sum()
    }

    /// Photos left without a prediction: failed or not sent.
    pub fn missing(&self) -> usize {
        self.failed() + self.not_sent
    }
}

/// Runs the pipeline over `records` whose photos `images` holds, appending to the results
/// file at `output` (resumed when it exists). `build_pipeline` is called only when photos
/// remain to be located. Raising `stop` ends the run after the current batch, every
/// finished row kept.
pub fn run_dataset(
    records: &[MetadataRecord],
    images: &dyn ImageSource,
    output: &Path,
    options: &DatasetRunOptions,
    build_pipeline: &mut dyn FnMut() -> Result<Pipeline>,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<DatasetRunSummary> {
    if options.batch == 0 {
        return Err(Error::InvalidInput("the batch must be at least 1".into()));
    }
    let mut results = ResultsFile::open(output)?;
    let total = records.len();
    let pending: Vec<&MetadataRecord> = records
        .iter()
        .filter(|record| !results.is_finished(&record.image_id))
        .collect();
    let done_before = total - pending.len();
    if done_before > 0 {
        progress.notice(&format!(
            "g3 run: resuming {}: {done_before} of {total} photos already done",
            output.display()
        ));
    }
    let mut failures = FailureList::new(ResultsFile::errors_path(output));
    let mut summary = DatasetRunSummary {
        total,
        done_before,
        located: 0,
        failed_by_reason: BTreeMap::new(),
        errors_path: failures.path.clone(),
        not_sent: 0,
        halt: None,
        stopped: false,
        finished: 0,
        generation: None,
        usage_log_error: None,
    };
    if !pending.is_empty() {
        let pipeline = build_pipeline()?;
        progress.start("locating", "photos", Some(total as u64));
        progress.advance(done_before as u64);
        for (index, batch) in pending.chunks(options.batch).enumerate() {
            if stop.load(Ordering::SeqCst) {
                summary.stopped = true;
                break;
            }
            if pipeline.generation_halt().is_some() {
                summary.not_sent = pending.len() - index * options.batch;
                break;
            }
            let mut inputs = Vec::with_capacity(batch.len());
            let mut located = Vec::with_capacity(batch.len());
            for record in batch {
                match images.get(&record.image_id) {
                    Ok(input) => {
                        inputs.push(input);
                        located.push(*record);
                    }
                    Err(error) => {
                        let error = error.to_string();
                        tracing::warn!("{error}");
                        failures.record(&record.image_id, "the photo could not be read", &error)?;
                    }
                }
            }
            let outcomes = pipeline.locate_each_isolating(&inputs);
            for (record, outcome) in located.into_iter().zip(outcomes) {
                match outcome {
                    Ok(prediction) => {
                        results.append(record.location, &prediction)?;
                        summary.located += 1;
                    }
                    // Never sent: not a failure of the photo, and retried by the next run.
                    Err(Error::GenerationHalted { .. }) => summary.not_sent += 1,
                    Err(error) => {
                        tracing::warn!("{error}");
                        failures.record(&record.image_id, &error.reason(), &error.to_string())?;
                    }
                }
            }
            results.flush()?;
            progress.advance(batch.len() as u64);
            if failures.count() > 0 {
                progress.message(&format!("{} failed", failures.count()));
            }
        }
        progress.finish();
        failures.finish()?;
        summary.generation = pipeline.generation_report();
        if let Some(report) = &summary.generation {
            let run = RunUsage {
                finished_unix_seconds: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs()),
                photos_located: summary.located,
                photos_failed: failures.count() as u64,
                generation: report.clone(),
            };
            if let Err(error) = UsageLog::append(&ResultsFile::usage_path(output), run) {
                tracing::warn!("the usage log was not updated: {error}");
                summary.usage_log_error = Some(error.to_string());
            }
        }
        summary.halt = pipeline.generation_halt().map(ToString::to_string);
    }
    summary.failed_by_reason = failures.by_reason;
    summary.finished = results.finished_count();
    Ok(summary)
}

/// The photos that failed in this run: written to `results.errors.csv` as they fail, and
/// counted by reason. The file lists this run's failures only: it is replaced at the first
/// failure and removed when a run ends without any (those photos have rows now).
struct FailureList {
    path: PathBuf,
    file: Option<std::fs::File>,
    by_reason: BTreeMap<String, usize>,
}

impl FailureList {
    fn new(path: PathBuf) -> Self {
        FailureList {
            path,
            file: None,
            by_reason: BTreeMap::new(),
        }
    }

    fn count(&self) -> usize {
        self.by_reason.values().sum()
    }

    fn record(&mut self, image_id: &str, reason: &str, error: &str) -> Result<()> {
        let path = &self.path;
        let io_error = |source| Error::Io {
            path: path.clone(),
            source,
        };
        if self.file.is_none() {
            let mut file = std::fs::File::create(path).map_err(io_error)?;
            writeln!(file, "IMG_ID,reason,error").map_err(io_error)?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("created above");
        writeln!(
            file,
            "{},{},{}",
            csv_field(image_id),
            csv_field(reason),
            csv_field(error)
        )
        .map_err(io_error)?;
        *self.by_reason.entry(reason.to_owned()).or_default() += 1;
        Ok(())
    }

    /// Syncs the file, or removes a previous run's file when nothing failed.
    fn finish(&mut self) -> Result<()> {
        let io_error = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        match &self.file {
            Some(file) => file.sync_data().map_err(io_error),
            None => match std::fs::remove_file(&self.path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io_error(error)),
                _ => Ok(()),
            },
        }
    }
}

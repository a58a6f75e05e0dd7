//! `g3 run`: the pipeline over a whole dataset, resumable.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use g3::data::{
    DatasetKind, FolderImageSource, ImageSource, MetadataOptions, MetadataReader, MetadataRecord,
    TarShardImageSource,
};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};
use g3::{ResultsFile, RunUsage, UsageLog};

use crate::common::{csv_field, stop_on_ctrl_c};
use crate::pipeline_args::{PipelineArgs, build_pipeline, locate_batch, print_generation_summary};
use crate::terminal;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which dataset the metadata describes (csv: any file with IMG_ID, LAT, LON).
    #[arg(long, value_enum, required_unless_present = "print_config")]
    dataset: Option<DatasetArg>,

    /// The metadata CSV (IMG_ID, LAT, LON; other columns ignored).
    #[arg(
        long,
        value_name = "FILE.csv",
        required_unless_present = "print_config"
    )]
    metadata: Option<PathBuf>,

    /// The folder holding the photos, named by IMG_ID.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present_any = ["print_config", "archives"]
    )]
    images: Option<PathBuf>,

    /// A tar archive holding the photos instead, read in place by IMG_ID (repeatable; its
    /// index is saved beside the first).
    #[arg(long = "archive", value_name = "A.tar", conflicts_with = "images")]
    archives: Vec<PathBuf>,

    /// The results CSV: one row per photo, appended as photos finish. An existing file is
    /// resumed: its photos are skipped. Photos that fail get no row: they are listed in
    /// FILE.errors.csv and retried by the next run. What the LMM cost is added to
    /// FILE.usage.json.
    #[arg(
        long,
        value_name = "FILE.csv",
        required_unless_present = "print_config"
    )]
    output: Option<PathBuf>,

    #[command(flatten)]
    pipeline: PipelineArgs,

    /// Photos per pipeline call (embedded and searched together, then located concurrently).
    #[arg(long, default_value_t = 16)]
    batch: usize,

    /// Only the first N rows of the metadata.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DatasetArg {
    Im2gps3k,
    Yfcc4k,
    Csv,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.pipeline.config()?;
    if args.pipeline.print_config_if_asked(&config)? {
        return Ok(());
    }
    let (Some(dataset), Some(metadata), Some(output)) =
        (args.dataset, &args.metadata, &args.output)
    else {
        anyhow::bail!("--dataset, --metadata and --output are required");
    };
    let images: Box<dyn ImageSource> = match &args.images {
        Some(folder) => Box::new(FolderImageSource::new(folder)?),
        None => Box::new(TarShardImageSource::open_beside(&args.archives)?),
    };
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let mut results = ResultsFile::open(output)?;
    let options = match dataset {
        DatasetArg::Im2gps3k => MetadataOptions::for_dataset(DatasetKind::Im2gps3k),
        DatasetArg::Yfcc4k => MetadataOptions::for_dataset(DatasetKind::Yfcc4k),
        DatasetArg::Csv => MetadataOptions::default(),
    };
    let mut records = Vec::new();
    for record in MetadataReader::open(metadata, options)? {
        records.push(record?);
        if args.limit.is_some_and(|limit| records.len() >= limit) {
            break;
        }
    }
    let total = records.len();
    let pending: Vec<MetadataRecord> = records
        .into_iter()
        .filter(|record| !results.is_finished(&record.image_id))
        .collect();
    let done_before = total - pending.len();
    if done_before > 0 {
        terminal::notice(format!(
            "g3 run: resuming {}: {done_before} of {total} photos already done",
            output.display()
        ));
    }

    let mut failures = Failures::new(ResultsFile::errors_path(output));
    let mut not_sent = 0usize;
    let mut stopped = false;
    if !pending.is_empty() {
        let pipeline = build_pipeline(&config)?;
        let stop = stop_on_ctrl_c(
            "g3 run: stopping after this batch; finished rows are kept (Ctrl-C again to abort)",
        )?;
        let bar = terminal::progress_bar(
            total as u64,
            "{spinner} locating {bar:40} {pos}/{len} photos ({per_sec}, {eta}) {msg}",
        );
        bar.set_position(done_before as u64);
        let mut located_now = 0u64;
        for (index, batch) in pending.chunks(args.batch).enumerate() {
            if stop.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            if pipeline.generation_halt().is_some() {
                not_sent = pending.len() - index * args.batch;
                break;
            }
            let mut inputs = Vec::with_capacity(batch.len());
            let mut located = Vec::with_capacity(batch.len());
            for record in batch {
                match images.get(&record.image_id) {
                    Ok(input) => {
                        inputs.push(input);
                        located.push(record);
                    }
                    Err(error) => {
                        let error = error.to_string();
                        tracing::warn!("{error}");
                        failures.record(&record.image_id, "the photo could not be read", &error)?
                    }
                }
            }
            for (record, outcome) in located.into_iter().zip(locate_batch(&pipeline, &inputs)) {
                match outcome {
                    Ok(prediction) => {
                        results.append(record.location, &prediction)?;
                        located_now += 1;
                    }
                    // Never sent: not a failure of the photo, and retried by the next run.
                    Err(g3::Error::GenerationHalted { .. }) => not_sent += 1,
                    Err(error) => {
                        tracing::warn!("{error}");
                        failures.record(&record.image_id, &error.reason(), &error.to_string())?
                    }
                }
            }
            results.flush()?;
            bar.inc(batch.len() as u64);
            if failures.count() > 0 {
                bar.set_message(format!("{} failed", failures.count()));
            }
        }
        bar.finish_and_clear();
        failures.finish()?;
        if let Some(report) = pipeline.generation_report() {
            let usage_path = ResultsFile::usage_path(output);
            let run = RunUsage {
                finished_unix_seconds: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs()),
                photos_located: located_now,
                photos_failed: failures.count() as u64,
                generation: report.clone(),
            };
            print_generation_summary(&report);
            match UsageLog::append(&usage_path, run) {
                Ok(_) => {}
                Err(error) => tracing::warn!("the usage log was not updated: {error}"),
            }
        }
        failures.print_summary();
        if let Some(halt) = pipeline.generation_halt() {
            terminal::notice(format!(
                "g3 run: {halt}.\n  {not_sent} photos were not sent and have no row; fix the LMM server or the [generation.generator] settings and run the same command again."
            ));
        }
        if stopped {
            terminal::notice(format!(
                "g3 run: stopped; {} of {total} photos done. Run the same command to go on.",
                results.finished_count()
            ));
        }
    }
    let finished = results.finished_count();
    drop(results);
    if finished > 0 {
        let evaluation =
            evaluate_predictions_csv(output, None, &EvaluationOptions::default(), &mut |_| {})?;
        println!("{}", evaluation.report);
        terminal::notice(format!("wrote {}", output.display()));
    }
    if stopped {
        std::process::exit(130);
    }
    let missing = failures.count() + not_sent;
    if missing > 0 {
        anyhow::bail!(
            "{missing} of {total} photos have no prediction ({} failed, {not_sent} not sent to the LMM); the next run retries them",
            failures.count()
        );
    }
    Ok(())
}

/// The photos that failed in this run: written to `results.errors.csv` (`IMG_ID,reason,error`)
/// as they fail, and counted by reason for the summary. The file lists this run's failures
/// only: it is replaced at the first failure and removed when a run ends without any (those
/// photos have rows now).
struct Failures {
    path: PathBuf,
    file: Option<std::fs::File>,
    by_reason: BTreeMap<String, usize>,
}

impl Failures {
    fn new(path: PathBuf) -> Self {
        Failures {
            path,
            file: None,
            by_reason: BTreeMap::new(),
        }
    }

    fn count(&self) -> usize {
        self.by_reason.values().sum()
    }

    fn record(&mut self, image_id: &str, reason: &str, error: &str) -> anyhow::Result<()> {
        let cannot_write = || format!("cannot write {}", self.path.display());
        if self.file.is_none() {
            let mut file = std::fs::File::create(&self.path).with_context(cannot_write)?;
            writeln!(file, "IMG_ID,reason,error").with_context(cannot_write)?;
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
        .with_context(cannot_write)?;
        *self.by_reason.entry(reason.to_owned()).or_default() += 1;
        Ok(())
    }

    /// Syncs the file, or removes a previous run's file when nothing failed.
    fn finish(&mut self) -> anyhow::Result<()> {
        match &self.file {
            Some(file) => file
                .sync_data()
                .with_context(|| format!("cannot write {}", self.path.display())),
            None => match std::fs::remove_file(&self.path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    Err(error).with_context(|| format!("cannot remove {}", self.path.display()))
                }
                _ => Ok(()),
            },
        }
    }

    fn print_summary(&self) {
        if self.by_reason.is_empty() {
            return;
        }
        let mut lines = format!(
            "g3 run: {} photos failed and have no row (listed in {}; the next run retries them):",
            self.count(),
            self.path.display()
        );
        for (reason, count) in &self.by_reason {
            lines.push_str(&format!("\n  {count:>6}  {reason}"));
        }
        terminal::notice(lines);
    }
}

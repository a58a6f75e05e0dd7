//! `g3 run`: the pipeline over a whole dataset, resumable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{Args, ValueEnum};
use g3::data::{DatasetKind, MetadataOptions, MetadataReader, MetadataRecord};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};
use g3::{ImageInput, ResultsFile};
use indicatif::{ProgressBar, ProgressStyle};

use crate::common::stop_on_ctrl_c;
use crate::pipeline_args::{PipelineArgs, build_pipeline};

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
    #[arg(long, value_name = "DIR", required_unless_present = "print_config")]
    images: Option<PathBuf>,

    /// The results CSV: one row per photo, appended as photos finish. An existing file is
    /// resumed: its photos are skipped. Failures go to FILE.errors.csv and are retried by
    /// the next run.
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
    let (Some(dataset), Some(metadata), Some(images), Some(output)) =
        (args.dataset, &args.metadata, &args.images, &args.output)
    else {
        unreachable!("clap requires these without --print-config");
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
        eprintln!(
            "g3 run: resuming {}: {done_before} of {total} photos already done",
            output.display()
        );
    }

    let mut failures = 0usize;
    if !pending.is_empty() {
        let pipeline = build_pipeline(&config)?;
        let stop = stop_on_ctrl_c(
            "g3 run: stopping after this batch; finished rows are kept (Ctrl-C again to abort)",
        )?;
        let errors_path = errors_path(output);
        let mut errors = ErrorLog::new(&errors_path);
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} locating {bar:40} {pos}/{len} photos ({per_sec}, {eta}) {msg}",
            )
            .expect("the progress template is valid"),
        );
        bar.set_position(done_before as u64);
        for batch in pending.chunks(args.batch) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let mut inputs = Vec::with_capacity(batch.len());
            let mut located = Vec::with_capacity(batch.len());
            for record in batch {
                let path = images.join(&record.image_id);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        inputs.push(ImageInput::from_bytes(record.image_id.clone(), bytes));
                        located.push(record);
                    }
                    Err(error) => {
                        failures += 1;
                        errors.record(&record.image_id, &format!("{}: {error}", path.display()))?;
                    }
                }
            }
            let outcomes = match pipeline.locate_each(&inputs) {
                Ok(outcomes) => outcomes,
                // A batch-level failure (an undecodable photo stops the batched encoder):
                // go photo by photo, so only the bad ones fail.
                Err(_) => inputs
                    .iter()
                    .map(|input| {
                        pipeline
                            .locate_each(std::slice::from_ref(input))
                            .and_then(|mut one| one.remove(0))
                    })
                    .collect(),
            };
            for (record, outcome) in located.into_iter().zip(outcomes) {
                match outcome {
                    Ok(prediction) => results.append(record.location, &prediction)?,
                    Err(error) => {
                        failures += 1;
                        errors.record(&record.image_id, &error.to_string())?;
                    }
                }
            }
            results.flush()?;
            bar.inc(batch.len() as u64);
            if failures > 0 {
                bar.set_message(format!("{failures} failed"));
            }
        }
        bar.finish_and_clear();
        if failures > 0 {
            eprintln!(
                "g3 run: {failures} photos failed; see {} (they are retried by the next run)",
                errors_path.display()
            );
        }
        if stop.load(Ordering::SeqCst) {
            eprintln!(
                "g3 run: stopped; {} of {total} photos done. Run the same command to go on.",
                results.finished_count()
            );
            std::process::exit(130);
        }
    }
    drop(results);
    let evaluation =
        evaluate_predictions_csv(output, None, &EvaluationOptions::default(), &mut |_| {})?;
    println!("{}", evaluation.report);
    eprintln!("wrote {}", output.display());
    Ok(())
}

fn errors_path(output: &Path) -> PathBuf {
    let mut name = output.file_stem().unwrap_or_default().to_os_string();
    name.push(".errors.csv");
    output.with_file_name(name)
}

/// `IMG_ID,error` rows for the photos that failed, appended as they fail.
struct ErrorLog<'a> {
    path: &'a Path,
    file: Option<std::fs::File>,
}

impl<'a> ErrorLog<'a> {
    fn new(path: &'a Path) -> Self {
        ErrorLog { path, file: None }
    }

    fn record(&mut self, image_id: &str, error: &str) -> anyhow::Result<()> {
        if self.file.is_none() {
            let existed = self.path.is_file();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path)
                .with_context(|| format!("cannot write {}", self.path.display()))?;
            if !existed {
                writeln!(file, "IMG_ID,error")?;
            }
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        writeln!(
            file,
            "{},{}",
            crate::common::csv_field(image_id),
            crate::common::csv_field(error)
        )
        .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

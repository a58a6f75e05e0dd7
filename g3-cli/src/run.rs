//! `g3 run`: the pipeline over a whole dataset, resumable.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use g3::data::{
    DatasetKind, FolderImageSource, ImageSource, MetadataOptions, MetadataReader,
    TarShardImageSource,
};
use g3::dataset_run::{DatasetRunOptions, run_dataset};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};

use crate::common::stop_on_ctrl_c;
use crate::pipeline_args::{PipelineArgs, build_pipeline, print_generation_summary};
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
    let stop = stop_on_ctrl_c(
        "g3 run: stopping after this batch; finished rows are kept (Ctrl-C again to abort)",
    )?;
    let summary = run_dataset(
        &records,
        images.as_ref(),
        output,
        &DatasetRunOptions { batch: args.batch },
        &mut || build_pipeline(&config),
        &stop,
        &terminal::Bars::default(),
    )?;
    if let Some(report) = &summary.generation {
        print_generation_summary(report);
    }
    if summary.failed() > 0 {
        let mut lines = format!(
            "g3 run: {} photos failed and have no row (listed in {}; the next run retries them):",
            summary.failed(),
            summary.errors_path.display()
        );
        for (reason, count) in &summary.failed_by_reason {
            lines.push_str(&format!("\n  {count:>6}  {reason}"));
        }
        terminal::notice(lines);
    }
    if let Some(halt) = &summary.halt {
        terminal::notice(format!(
            "g3 run: {halt}.\n  {} photos were not sent and have no row; fix the LMM server or the [generation.generator] settings and run the same command again.",
            summary.not_sent
        ));
    }
    if summary.stopped {
        terminal::notice(format!(
            "g3 run: stopped; {} of {} photos done. Run the same command to go on.",
            summary.finished, summary.total
        ));
    }
    if summary.finished > 0 {
        let options = EvaluationOptions::default();
        let evaluation = evaluate_predictions_csv(output, None, &options, &mut |_| {})?;
        println!("{}", evaluation.report);
        // Country, region and city accuracy need the gazetteer; without it the run's rows
        // stand, and the user is told what is missing.
        match g3::data::load_place_labeller() {
            Ok(labeller) => println!(
                "{}",
                g3::data::place_accuracy_of_csv(output, &options.columns, &labeller)?
            ),
            Err(error) => terminal::notice(format!(
                "country, region and city accuracy left out: {error}"
            )),
        }
        terminal::notice(format!("wrote {}", output.display()));
    }
    if summary.stopped {
        std::process::exit(130);
    }
    if summary.missing() > 0 {
        anyhow::bail!(
            "{} of {} photos have no prediction ({} failed, {} not sent to the LMM); the next run retries them",
            summary.missing(),
            summary.total,
            summary.failed(),
            summary.not_sent
        );
    }
    Ok(())
}

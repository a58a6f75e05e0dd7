//! `g3 train`: Geo-alignment from cached CLIP features, resumable, with checkpoints per epoch.

use std::path::PathBuf;

use clap::Args;
use g3::align::training::run::{TrainingRunConfig, run_training};
use g3::cache_features::join_feature_parts;

use crate::common::stop_on_ctrl_c;
use crate::terminal;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run's settings (TOML). `g3 train --print-config` prints every setting with its
    /// default.
    #[arg(
        long,
        value_name = "train.toml",
        required_unless_present = "print_config"
    )]
    config: Option<PathBuf>,

    /// Start over even if the output directory holds a stopped run (which is otherwise
    /// resumed).
    #[arg(long)]
    restart: bool,

    /// Print a configuration file with every setting and its default, then exit.
    #[arg(long)]
    print_config: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", TrainingRunConfig::default().to_toml());
        return Ok(());
    }
    let config_path = args
        .config
        .expect("clap requires --config without --print-config");
    let config = TrainingRunConfig::from_toml_file(&config_path)?;
    let bars = terminal::Bars::default();
    // The shards of a split `g3 cache-features` run, joined once beside them.
    if !config.image_features.exists()
        && let Some(directory) = config.image_features.parent()
    {
        join_feature_parts(directory, &bars)?;
    }
    let stop = stop_on_ctrl_c(
        "g3 train: stopping after this step and saving the state (Ctrl-C again to abort)",
    )?;
    let outcome = run_training(&config, args.restart, &stop, &bars)?;
    match &outcome.final_model {
        Some(model) => eprintln!(
            "g3 train: finished {} epochs; model in {} (G3's keys: load with GpsEncoder::load_g3 \
             or AlignmentModel::load)",
            outcome.epochs,
            model.display()
        ),
        None => eprintln!(
            "g3 train: stopped at epoch {} batch {}; the state is in {}. Run the same command \
             to resume.",
            outcome.progress.epoch + 1,
            outcome.progress.batch,
            outcome.state.display()
        ),
    }
    Ok(())
}

//! The options every pipeline command shares: which configuration, database and device.

use std::path::PathBuf;

use clap::Args;
use g3::align::{ComputeDevice, Precision};
use g3::pipeline::{GenerationReport, Pipeline, PipelineConfig, Preset};

use crate::terminal;

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// A pipeline configuration (TOML). Its `preset` key (default g3) gives every setting the
    /// file leaves out; `--print-config` shows them all.
    #[arg(long, value_name = "FILE.toml", conflicts_with = "preset")]
    config: Option<PathBuf>,

    /// Start from a preset instead of a file: g3, g3-no-align, g3-no-diversification,
    /// g3-no-verification, img2loc, geoclip, knn.
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,

    /// The vector database (`g3 index build`), overriding the configuration's.
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,

    /// Where models run, overriding the configuration's: cpu, flex (build with --features
    /// flex) or wgpu (build with --features wgpu).
    #[arg(long)]
    device: Option<ComputeDevice>,

    /// The image encoders' floating-point format, overriding the configuration's: f32, or
    /// f16/bf16 on a GPU (half the memory traffic; tensor cores with --features vulkan).
    #[arg(long)]
    precision: Option<Precision>,

    /// Change one setting: a dotted key and a TOML value (`--set models.clip=/models/clip`,
    /// `--set pool.retrieved_candidates=3`). Repeatable; applied after --config/--preset.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,

    /// Print the complete configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl PipelineArgs {
    /// The configuration these options describe.
    pub fn config(&self) -> anyhow::Result<PipelineConfig> {
        let mut config = match (&self.config, &self.preset) {
            (Some(path), _) => PipelineConfig::from_toml_file(path)?,
            (None, Some(name)) => Preset::from_name(name)?.config(),
            (None, None) => Preset::G3.config(),
        };
        for setting in &self.settings {
            let Some((key, value)) = setting.split_once('=') else {
                anyhow::bail!("--set {setting}: expected KEY=VALUE");
            };
            config = config.with_setting(key.trim(), value.trim())?;
        }
        if let Some(database) = &self.db {
            config.database = Some(database.clone());
        }
        if let Some(device) = self.device {
            config.models.device = device;
        }
        if let Some(precision) = self.precision {
            config.models.precision = precision;
        }
        Ok(config)
    }

    /// Prints the configuration when asked to; true when the command should stop there.
    pub fn print_config_if_asked(&self, config: &PipelineConfig) -> anyhow::Result<bool> {
        if self.print_config {
            print!("{}", config.to_toml()?);
        }
        Ok(self.print_config)
    }
}

/// Loads the pipeline with a spinner naming each step, then says when no LMM will be asked.
pub fn build_pipeline(config: &PipelineConfig) -> g3::Result<Pipeline> {
    let spinner = terminal::spinner("{spinner} {msg} ({elapsed})");
    let pipeline = config.build(&mut |step| spinner.set_message(step.to_owned()));
    spinner.finish_and_clear();
    let pipeline = pipeline?;
    if let Some(notice) = pipeline
        .generation_report()
        .and_then(|report| report.generator.notice)
    {
        terminal::notice(format!("note: {notice}"));
    }
    Ok(pipeline)
}

/// The end-of-command account of the LMM: what it was asked, gave, lost and cost. Printed
/// for generators that ask a model (the offline one was announced at the start).
pub fn print_generation_summary(report: &GenerationReport) {
    if report.generator.asks_model {
        terminal::notice(format!("LMM usage:\n{}", indent(&report.to_string())));
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

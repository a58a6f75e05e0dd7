//! A whole Geo-alignment training run from one settings file (`g3 train`): the feature
//! cache opened, the starting model chosen, a stopped run resumed from its state (or started
//! over), a checkpoint and the state saved after every epoch, each step's losses appended
//! to `metrics.jsonl`, and the final model written as G3's keys.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use g3_align::training::run::{TrainingRunConfig, run_training};
//!
//! let config = TrainingRunConfig::from_toml_file("train.toml".as_ref())?;
//! let outcome = run_training(&config, false, &AtomicBool::new(false), &())?;
//! println!("model in {}", outcome.final_model.unwrap().display());
//! # Ok::<(), g3_align::AlignError>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::prelude::Device;
use g3_core::Progress;
use g3_core::assets::Asset;
use serde::{Deserialize, Serialize};

use super::{
    AlignmentData, AlignmentModel, AlignmentModelConfig, FeatureCache, StepControl, Trainer,
    TrainingConfig, TrainingProgress,
};
use crate::{AlignError, ComputeDevice};

/// A training run's settings (`train.toml`). Relative paths in a file are relative to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingRunConfig {
    /// CLIP's projected image features, float32 .npy [rows, 768].
    pub image_features: PathBuf,
    /// CLIP's projected text features of each row's description, float32 .npy [rows, 768];
    /// needed by the image-gps-text variant.
    pub text_features: Option<PathBuf>,
    /// A CSV with each row's location (MP16's metadata, in the features' row order).
    pub locations: PathBuf,
    /// Latitude column of `locations`.
    pub latitude_column: String,
    /// Longitude column of `locations`.
    pub longitude_column: String,
    /// Where checkpoints, the resumable state and the metrics log go.
    pub output: PathBuf,
    /// Start from an existing G3 checkpoint (g3.pth or a safetensors file from g3 train)
    /// instead of fresh heads; the model settings below are then read from the file.
    pub initial_model: Option<PathBuf>,
    /// The GPS encoder's starting weights: "geoclip" (GeoCLIP's pretrained encoder, as G3;
    /// fetched by scripts/fetch-assets.sh), "fresh", or a path to a weights file.
    pub location_encoder: String,
    /// Where to train: cpu, wgpu (build with --features wgpu) or flex.
    pub device: ComputeDevice,
    /// Seeds the fresh weights.
    pub model_seed: u64,
    /// The model's sizes.
    pub model: AlignmentModelConfig,
    /// The optimisation.
    pub training: TrainingConfig,
}

impl Default for TrainingRunConfig {
    fn default() -> Self {
        TrainingRunConfig {
            image_features: PathBuf::from("features/image_features.npy"),
            text_features: Some(PathBuf::from("features/text_features.npy")),
            locations: PathBuf::from("features/metadata.csv"),
            latitude_column: "LAT".to_owned(),
            longitude_column: "LON".to_owned(),
            output: PathBuf::from("runs/g3"),
            initial_model: None,
            location_encoder: "geoclip".to_owned(),
            device: ComputeDevice::Cpu,
            model_seed: 0,
            model: AlignmentModelConfig::default(),
            training: TrainingConfig::default(),
        }
    }
}

impl TrainingRunConfig {
    /// Reads a settings file, resolving its relative paths against its directory and
    /// checking the settings.
    pub fn from_toml_file(path: &Path) -> Result<Self, AlignError> {
        let config_error = |reason: String| AlignError::Config {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|source| AlignError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut file: TrainingRunConfig = toml::from_str(&text)
            .map_err(|error| config_error(format!("invalid settings: {error}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut file.image_features);
        if let Some(text) = &mut file.text_features {
            resolve(text);
        }
        resolve(&mut file.locations);
        resolve(&mut file.output);
        if let Some(initial) = &mut file.initial_model {
            resolve(initial);
        }
        if !matches!(file.location_encoder.as_str(), "geoclip" | "fresh") {
            let mut weights = PathBuf::from(&file.location_encoder);
            resolve(&mut weights);
            file.location_encoder = weights.to_string_lossy().into_owned();
        }
        file.training
            .validate()
            .map_err(|error| config_error(format!("[training]: {error}")))?;
        if file.training.variant.uses_text() && file.text_features.is_none() {
            return Err(config_error(
                "the image-gps-text variant needs text_features".into(),
            ));
        }
        Ok(file)
    }

    /// The settings as a TOML file with every setting (`g3 train --print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the settings serialize")
    }
}

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingOutcome {
    /// Where the run stands: epochs and batches done.
    pub progress: TrainingProgress,
    /// Epochs the run trains in all.
    pub epochs: usize,
    /// The run stopped early (`stop` was raised); its state is saved for a resume.
    pub stopped: bool,
    /// The resumable state's directory.
    pub state: PathBuf,
    /// The trained model (G3's keys), once every epoch is done.
    pub final_model: Option<PathBuf>,
}

/// One line of `metrics.jsonl`.
#[derive(Serialize)]
struct MetricsLine {
    step: u64,
    epoch: usize,
    batch: usize,
    loss: f64,
    image_text_loss: Option<f64>,
    image_gps_loss: f64,
    learning_rate: f64,
    samples_per_second: f64,
}

/// Trains as `config` says, resuming a stopped run in its output directory unless
/// `restart`. Raising `stop` ends the run after the current step, its state saved.
pub fn run_training(
    config: &TrainingRunConfig,
    restart: bool,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<TrainingOutcome, AlignError> {
    let uses_text = config.training.variant.uses_text();
    let text_features = match (uses_text, &config.text_features) {
        (true, Some(path)) => Some(path.as_path()),
        (true, None) => {
            return Err(AlignError::InvalidConfig {
                reason: "the image-gps-text variant needs text_features".into(),
            });
        }
        (false, _) => None,
    };
    let data = FeatureCache::open(
        &config.image_features,
        text_features,
        &config.locations,
        &config.latitude_column,
        &config.longitude_column,
    )?;
    progress.notice(&format!(
        "g3 train: {} rows of {}-d features{}",
        data.len(),
        data.feature_size(),
        if uses_text { " with text" } else { "" }
    ));

    let device = config.device.to_device()?.autodiff();
    let model = starting_model(config, &device)?;
    if model.feature_size() != data.feature_size() {
        return Err(AlignError::InvalidConfig {
            reason: format!(
                "the model takes {}-d features, the cache holds {}-d ones",
                model.feature_size(),
                data.feature_size()
            ),
        });
    }

    let state = config.output.join("state");
    let checkpoints = config.output.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).map_err(|source| AlignError::Io {
        path: checkpoints.clone(),
        source,
    })?;
    let mut trainer = resume_or_start(config, restart, &state, model, &device, progress)?;

    let batches_per_epoch = data.len().div_ceil(trainer.config().batch_size);
    let total_steps = (batches_per_epoch * trainer.config().epochs) as u64;
    progress.start("training", "steps", Some(total_steps));
    let mut step = trainer.progress().steps;
    progress.advance(step);
    let metrics_path = config.output.join("metrics.jsonl");
    let metrics_error = |source| AlignError::Io {
        path: metrics_path.clone(),
        source,
    };
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(metrics_error)?;

    while !trainer.is_finished() {
        let mut last_step = Instant::now();
        let mut write_error = None;
        let finished = trainer.train_epoch(&data, &mut |report| {
            let seconds = last_step.elapsed().as_secs_f64();
            last_step = Instant::now();
            let samples_per_second = report.rows as f64 / seconds.max(1e-9);
            step += 1;
            progress.advance(1);
            progress.message(&format!(
                "epoch {} loss {:.4} lr {:.2e} {:.0} samples/s",
                report.epoch + 1,
                report.loss,
                report.learning_rate,
                samples_per_second
            ));
            let line = MetricsLine {
                step,
                epoch: report.epoch,
                batch: report.batch,
                loss: report.loss,
                image_text_loss: report.image_text_loss,
                image_gps_loss: report.image_gps_loss,
                learning_rate: report.learning_rate,
                samples_per_second,
            };
            let written = serde_json::to_string(&line)
                .map_err(std::io::Error::other)
                .and_then(|json| writeln!(metrics, "{json}"));
            if let Err(error) = written {
                write_error = Some(error);
                return StepControl::Stop;
            }
            if stop.load(Ordering::SeqCst) {
                StepControl::Stop
            } else {
                StepControl::Continue
            }
        })?;
        if let Some(error) = write_error {
            trainer.save_state(&state)?;
            return Err(metrics_error(error));
        }
        if finished {
            let epoch = trainer.progress().epoch;
            let checkpoint = checkpoints.join(format!("g3-epoch{epoch:02}.safetensors"));
            trainer.model().save_checkpoint(&checkpoint)?;
            trainer.save_state(&state)?;
            progress.notice(&format!(
                "epoch {epoch}: checkpoint {}",
                checkpoint.display()
            ));
        }
        if stop.load(Ordering::SeqCst) {
            trainer.save_state(&state)?;
            progress.finish();
            return Ok(TrainingOutcome {
                progress: trainer.progress(),
                epochs: trainer.config().epochs,
                stopped: true,
                state,
                final_model: None,
            });
        }
    }
    progress.finish();
    let final_model = config.output.join("g3-aligned.safetensors");
    trainer.model().save_checkpoint(&final_model)?;
    Ok(TrainingOutcome {
        progress: trainer.progress(),
        epochs: trainer.config().epochs,
        stopped: false,
        state,
        final_model: Some(final_model),
    })
}

/// The resume policy: a stopped run in `state` is resumed (its settings kept, only the
/// epoch count may change) unless `restart`; a run of another variant is refused.
fn resume_or_start(
    config: &TrainingRunConfig,
    restart: bool,
    state: &Path,
    model: AlignmentModel,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Trainer, AlignError> {
    let resumable = state.join("progress.json").is_file();
    if !resumable || restart {
        return Trainer::new(config.training.clone(), model, device);
    }
    let trainer = Trainer::resume(state, model, Some(config.training.epochs), device)?;
    if trainer.config().variant != config.training.variant {
        return Err(AlignError::InvalidConfig {
            reason: format!(
                "{} holds a run of another variant; pass --restart to start over",
                state.display()
            ),
        });
    }
    if trainer.config() != &config.training {
        progress.notice(
            "g3 train: [training] differs from the stopped run's settings, which are kept \
             (only epochs may change); pass --restart to train with the new ones",
        );
    }
    let done = trainer.progress();
    progress.notice(&format!(
        "g3 train: resuming at epoch {} batch {} (step {})",
        done.epoch + 1,
        done.batch,
        done.steps
    ));
    Ok(trainer)
}

/// The model a new run starts from (a resumed run replaces its weights).
fn starting_model(
    config: &TrainingRunConfig,
    device: &Device,
) -> Result<AlignmentModel, AlignError> {
    if let Some(initial) = &config.initial_model {
        return AlignmentModel::load(initial, device);
    }
    let model = config.model.init(device, config.model_seed)?;
    match config.location_encoder.as_str() {
        "fresh" => Ok(model),
        "geoclip" => {
            let weights = Asset::GEOCLIP_LOCATION_ENCODER.require().map_err(|error| {
                AlignError::ModelNotFound {
                    name: "GeoCLIP's location encoder".into(),
                    help: format!(
                        "{error}; it starts G3's training: fetch it with scripts/fetch-assets.sh, or set location_encoder = \"fresh\""
                    ),
                }
            })?;
            model.load_location_encoder(&weights)
        }
        path => model.load_location_encoder(Path::new(path)),
    }
}

//! `g3 train`: Geo-alignment from cached CLIP features, resumable, with checkpoints per epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use g3::FeatureCache;
use g3::align::ComputeDevice;
use g3::align::training::{
    AlignmentData, AlignmentModel, AlignmentModelConfig, StepControl, Trainer, TrainingConfig,
};
use g3::core::assets::Asset;
use serde::{Deserialize, Serialize};

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

/// The contents of `train.toml`. Relative paths are relative to the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TrainFile {
    /// CLIP's projected image features, float32 .npy [rows, 768].
    image_features: PathBuf,
    /// CLIP's projected text features of each row's description, float32 .npy [rows, 768];
    /// needed by the image-gps-text variant.
    text_features: Option<PathBuf>,
    /// A CSV with each row's location (MP16's metadata, in the features' row order).
    locations: PathBuf,
    /// Latitude column of `locations`.
    latitude_column: String,
    /// Longitude column of `locations`.
    longitude_column: String,
    /// Where checkpoints, the resumable state and the metrics log go.
    output: PathBuf,
    /// Start from an existing G3 checkpoint (g3.pth or a safetensors file from g3 train)
    /// instead of fresh heads; the model settings below are then read from the file.
    initial_model: Option<PathBuf>,
    /// The GPS encoder's starting weights: "geoclip" (GeoCLIP's pretrained encoder, as G3;
    /// fetched by scripts/fetch-assets.sh), "fresh", or a path to a weights file.
    location_encoder: String,
    /// Where to train: cpu, wgpu (build with --features wgpu) or flex.
    device: ComputeDevice,
    /// Seeds the fresh weights.
    model_seed: u64,
    model: AlignmentModelConfig,
    training: TrainingConfig,
}

impl Default for TrainFile {
    fn default() -> Self {
        TrainFile {
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

impl TrainFile {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: TrainFile = toml::from_str(&text)
            .with_context(|| format!("{}: invalid settings", path.display()))?;
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
            .with_context(|| format!("{}: [training]", path.display()))?;
        Ok(file)
    }
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

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", toml::to_string_pretty(&TrainFile::default())?);
        return Ok(());
    }
    let config_path = args
        .config
        .expect("clap requires --config without --print-config");
    let settings = TrainFile::read(&config_path)?;
    let uses_text = settings.training.variant.uses_text();
    let text_features = if uses_text {
        Some(settings.text_features.as_deref().with_context(|| {
            format!(
                "{}: the image-gps-text variant needs text_features",
                config_path.display()
            )
        })?)
    } else {
        None
    };
    // The shards of a split `g3 cache-features` run, joined once beside them.
    if !settings.image_features.exists()
        && let Some(directory) = settings.image_features.parent()
    {
        g3::cache_features::join_feature_parts(directory, &crate::terminal::Bars::default())?;
    }
    let data = FeatureCache::open(
        &settings.image_features,
        text_features,
        &settings.locations,
        &settings.latitude_column,
        &settings.longitude_column,
    )?;
    eprintln!(
        "g3 train: {} rows of {}-d features{}",
        data.len(),
        data.feature_size(),
        if uses_text { " with text" } else { "" }
    );

    let device = settings.device.to_device()?.autodiff();
    let model = starting_model(&settings, &device)?;
    if model.feature_size() != data.feature_size() {
        bail!(
            "the model takes {}-d features, the cache holds {}-d ones",
            model.feature_size(),
            data.feature_size()
        );
    }

    let state = settings.output.join("state");
    let checkpoints = settings.output.join("checkpoints");
    std::fs::create_dir_all(&checkpoints)
        .with_context(|| format!("creating {}", checkpoints.display()))?;
    let resumable = state.join("progress.json").is_file();
    let mut trainer = if resumable && !args.restart {
        let trainer = Trainer::resume(&state, model, Some(settings.training.epochs), &device)?;
        if trainer.config().variant != settings.training.variant {
            bail!(
                "{} holds a run of another variant; pass --restart to start over",
                state.display()
            );
        }
        if trainer.config() != &settings.training {
            eprintln!(
                "g3 train: [training] differs from the stopped run's settings, which are kept \
                 (only epochs may change); pass --restart to train with the new ones"
            );
        }
        let progress = trainer.progress();
        eprintln!(
            "g3 train: resuming at epoch {} batch {} (step {})",
            progress.epoch + 1,
            progress.batch,
            progress.steps
        );
        trainer
    } else {
        Trainer::new(settings.training.clone(), model, &device)?
    };

    let stop = stop_on_ctrl_c(
        "g3 train: stopping after this step and saving the state (Ctrl-C again to abort)",
    )?;

    let batches_per_epoch = data.len().div_ceil(trainer.config().batch_size);
    let total_steps = (batches_per_epoch * trainer.config().epochs) as u64;
    let bar = terminal::progress_bar(
        total_steps,
        "{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}",
    );
    bar.set_position(trainer.progress().steps);
    let metrics_path = settings.output.join("metrics.jsonl");
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;

    while !trainer.is_finished() {
        let mut last_step = Instant::now();
        let mut write_error = None;
        let finished = trainer.train_epoch(&data, &mut |report| {
            let seconds = last_step.elapsed().as_secs_f64();
            last_step = Instant::now();
            let samples_per_second = report.rows as f64 / seconds.max(1e-9);
            bar.inc(1);
            bar.set_message(format!(
                "epoch {} loss {:.4} lr {:.2e} {:.0} samples/s",
                report.epoch + 1,
                report.loss,
                report.learning_rate,
                samples_per_second
            ));
            let line = MetricsLine {
                step: bar.position(),
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
            return Err(error).with_context(|| format!("writing {}", metrics_path.display()));
        }
        if finished {
            let epoch = trainer.progress().epoch;
            let checkpoint = checkpoints.join(format!("g3-epoch{epoch:02}.safetensors"));
            trainer.model().save_checkpoint(&checkpoint)?;
            trainer.save_state(&state)?;
            bar.println(format!(
                "epoch {epoch}: checkpoint {}",
                checkpoint.display()
            ));
        }
        if stop.load(Ordering::SeqCst) {
            trainer.save_state(&state)?;
            bar.abandon();
            let progress = trainer.progress();
            eprintln!(
                "g3 train: stopped at epoch {} batch {}; the state is in {}. Run the same command \
                 to resume.",
                progress.epoch + 1,
                progress.batch,
                state.display()
            );
            return Ok(());
        }
    }
    bar.finish();
    let final_path = settings.output.join("g3-aligned.safetensors");
    trainer.model().save_checkpoint(&final_path)?;
    eprintln!(
        "g3 train: finished {} epochs; model in {} (G3's keys: load with GpsEncoder::load_g3 \
         or AlignmentModel::load)",
        trainer.config().epochs,
        final_path.display()
    );
    Ok(())
}

/// The model a new run starts from (a resumed run replaces its weights).
fn starting_model(
    settings: &TrainFile,
    device: &g3::align::Device,
) -> anyhow::Result<AlignmentModel> {
    if let Some(initial) = &settings.initial_model {
        return AlignmentModel::load(initial, device)
            .with_context(|| format!("loading the initial model {}", initial.display()));
    }
    let model = settings.model.init(device, settings.model_seed)?;
    Ok(match settings.location_encoder.as_str() {
        "fresh" => model,
        "geoclip" => {
            let weights = Asset::GEOCLIP_LOCATION_ENCODER.require().context(
                "GeoCLIP's location encoder starts G3's training; fetch it with \
                 scripts/fetch-assets.sh, or set location_encoder = \"fresh\"",
            )?;
            model.load_location_encoder(&weights)?
        }
        path => model.load_location_encoder(Path::new(path))?,
    })
}

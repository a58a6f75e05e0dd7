//! A training run saved to a directory and resumed from it: the model and optimizer state
//! (burn's burnpack format) and `progress.json` (settings and position), written so that an
//! interruption at any point leaves a loadable state.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;
use g3_core::atomic::{AtomicFile, write_atomically};
use serde::{Deserialize, Serialize};

use super::model::AlignmentModel;
use super::trainer::{Trainer, TrainingConfig, TrainingProgress};
use crate::error::AlignError;

/// Names of the files of a saved training state, inside its directory.
const PROGRESS_FILE: &str = "progress.json";

/// The contents of `progress.json`: everything but the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedProgress {
    format: u32,
    config: TrainingConfig,
    progress: TrainingProgress,
    model_file: String,
    optimizer_file: String,
}

const STATE_FORMAT: u32 = 1;

impl Trainer {
    /// Writes everything a resumed run needs into `directory`: the model and optimizer
    /// state (burn's burnpack format, which keeps the parameter identities the optimizer
    /// state refers to) and `progress.json` (settings and position). Files are written
    /// under new names, then `progress.json` is replaced atomically and the old files
    /// removed, so an interruption at any point leaves a loadable state.
    pub fn save_state(&self, directory: &Path) -> Result<(), AlignError> {
        std::fs::create_dir_all(directory).map_err(|source| AlignError::Io {
            path: directory.to_path_buf(),
            source,
        })?;
        let stem = format!(
            "epoch{:03}-batch{:06}-step{}",
            self.progress.epoch, self.progress.batch, self.progress.steps
        );
        let model_file = format!("model-{stem}.bpk");
        let optimizer_file = format!("optimizer-{stem}.bpk");
        let previous = read_progress(directory).ok();

        let model_path = directory.join(&model_file);
        let temporary = AtomicFile::create(&model_path)?;
        let mut store = BurnpackStore::from_file(temporary.temporary_path())
            .auto_extension(false)
            .overwrite(true);
        self.model()
            .save_into(&mut store)
            .map_err(|error| state_error(&model_path, error))?;
        temporary.commit()?;

        let optimizer_path = directory.join(&optimizer_file);
        let temporary = AtomicFile::create(&optimizer_path)?;
        self.optimizer
            .save(temporary.temporary_path())
            .map_err(|error| state_error(&optimizer_path, error))?;
        temporary.commit()?;

        let saved = SavedProgress {
            format: STATE_FORMAT,
            config: self.config.clone(),
            progress: self.progress,
            model_file,
            optimizer_file,
        };
        let progress_path = directory.join(PROGRESS_FILE);
        let json = serde_json::to_vec_pretty(&saved).map_err(|error| AlignError::Config {
            path: progress_path.clone(),
            reason: error.to_string(),
        })?;
        write_atomically(&progress_path, &json)?;

        if let Some(previous) = previous {
            for old in [previous.model_file, previous.optimizer_file] {
                if old != saved.model_file && old != saved.optimizer_file {
                    let _ = std::fs::remove_file(directory.join(old));
                }
            }
        }
        Ok(())
    }

    /// Resumes a run saved by [`Trainer::save_state`]. `model` must have the saved model's
    /// shapes (its values are replaced); typically it is the run's starting model. The
    /// settings come from the state, except `epochs`, which `epochs` may raise to train
    /// longer.
    pub fn resume(
        directory: &Path,
        model: AlignmentModel,
        epochs: Option<usize>,
        device: &Device,
    ) -> Result<Self, AlignError> {
        let saved = read_progress(directory)?;
        let mut config = saved.config;
        if let Some(epochs) = epochs {
            config.epochs = epochs;
        }
        let mut trainer = Trainer::new(config, model, device)?;
        let model_path = directory.join(&saved.model_file);
        if !model_path.is_file() {
            return Err(AlignError::Io {
                path: model_path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the model state named by progress.json is missing",
                ),
            });
        }
        // Read whole: a store opened by path may hand out tensors that read the file lazily
        // (burn's flex backend does), and the next save removes this file.
        let mut store = BurnpackStore::from_bytes(Some(read_bytes(&model_path)?)).validate(true);
        let mut model = trainer.model.take().expect("just built");
        let result = model
            .load_from(&mut store)
            .map_err(|error| state_error(&model_path, error))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(AlignError::KeyMismatch {
                path: model_path,
                missing: result.missing.into_iter().map(|(key, _)| key).collect(),
                unexpected: result.unused,
                mis_shaped: result.errors.iter().map(ToString::to_string).collect(),
            });
        }
        trainer.model = Some(model.fork(device));
        let optimizer_path = directory.join(&saved.optimizer_file);
        if !optimizer_path.is_file() {
            return Err(AlignError::Io {
                path: optimizer_path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the optimizer state named by progress.json is missing",
                ),
            });
        }
        trainer.optimizer = trainer
            .config
            .optimizer()
            .from_bytes(read_bytes(&optimizer_path)?)
            .map_err(|error| state_error(&optimizer_path, error))?;
        trainer.progress = saved.progress;
        Ok(trainer)
    }

    /// The position saved in a state directory, without loading it.
    pub fn saved_progress(directory: &Path) -> Result<TrainingProgress, AlignError> {
        read_progress(directory).map(|saved| saved.progress)
    }
}

fn read_progress(directory: &Path) -> Result<SavedProgress, AlignError> {
    let path: PathBuf = directory.join(PROGRESS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| AlignError::Io {
        path: path.clone(),
        source,
    })?;
    let saved: SavedProgress = serde_json::from_str(&text).map_err(|error| AlignError::Config {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    if saved.format != STATE_FORMAT {
        return Err(AlignError::Config {
            path,
            reason: format!(
                "training state format {} is not the supported {STATE_FORMAT}",
                saved.format
            ),
        });
    }
    Ok(saved)
}

/// A state file's bytes, in memory.
fn read_bytes(path: &Path) -> Result<Bytes, AlignError> {
    std::fs::read(path)
        .map(Bytes::from_bytes_vec)
        .map_err(|source| AlignError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn state_error(path: &Path, error: impl std::fmt::Display) -> AlignError {
    AlignError::Checkpoint {
        path: path.to_path_buf(),
        source: error.to_string().into(),
    }
}

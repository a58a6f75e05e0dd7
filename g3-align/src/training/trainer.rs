//! The optimisation loop: AdamW with a per-epoch step decay, seeded data order, and state
//! files from which a stopped run resumes exactly.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{AlignmentData, FeatureRows};
use crate::error::AlignError;
use crate::location::{MercatorProjection, Projection};
use crate::training::model::{AlignmentBatch, AlignmentModel, AlignmentVariant};

/// Settings of a Geo-alignment run. The defaults are G3's (`run_G3.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Which alignments the loss trains.
    pub variant: AlignmentVariant,
    /// Passes over the data (10).
    pub epochs: usize,
    /// Images per optimisation step (256). The last batch of an epoch may be smaller, as
    /// PyTorch's `DataLoader` leaves it.
    pub batch_size: usize,
    /// AdamW's learning rate in the first epoch (3e-5).
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay (1e-6).
    pub weight_decay: f64,
    /// Factor applied to the learning rate after each epoch (StepLR's gamma, 0.87).
    pub learning_rate_decay: f64,
    /// AdamW's β₁ (0.9, PyTorch's default).
    pub adam_beta1: f64,
    /// AdamW's β₂ (0.999).
    pub adam_beta2: f64,
    /// AdamW's ε (1e-8; burn's own default is 1e-5).
    pub adam_epsilon: f64,
    /// Visit the rows in a new seeded order each epoch. G3's reference does not shuffle
    /// (`DataLoader(shuffle=False)`), hence the default `false`.
    pub shuffle: bool,
    /// Seeds the data order (and nothing else: initial weights come with the model).
    pub seed: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            variant: AlignmentVariant::ImageGpsText,
            epochs: 10,
            batch_size: 256,
            learning_rate: 3e-5,
            weight_decay: 1e-6,
            learning_rate_decay: 0.87,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            shuffle: false,
            seed: 0,
        }
    }
}

impl TrainingConfig {
    /// Checks that every setting is usable, naming the first that is not.
    pub fn validate(&self) -> Result<(), AlignError> {
        let fraction = |value: f64| (0.0..1.0).contains(&value);
        let problem = if self.epochs == 0 {
            Some("epochs must be at least 1")
        } else if self.batch_size == 0 {
            Some("batch_size must be at least 1")
        } else if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            Some("learning_rate must be a positive number")
        } else if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            Some("weight_decay must be zero or positive")
        } else if !(self.learning_rate_decay.is_finite() && self.learning_rate_decay > 0.0) {
            Some("learning_rate_decay must be a positive number")
        } else if !fraction(self.adam_beta1) || !fraction(self.adam_beta2) {
            Some("adam_beta1 and adam_beta2 must lie in [0, 1)")
        } else if !(self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0) {
            Some("adam_epsilon must be a positive number")
        } else {
            None
        };
        match problem {
            Some(reason) => Err(AlignError::InvalidConfig {
                reason: format!("training: {reason}"),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_1(self.adam_beta1 as f32)
            .with_beta_2(self.adam_beta2 as f32)
            .with_epsilon(self.adam_epsilon as f32)
            .with_weight_decay(self.weight_decay as f32)
            .init()
    }
}

/// Where a run stands: the next batch to train.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingProgress {
    /// Epochs finished.
    pub epoch: usize,
    /// Batches of the current epoch finished.
    pub batch: usize,
    /// Optimisation steps taken since the start.
    pub steps: u64,
}

/// What one optimisation step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Epoch of the step (from 0).
    pub epoch: usize,
    /// Batch of the step within its epoch (from 0).
    pub batch: usize,
    /// Batches in this epoch.
    pub batches_in_epoch: usize,
    /// Rows in the batch.
    pub rows: usize,
    /// The loss before the step.
    pub loss: f64,
    /// Its image–text term, when trained.
    pub image_text_loss: Option<f64>,
    /// Its image–GPS term.
    pub image_gps_loss: f64,
    /// The learning rate the step used.
    pub learning_rate: f64,
}

/// Whether a loop goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepControl {
    /// Train the next batch.
    Continue,
    /// Stop after this step (the progress is kept; save the state to resume later).
    Stop,
}

/// Trains an [`AlignmentModel`] with G3's objective and optimiser: AdamW over every trainable
/// weight (the random Fourier matrices stay fixed), the learning rate multiplied by
/// [`TrainingConfig::learning_rate_decay`] after each epoch.
///
/// The device must have autodiff (`Device::ndarray().autodiff()`, or a wgpu device's
/// `.autodiff()`).
pub struct Trainer {
    pub(super) config: TrainingConfig,
    pub(super) model: Option<AlignmentModel>,
    pub(super) optimizer: ModuleOptimizer,
    pub(super) progress: TrainingProgress,
    pub(super) device: Device,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Trainer")
            .field("config", &self.config)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// A run starting from `model` (moved to `device`, which must have autodiff).
    pub fn new(
        config: TrainingConfig,
        model: AlignmentModel,
        device: &Device,
    ) -> Result<Self, AlignError> {
        config.validate()?;
        if !device.is_autodiff() {
            return Err(AlignError::InvalidConfig {
                reason: "training needs a device with autodiff (Device::autodiff)".to_owned(),
            });
        }
        // `fork` keeps each weight's gradient setting where `to_device` would drop it.
        let model = model.fork(device);
        if !model.logit_scale2.val().is_require_grad() {
            return Err(AlignError::InvalidConfig {
                reason: "the model's weights do not track gradients: build or load it on the \
                         trainer's autodiff device"
                    .to_owned(),
            });
        }
        Ok(Trainer {
            optimizer: config.optimizer(),
            config,
            model: Some(model),
            progress: TrainingProgress::default(),
            device: device.clone(),
        })
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// Where the run stands.
    pub fn progress(&self) -> TrainingProgress {
        self.progress
    }

    /// Whether every epoch has been trained.
    pub fn is_finished(&self) -> bool {
        self.progress.epoch >= self.config.epochs
    }

    /// The model as trained so far.
    pub fn model(&self) -> &AlignmentModel {
        self.model
            .as_ref()
            .expect("the trainer always holds its model between steps")
    }

    /// The trained model.
    pub fn into_model(mut self) -> AlignmentModel {
        self.model
            .take()
            .expect("the trainer always holds its model between steps")
    }

    /// The learning rate of the current epoch: `learning_rate · decayᵉᵖᵒᶜʰ`.
    pub fn learning_rate(&self) -> f64 {
        self.config.learning_rate
            * self
                .config
                .learning_rate_decay
                .powi(self.progress.epoch as i32)
    }

    /// The order in which epoch `epoch` visits `rows` rows: `0..rows`, or a permutation drawn
    /// from the seed and the epoch alone (so a resumed run visits the same order).
    pub fn epoch_order(&self, epoch: usize, rows: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..rows).collect();
        if self.config.shuffle {
            let stream = (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            fastrand::Rng::with_seed(self.config.seed ^ stream).shuffle(&mut order);
        }
        order
    }

    /// One optimisation step on `batch` with the current learning rate. Advances the batch
    /// counter but not the epoch; [`Trainer::train_epoch`] manages both.
    pub fn step(&mut self, batch: &AlignmentBatch) -> Result<StepReport, AlignError> {
        let model = self
            .model
            .take()
            .expect("the trainer always holds its model between steps");
        let loss = match model.loss(batch, self.config.variant) {
            Ok(loss) => loss,
            Err(error) => {
                self.model = Some(model);
                return Err(error);
            }
        };
        let read = |tensor: &Tensor<1>| -> Result<f64, AlignError> {
            let data = tensor.clone().detach().into_data();
            data.as_slice::<f32>()
                .ok()
                .and_then(|values| values.first().copied())
                .map(f64::from)
                .ok_or_else(|| AlignError::TensorRead {
                    message: "the loss is not a float32 scalar".to_owned(),
                })
        };
        let rows = batch.image_features.dims()[0];
        let report = StepReport {
            epoch: self.progress.epoch,
            batch: self.progress.batch,
            batches_in_epoch: 0,
            rows,
            loss: read(&loss.total)?,
            image_text_loss: loss.image_text.as_ref().map(read).transpose()?,
            image_gps_loss: read(&loss.image_gps)?,
            learning_rate: self.learning_rate(),
        };
        if !report.loss.is_finite() {
            self.model = Some(model);
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "the loss became {} at epoch {} batch {}; lower the learning rate",
                    report.loss, report.epoch, report.batch
                ),
            });
        }
        let gradients = GradientsParams::from_grads(loss.total.backward(), &model);
        self.model = Some(self.optimizer.step(report.learning_rate, model, gradients));
        self.progress.batch += 1;
        self.progress.steps += 1;
        Ok(report)
    }

    /// Turns gathered rows into a batch on the trainer's device (locations through G3's
    /// Mercator projection).
    pub fn batch_from_rows(&self, rows: FeatureRows) -> Result<AlignmentBatch, AlignError> {
        let count = rows.locations.len();
        let width = self.model().feature_size();
        let lengths = [
            Some(rows.image_features.len()),
            rows.text_features.as_ref().map(Vec::len),
        ];
        if count == 0
            || lengths
                .iter()
                .flatten()
                .any(|&length| length != count * width)
        {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "a batch of {count} locations with {lengths:?} feature values; the model \
                     takes {width} values per row"
                ),
            });
        }
        let tensor = |values: Vec<f32>| {
            Tensor::<2>::from_data(TensorData::new(values, [count, width]), &self.device)
        };
        let projected = MercatorProjection.project_all(&rows.locations);
        Ok(AlignmentBatch {
            image_features: tensor(rows.image_features),
            text_features: rows.text_features.map(tensor),
            projected_locations: Tensor::from_data(
                TensorData::new(projected, [count, 2]),
                &self.device,
            ),
        })
    }

    /// Trains the rest of the current epoch (from [`TrainingProgress::batch`]), calling
    /// `observer` after every step; returns whether the epoch was finished (`false` when the
    /// observer asked to stop). At the end of an epoch the learning rate decays.
    pub fn train_epoch(
        &mut self,
        data: &dyn AlignmentData,
        observer: &mut dyn FnMut(&StepReport) -> StepControl,
    ) -> Result<bool, AlignError> {
        if self.is_finished() {
            return Ok(true);
        }
        if data.is_empty() {
            return Err(AlignError::InvalidInput {
                reason: "the training data has no rows".to_owned(),
            });
        }
        if data.feature_size() != self.model().feature_size() {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "the data's features have width {}, the model takes {}",
                    data.feature_size(),
                    self.model().feature_size()
                ),
            });
        }
        if self.config.variant.uses_text() && !data.has_text() {
            return Err(AlignError::InvalidInput {
                reason: "the image-gps-text variant needs text features; cache them or train \
                         the image-gps variant"
                    .to_owned(),
            });
        }
        let order = self.epoch_order(self.progress.epoch, data.len());
        let batches: Vec<&[usize]> = order.chunks(self.config.batch_size).collect();
        if self.progress.batch >= batches.len() {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "the run stopped at batch {} of epoch {}, but this data has {} batches per \
                     epoch: resume with the data the run started with",
                    self.progress.batch,
                    self.progress.epoch + 1,
                    batches.len()
                ),
            });
        }
        loop {
            let mut rows = data.gather(batches[self.progress.batch])?;
            if !self.config.variant.uses_text() {
                rows.text_features = None;
            }
            let batch = self.batch_from_rows(rows)?;
            let mut report = self.step(&batch)?;
            report.batches_in_epoch = batches.len();
            if self.progress.batch == batches.len() {
                self.progress.epoch += 1;
                self.progress.batch = 0;
                observer(&report);
                return Ok(true);
            }
            if observer(&report) == StepControl::Stop {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::model::AlignmentModelConfig;

    fn trainer(shuffle: bool, seed: u64) -> Trainer {
        #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
        let device = Device::ndarray().autodiff();
        let config = AlignmentModelConfig {
            feature_size: 4,
            location_encoder: crate::LocationEncoderConfig {
                sigmas: vec![1.0],
                encoded_size: 2,
                hidden_width: 4,
                hidden_layers: 1,
                output_size: 3,
            },
            initial_logit_scale: 3.99,
        };
        let model = config.init(&device, 0).unwrap();
        let settings = TrainingConfig {
            shuffle,
            seed,
            ..TrainingConfig::default()
        };
        Trainer::new(settings, model, &device).unwrap()
    }

    #[test]
    fn without_shuffling_epochs_visit_rows_in_file_order() {
        let trainer = trainer(false, 0);
        assert_eq!(trainer.epoch_order(3, 5), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn shuffled_orders_are_permutations_fixed_by_seed_and_epoch() {
        let a = trainer(true, 7);
        let order = a.epoch_order(0, 100);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(order, sorted);
        assert_eq!(trainer(true, 7).epoch_order(0, 100), order);
        assert_ne!(a.epoch_order(1, 100), order);
        assert_ne!(trainer(true, 8).epoch_order(0, 100), order);
    }

    #[test]
    fn the_learning_rate_decays_once_per_epoch() {
        let mut trainer = trainer(false, 0);
        assert_eq!(trainer.learning_rate(), 3e-5);
        trainer.progress.epoch = 2;
        assert!((trainer.learning_rate() - 3e-5 * 0.87 * 0.87).abs() < 1e-18);
    }

    #[test]
    fn unusable_settings_name_the_setting() {
        for (config, setting) in [
            (
                TrainingConfig {
                    epochs: 0,
                    ..TrainingConfig::default()
                },
                "epochs",
            ),
            (
                TrainingConfig {
                    learning_rate: f64::NAN,
                    ..TrainingConfig::default()
                },
                "learning_rate",
            ),
            (
                TrainingConfig {
                    adam_beta2: 1.0,
                    ..TrainingConfig::default()
                },
                "adam_beta",
            ),
        ] {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(setting), "{error}");
        }
    }
}

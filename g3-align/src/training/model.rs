//! The trainable part of G3 and its objective.

use std::path::Path;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::error::AlignError;
use crate::g3::l2_normalize;
use crate::heads::{ProjectionHead, ProjectionHeadConfig};
use crate::location::{LocationEncoder, LocationEncoderConfig};

/// Which alignments the loss trains (the paper's "alignment variants").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlignmentVariant {
    /// Images with GPS only: the text head and `logit_scale1` receive no gradient.
    ImageGps,
    /// Images with text and with GPS: G3's objective (the default).
    #[default]
    ImageGpsText,
}

impl AlignmentVariant {
    /// Whether the variant needs the text features of each image.
    pub fn uses_text(self) -> bool {
        self == AlignmentVariant::ImageGpsText
    }
}

/// Sizes of an [`AlignmentModel`]. The default is G3 on ViT-L/14.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlignmentModelConfig {
    /// Width of CLIP's projected image and text features (768 for ViT-L/14), which is also
    /// the width of the shared spaces.
    pub feature_size: usize,
    /// The GPS encoder's capsules.
    pub location_encoder: LocationEncoderConfig,
    /// Starting value of the three temperatures (used as `exp(scale)`); G3 uses 3.99.
    pub initial_logit_scale: f32,
}

impl Default for AlignmentModelConfig {
    fn default() -> Self {
        AlignmentModelConfig {
            feature_size: 768,
            location_encoder: LocationEncoderConfig::default(),
            initial_logit_scale: 3.99,
        }
    }
}

impl AlignmentModelConfig {
    fn feature_head(&self) -> ProjectionHeadConfig {
        ProjectionHeadConfig {
            input_size: self.feature_size,
            hidden_size: self.feature_size,
            output_size: self.feature_size,
        }
    }

    fn location_head(&self) -> ProjectionHeadConfig {
        let width = self.location_encoder.output_size;
        ProjectionHeadConfig {
            input_size: width,
            hidden_size: width,
            output_size: self.feature_size,
        }
    }

    /// A model with fresh weights, reproducible for `seed`: the location encoder as
    /// [`LocationEncoderConfig::init`], then the heads with PyTorch's Linear initialisation.
    pub fn init(&self, device: &Device, seed: u64) -> Result<AlignmentModel, AlignError> {
        if self.feature_size == 0 {
            return Err(AlignError::InvalidConfig {
                reason: "feature_size must be positive".to_owned(),
            });
        }
        let location_encoder = self.location_encoder.init(device, seed)?;
        let scale = || Param::from_tensor(Tensor::from_floats([self.initial_logit_scale], device));
        Ok(AlignmentModel {
            location_encoder,
            location_projection_else: self.location_head().init(device),
            vision_projection_else_1: self.feature_head().init(device),
            text_projection_else: self.feature_head().init(device),
            vision_projection_else_2: self.feature_head().init(device),
            logit_scale1: scale(),
            logit_scale2: scale(),
            logit_scale3: scale(),
        })
    }
}

/// Everything G3 trains: the GPS encoder, the four heads and the temperatures. CLIP's towers
/// are frozen, so training starts from their projected features (see
/// [`crate::training::FeatureTable`]). Field names are the keys of G3's checkpoint.
///
/// Reference: the trainable parameters of `G3` in G3's `utils/G3.py`.
#[derive(Module, Debug)]
pub struct AlignmentModel {
    /// The GPS encoder (`location_encoder.LocEnc{i}`), usually started from GeoCLIP's weights.
    pub location_encoder: LocationEncoder,
    /// GPS embedding → the image–GPS space.
    pub location_projection_else: ProjectionHead,
    /// CLIP image features → the image–text space.
    pub vision_projection_else_1: ProjectionHead,
    /// CLIP text features → the image–text space.
    pub text_projection_else: ProjectionHead,
    /// CLIP image features → the image–GPS space.
    pub vision_projection_else_2: ProjectionHead,
    /// Temperature of the image–text logits (shape `[1]`; a 0-d tensor in PyTorch).
    pub logit_scale1: Param<Tensor<1>>,
    /// Temperature of the image–GPS logits.
    pub logit_scale2: Param<Tensor<1>>,
    /// A third temperature G3 declares and never uses; kept so checkpoints round-trip.
    pub logit_scale3: Param<Tensor<1>>,
}

/// One batch of training input, already on the model's device.
#[derive(Debug, Clone)]
pub struct AlignmentBatch {
    /// CLIP's projected image features, `[batch, feature_size]`, not normalised.
    pub image_features: Tensor<2>,
    /// CLIP's projected text features of each image's description, `[batch, feature_size]`;
    /// needed by [`AlignmentVariant::ImageGpsText`].
    pub text_features: Option<Tensor<2>>,
    /// Each image's location as the GPS encoder's input, `[batch, 2]` (see
    /// [`crate::MercatorProjection`]).
    pub projected_locations: Tensor<2>,
}

/// The loss of one batch and its terms.
#[derive(Debug, Clone)]
pub struct AlignmentLoss {
    /// The sum of the terms, `[1]`: what the optimiser minimises.
    pub total: Tensor<1>,
    /// The image–text term, when the variant has it.
    pub image_text: Option<Tensor<1>>,
    /// The image–GPS term.
    pub image_gps: Tensor<1>,
}

/// CLIP's symmetric contrastive loss of a square logit matrix whose matching pairs lie on the
/// diagonal: `(CE(L, arange) + CE(Lᵀ, arange)) / 2`.
pub fn clip_loss(logits: Tensor<2>) -> Tensor<1> {
    let [rows, columns] = logits.dims();
    debug_assert_eq!(rows, columns, "clip_loss needs a square matrix");
    let diagonal = Tensor::<2>::eye(rows, &logits.device());
    // Row-wise log-softmax is CE(L); column-wise is CE(Lᵀ). The diagonal holds the targets.
    let by_row = (log_softmax(logits.clone(), 1) * diagonal.clone()).sum();
    let by_column = (log_softmax(logits, 0) * diagonal).sum();
    (by_row + by_column).div_scalar(-2.0 * rows as f64)
}

impl AlignmentModel {
    /// The loss G3 trains with: `clip_loss(text · imageᵀ · e^{s1}) + clip_loss(gps · imageᵀ ·
    /// e^{s2})` on L2-normalised head outputs, or only the second term for
    /// [`AlignmentVariant::ImageGps`].
    pub fn loss(
        &self,
        batch: &AlignmentBatch,
        variant: AlignmentVariant,
    ) -> Result<AlignmentLoss, AlignError> {
        let [rows, width] = batch.image_features.dims();
        let located = batch.projected_locations.dims();
        if located != [rows, 2] || width != self.feature_size() {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "a batch of {rows} image features of width {width} with locations {located:?} \
                     does not fit a model of feature size {}",
                    self.feature_size()
                ),
            });
        }
        let locations = l2_normalize(
            self.location_projection_else.forward(
                self.location_encoder
                    .forward(batch.projected_locations.clone()),
            ),
        );
        let image_gps = l2_normalize(
            self.vision_projection_else_2
                .forward(batch.image_features.clone()),
        );
        let gps_logits = locations.matmul(image_gps.transpose())
            * self.logit_scale2.val().exp().unsqueeze::<2>();
        let image_gps_loss = clip_loss(gps_logits);
        if !variant.uses_text() {
            return Ok(AlignmentLoss {
                total: image_gps_loss.clone(),
                image_text: None,
                image_gps: image_gps_loss,
            });
        }
        let text_features =
            batch
                .text_features
                .as_ref()
                .ok_or_else(|| AlignError::InvalidInput {
                    reason: "the image-gps-text variant needs text features".to_owned(),
                })?;
        if text_features.dims() != [rows, width] {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "text features {:?} do not match image features {:?}",
                    text_features.dims(),
                    [rows, width]
                ),
            });
        }
        let text = l2_normalize(self.text_projection_else.forward(text_features.clone()));
        let image_text = l2_normalize(
            self.vision_projection_else_1
                .forward(batch.image_features.clone()),
        );
        let text_logits =
            text.matmul(image_text.transpose()) * self.logit_scale1.val().exp().unsqueeze::<2>();
        let image_text_loss = clip_loss(text_logits);
        Ok(AlignmentLoss {
            total: image_text_loss.clone() + image_gps_loss.clone(),
            image_text: Some(image_text_loss),
            image_gps: image_gps_loss,
        })
    }

    /// Width of CLIP's projected features this model takes.
    pub fn feature_size(&self) -> usize {
        self.vision_projection_else_2.input.weight.dims()[0]
    }

    /// The three temperatures as plain numbers.
    pub fn logit_scales(&self) -> Result<[f32; 3], AlignError> {
        let read = |scale: &Param<Tensor<1>>| -> Result<f32, AlignError> {
            let data = scale.val().into_data();
            data.as_slice::<f32>()
                .ok()
                .and_then(|values| values.first().copied())
                .ok_or_else(|| AlignError::TensorRead {
                    message: "a temperature is not a float32 scalar".to_owned(),
                })
        };
        Ok([
            read(&self.logit_scale1)?,
            read(&self.logit_scale2)?,
            read(&self.logit_scale3)?,
        ])
    }

    /// Replaces the GPS encoder with pretrained weights: GeoCLIP's
    /// `location_encoder_weights.pth` (as G3 starts training), or the `location_encoder.*`
    /// of a G3 checkpoint. Shapes must match this model's.
    pub fn load_location_encoder(self, path: &Path) -> Result<Self, AlignError> {
        let mut branch = crate::GpsBranch {
            location_encoder: self.location_encoder,
            location_projection_else: None,
        };
        crate::loader::load_gps_branch(&mut branch, path, false)?;
        Ok(AlignmentModel {
            location_encoder: branch.location_encoder,
            ..self
        })
    }

    /// Loads a checkpoint with G3's keys (a `g3.pth`, or a safetensors file saved by
    /// [`AlignmentModel::save_checkpoint`]); sizes come from the file and CLIP's towers, if
    /// present, are ignored.
    pub fn load(path: &Path, device: &Device) -> Result<Self, AlignError> {
        let tensors = crate::loader::CheckpointTensors::read(path)?;
        let gps = tensors.g3_gps_config()?;
        let feature_head = tensors.head_sizes("vision_projection_else_2")?;
        let config = AlignmentModelConfig {
            feature_size: feature_head.input_size,
            location_encoder: gps.location_encoder,
            initial_logit_scale: 0.0,
        };
        let mut scales = [0.0f32; 3];
        for (index, scale) in scales.iter_mut().enumerate() {
            *scale = tensors.scalar(&format!("logit_scale{}", index + 1))?;
        }
        let mut model = AlignmentModel {
            location_encoder: config.location_encoder.for_loading(device)?,
            location_projection_else: gps
                .head
                .ok_or_else(|| AlignError::InvalidConfig {
                    reason: "the checkpoint has no location_projection_else head".to_owned(),
                })?
                .for_loading(device),
            vision_projection_else_1: tensors
                .head_sizes("vision_projection_else_1")?
                .for_loading(device),
            text_projection_else: tensors
                .head_sizes("text_projection_else")?
                .for_loading(device),
            vision_projection_else_2: feature_head.for_loading(device),
            logit_scale1: Param::from_tensor(Tensor::from_floats([scales[0]], device)),
            logit_scale2: Param::from_tensor(Tensor::from_floats([scales[1]], device)),
            logit_scale3: Param::from_tensor(Tensor::from_floats([scales[2]], device)),
        };
        crate::loader::load_alignment_model(&mut model, path)?;
        Ok(model)
    }

    /// Writes the weights as safetensors with G3's keys and PyTorch layouts
    /// (`location_encoder.LocEnc0.capsule.1.weight` `[out, in]`, ...), which
    /// [`AlignmentModel::load`], [`crate::GpsEncoder::load_g3`] and PyTorch's
    /// `load_state_dict` read. The temperatures are saved with shape `[1]`. The file is
    /// written to a temporary name and renamed, so a crash never leaves half a checkpoint.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), AlignError> {
        crate::loader::save_alignment_model(self, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    fn device() -> Device {
        Device::ndarray()
    }

    fn scalar(tensor: Tensor<1>) -> f32 {
        tensor.into_data().as_slice::<f32>().unwrap()[0]
    }

    #[test]
    fn clip_loss_is_log_n_for_uniform_logits_and_small_for_a_clear_diagonal() {
        let device = device();
        let uniform = scalar(clip_loss(Tensor::<2>::zeros([4, 4], &device)));
        assert!((uniform - 4f32.ln()).abs() < 1e-6, "{uniform}");
        let diagonal = Tensor::<2>::eye(4, &device).mul_scalar(30.0);
        assert!(scalar(clip_loss(diagonal)) < 1e-6);
    }

    #[test]
    fn clip_loss_averages_both_directions() {
        let device = device();
        // Rows [[2, 0], [1, 0]]: CE by rows and by columns differ; the loss is their mean.
        let logits = Tensor::<2>::from_floats([[2.0, 0.0], [1.0, 0.0]], &device);
        let softplus = |x: f32| (1.0 + x.exp()).ln();
        // Rows: targets 0 then 1 → softplus(-2) and softplus(1).
        let by_row = (softplus(-2.0) + softplus(1.0)) / 2.0;
        // Columns [2, 1] and [0, 0]: targets 0 then 1 → softplus(-1) and ln 2.
        let by_column = (softplus(-1.0) + 2f32.ln()) / 2.0;
        let loss = scalar(clip_loss(logits));
        assert!((loss - (by_row + by_column) / 2.0).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn a_batch_that_does_not_fit_the_model_is_an_error() {
        let device = device();
        let config = AlignmentModelConfig {
            feature_size: 4,
            location_encoder: LocationEncoderConfig {
                sigmas: vec![1.0],
                encoded_size: 2,
                hidden_width: 4,
                hidden_layers: 1,
                output_size: 3,
            },
            initial_logit_scale: 3.99,
        };
        let model = config.init(&device, 0).unwrap();
        let batch = AlignmentBatch {
            image_features: Tensor::zeros([2, 5], &device),
            text_features: None,
            projected_locations: Tensor::zeros([2, 2], &device),
        };
        let error = model.loss(&batch, AlignmentVariant::ImageGps).unwrap_err();
        assert!(error.to_string().contains("width 5"), "{error}");
        let batch = AlignmentBatch {
            image_features: Tensor::zeros([2, 4], &device),
            ..batch
        };
        assert!(model.loss(&batch, AlignmentVariant::ImageGps).is_ok());
        let error = model
            .loss(&batch, AlignmentVariant::ImageGpsText)
            .unwrap_err();
        assert!(error.to_string().contains("needs text features"), "{error}");
    }
}

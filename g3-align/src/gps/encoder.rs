//! The GPS side of G3 and GeoCLIP as a pipeline stage: projection, then the [`GpsBranch`]
//! (location encoder and, for G3, the `location_projection_else` head).

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use g3_core::{Embeddings, GeoPoint, GpsEmbedder, StageKind};
use serde::{Deserialize, Serialize};

use super::branch::GpsBranch;
use crate::cpu_inference::CpuGpsBranch;
use crate::error::AlignError;
use crate::heads::ProjectionHeadConfig;
use crate::location::{LocationEncoderConfig, Projection, ProjectionKind};

/// Everything needed to build a [`GpsEncoder`]. Presets: [`GpsEncoderConfig::g3`] and
/// [`GpsEncoderConfig::geoclip`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GpsEncoderConfig {
    /// How degrees become encoder input.
    pub projection: ProjectionKind,
    /// Shape of the capsule encoder.
    pub location_encoder: LocationEncoderConfig,
    /// G3's `location_projection_else` head, if the embedding should go through it.
    pub head: Option<ProjectionHeadConfig>,
    /// Points per forward pass: bounds memory (a few tens of KB of activations per point
    /// with the default shapes) without changing results.
    pub batch_size: usize,
}

impl Default for GpsEncoderConfig {
    fn default() -> Self {
        GpsEncoderConfig::g3()
    }
}

impl GpsEncoderConfig {
    /// G3: Mercator input, the paper's capsules, and the 512 → 768 head (`g3.pth`).
    pub fn g3() -> Self {
        GpsEncoderConfig {
            projection: ProjectionKind::Mercator,
            location_encoder: LocationEncoderConfig::default(),
            head: Some(ProjectionHeadConfig::G3_LOCATION),
            batch_size: 4096,
        }
    }

    /// GeoCLIP: Equal Earth input, the same capsules, no head
    /// (`location_encoder_weights.pth` from the `geoclip` package).
    pub fn geoclip() -> Self {
        GpsEncoderConfig {
            projection: ProjectionKind::EqualEarth,
            head: None,
            ..GpsEncoderConfig::g3()
        }
    }
}

/// A GPS embedder ready to run on a device: implements [`GpsEmbedder`].
///
/// On the ndarray CPU device, [`GpsEncoder::embed`] evaluates a [`CpuGpsBranch`] copy of the
/// weights (multi-threaded GEMM, faster than burn-ndarray's matrix product; it costs a
/// second copy of the weights, 38 MB for GeoCLIP's); on every other device it runs the burn
/// module.
///
/// ```no_run
/// # use g3_align::{GpsEncoder, GpsEncoderConfig};
/// # use g3_core::{GeoPoint, GpsEmbedder};
/// # #[allow(deprecated)]
/// let device = burn::prelude::Device::ndarray();
/// let encoder = GpsEncoder::load(
///     "location_encoder_weights.pth".as_ref(),
///     GpsEncoderConfig::geoclip(),
///     &device,
/// )?;
/// let embeddings = encoder.embed_locations(&[GeoPoint::new(48.85, 2.35)?])?;
/// assert_eq!(embeddings.dimension(), 512);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct GpsEncoder {
    config: GpsEncoderConfig,
    branch: GpsBranch,
    device: Device,
    /// The CPU evaluation of `branch`, when `device` is burn-ndarray's.
    cpu_branch: Option<CpuGpsBranch>,
}

impl GpsEncoder {
    /// Wraps an existing branch; fails if `config.batch_size` is zero.
    pub fn new(
        config: GpsEncoderConfig,
        branch: GpsBranch,
        device: Device,
    ) -> Result<Self, AlignError> {
        if config.batch_size == 0 {
            return Err(AlignError::InvalidConfig {
                reason: "batch_size must be at least 1".to_owned(),
            });
        }
        let cpu_branch = if crate::device::runs_on_ndarray(&device) {
            Some(CpuGpsBranch::from_branch(&branch)?)
        } else {
            None
        };
        Ok(GpsEncoder {
            config,
            branch: branch.to_device(&device),
            device,
            cpu_branch,
        })
    }

    /// Freshly initialised weights (for training from scratch), reproducible for `seed`.
    pub fn init(config: GpsEncoderConfig, device: &Device, seed: u64) -> Result<Self, AlignError> {
        let branch = GpsBranch {
            location_encoder: config.location_encoder.init(device, seed)?,
            location_projection_else: config.head.map(|head| head.init(device)),
        };
        GpsEncoder::new(config, branch, device.clone())
    }

    /// Weights from a GeoCLIP `location_encoder_weights.pth`, a G3 checkpoint (`g3.pth`)
    /// or a safetensors file with either naming; see [`crate::loader`].
    pub fn load(
        path: &Path,
        config: GpsEncoderConfig,
        device: &Device,
    ) -> Result<Self, AlignError> {
        let mut branch = GpsBranch {
            location_encoder: config.location_encoder.for_loading(device)?,
            location_projection_else: config.head.map(|head| head.for_loading(device)),
        };
        crate::loader::load_gps_branch(&mut branch, path, config.head.is_some())?;
        GpsEncoder::new(config, branch, device.clone())
    }

    /// G3's GPS branch from a G3 checkpoint, with its sizes read from the file (so small and
    /// retrained variants load too); Mercator input, as G3.
    pub fn load_g3(path: &Path, device: &Device) -> Result<Self, AlignError> {
        let config = crate::loader::CheckpointTensors::read(path)?.g3_gps_config()?;
        GpsEncoder::load(path, config, device)
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &GpsEncoderConfig {
        &self.config
    }

    /// The model, for inspection or training.
    pub fn branch(&self) -> &GpsBranch {
        &self.branch
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeddings of `points` in input order, `[n, 512]` (`[n, 768]` with the head), not
    /// normalised; computed [`GpsEncoderConfig::batch_size`] points at a time.
    pub fn embed(&self, points: &[GeoPoint]) -> Result<Embeddings, AlignError> {
        let dimension = self.branch.output_size();
        let mut values = Vec::with_capacity(points.len() * dimension);
        for batch in points.chunks(self.config.batch_size) {
            let projected = self.config.projection.project_all(batch);
            if let Some(cpu_branch) = &self.cpu_branch {
                cpu_branch.forward(&projected, &mut values);
                continue;
            }
            let input =
                Tensor::<2>::from_data(TensorData::new(projected, [batch.len(), 2]), &self.device);
            let output = self.branch.forward(input).into_data();
            let slice = output
                .as_slice::<f32>()
                .map_err(|error| AlignError::TensorRead {
                    message: format!("{error:?}"),
                })?;
            values.extend_from_slice(slice);
        }
        Embeddings::new(dimension, values).map_err(|error| AlignError::TensorRead {
            message: error.to_string(),
        })
    }
}

impl GpsEmbedder for GpsEncoder {
    fn dimension(&self) -> usize {
        self.branch.output_size()
    }

    fn embed_locations(&self, locations: &[GeoPoint]) -> g3_core::Result<Embeddings> {
        self.embed(locations)
            .map_err(|error| g3_core::Error::stage(StageKind::GpsEmbedder, error))
    }
}

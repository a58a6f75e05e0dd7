//! The one way to load a model: a [`ModelSpec`] names the files (a plain CLIP, G3's
//! checkpoint, Geo-alignment heads trained on a CLIP, GeoCLIP's image side), [`ModelSpec::load`]
//! reads them once, and the [`LoadedModel`] makes image, text and GPS encoders from the same
//! weights. The pipeline and every `g3` command load through here, so a model is found,
//! defaulted and checked the same way everywhere.
//!
//! ```no_run
//! use g3_align::models::{ClipFiles, ModelSpec};
//! use g3_align::{ComputeDevice, ImageEmbeddingKind};
//!
//! let device = ComputeDevice::Cpu.to_device()?;
//! let g3 = ModelSpec::G3Checkpoint {
//!     checkpoint: "g3.pth".into(),
//!     clip: ClipFiles::default(), // ViT-L/14 and OpenAI CLIP's preprocessing
//! }
//! .load(&device)?;
//! let database_side = g3.image_encoder(ImageEmbeddingKind::Database, 16)?;
//! let verification_side = g3.gps_encoder()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use burn::prelude::Device;
use g3_core::assets::Asset;

use crate::clip::{
    ClipConfig, ClipImageProcessor, ClipImageProcessorConfig, ClipTokenizer, CpuVisionTower,
};
use crate::error::AlignError;
use crate::g3::G3Model;
use crate::gps::GpsEncoder;
use crate::image_encoder::{ImageEmbeddingKind, ImageEncoder, ImageModel};
use crate::pretrained::{HfClipDirectory, ModelSource};
use crate::text_encoder::{TextEncoder, TextModel};
use crate::training::AlignmentModel;

/// CLIP's architecture, preprocessing and tokenizer for a checkpoint that holds only weights
/// (G3's `g3.pth`). Each file is optional: without it, ViT-L/14's architecture, OpenAI CLIP's
/// preprocessing and OpenAI's BPE vocabulary from the asset cache are used, as G3 does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClipFiles {
    /// An HF `config.json`.
    pub config: Option<PathBuf>,
    /// An HF `preprocessor_config.json`.
    pub preprocessor: Option<PathBuf>,
    /// An HF `tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
}

impl ClipFiles {
    /// The files an HF CLIP directory holds (each only when present).
    pub fn of_directory(directory: &Path) -> Self {
        let present = |name: &str| Some(directory.join(name)).filter(|path| path.is_file());
        ClipFiles {
            config: present("config.json"),
            preprocessor: present("preprocessor_config.json"),
            tokenizer: present("tokenizer.json"),
        }
    }

    fn config(&self) -> Result<ClipConfig, AlignError> {
        match &self.config {
            Some(path) => ClipConfig::from_json_file(path),
            None => Ok(ClipConfig::vit_large_patch14()),
        }
    }

    fn processor(&self) -> Result<ClipImageProcessor, AlignError> {
        Ok(ClipImageProcessor::new(match &self.preprocessor {
            Some(path) => ClipImageProcessorConfig::from_json_file(path)?,
            None => ClipImageProcessorConfig::default(),
        }))
    }

    fn tokenizer(&self) -> Result<ClipTokenizer, AlignError> {
        match &self.tokenizer {
            Some(path) => ClipTokenizer::from_tokenizer_json(path),
            None => {
                let vocabulary = Asset::CLIP_BPE_VOCABULARY.require().map_err(|error| {
                    AlignError::ModelNotFound {
                        name: "CLIP's tokenizer".into(),
                        help: format!(
                            "a G3 checkpoint carries no tokenizer and none was given: {error}"
                        ),
                    }
                })?;
                ClipTokenizer::from_bpe_vocabulary(&vocabulary)
            }
        }
    }
}

/// Which files make a model; see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSpec {
    /// A plain CLIP from an HF model directory (`config.json`, `model.safetensors` or
    /// `pytorch_model.bin`, `preprocessor_config.json`, `tokenizer.json`).
    Clip {
        /// The directory.
        directory: PathBuf,
    },
    /// G3's checkpoint (`g3.pth`): CLIP's towers, G3's heads and GPS encoder in one file.
    G3Checkpoint {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// CLIP's architecture, preprocessing and tokenizer, which the file does not hold.
        clip: ClipFiles,
    },
    /// Geo-alignment heads and GPS encoder trained by `g3 train`, on the CLIP they were
    /// trained with (whose towers the training froze and did not save).
    AlignedHeads {
        /// The `g3 train` checkpoint.
        heads: PathBuf,
        /// The HF CLIP directory.
        clip_directory: PathBuf,
    },
    /// GeoCLIP's image side: CLIP ViT-L/14 and GeoCLIP's image MLP.
    GeoClip {
        /// The HF CLIP directory.
        clip_directory: PathBuf,
        /// GeoCLIP's `image_encoder_mlp_weights.pth`.
        image_mlp: PathBuf,
    },
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Clip { directory } => write!(formatter, "CLIP {}", directory.display()),
            ModelSpec::G3Checkpoint { checkpoint, .. } => {
                write!(formatter, "G3 checkpoint {}", checkpoint.display())
            }
            ModelSpec::AlignedHeads {
                heads,
                clip_directory,
            } => write!(
                formatter,
                "Geo-alignment heads {} on CLIP {}",
                heads.display(),
                clip_directory.display()
            ),
            ModelSpec::GeoClip {
                clip_directory,
                image_mlp,
            } => write!(
                formatter,
                "GeoCLIP ({} on CLIP {})",
                image_mlp.display(),
                clip_directory.display()
            ),
        }
    }
}

/// What a command line names, before it becomes a [`ModelSpec`].
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// The CLIP whose towers go with a `g3 train` checkpoint given as the model.
    pub aligned_clip: Option<ModelSource>,
    /// CLIP's files for a G3 checkpoint given as the model.
    pub clip_files: ClipFiles,
    /// GeoCLIP's image MLP, when GeoCLIP embeddings are wanted (default: the asset cache's,
    /// fetched by `scripts/fetch-assets.sh`).
    pub geoclip_image_mlp: Option<PathBuf>,
}

impl ModelSpec {
    /// The spec for what a user named: `source` (an HF CLIP directory, or a checkpoint
    /// file) and `options`, for computing `kind` embeddings. An HF directory is a plain CLIP,
    /// or GeoCLIP's image side for [`ImageEmbeddingKind::GeoClip`]; a checkpoint is G3's,
    /// or heads trained by `g3 train` when [`ModelOptions::aligned_clip`] names their CLIP.
    pub fn from_source(
        source: ModelSource,
        options: ModelOptions,
        kind: ImageEmbeddingKind,
    ) -> Result<Self, AlignError> {
        let spec = Self::from_source_unchecked(source, options, kind)?;
        // Before any weights are read.
        spec.check_kind(kind)?;
        Ok(spec)
    }

    fn from_source_unchecked(
        source: ModelSource,
        options: ModelOptions,
        kind: ImageEmbeddingKind,
    ) -> Result<Self, AlignError> {
        let invalid = |reason: String| Err(AlignError::InvalidConfig { reason });
        match (source, options.aligned_clip) {
            (ModelSource::HfDirectory(directory), None) => match kind {
                ImageEmbeddingKind::GeoClip => Ok(ModelSpec::GeoClip {
                    clip_directory: directory,
                    image_mlp: match options.geoclip_image_mlp {
                        Some(path) => path,
                        None => Asset::GEOCLIP_IMAGE_MLP.require()?,
                    },
                }),
                _ => Ok(ModelSpec::Clip { directory }),
            },
            (ModelSource::HfDirectory(directory), Some(_)) => invalid(format!(
                "{} is a CLIP directory: a separate CLIP goes only with a `g3 train` checkpoint as the model",
                directory.display()
            )),
            (ModelSource::Checkpoint(path), _) if kind == ImageEmbeddingKind::GeoClip => {
                invalid(format!(
                    "GeoCLIP embeddings need CLIP ViT-L/14 as an HF directory, not the checkpoint {}",
                    path.display()
                ))
            }
            (ModelSource::Checkpoint(heads), Some(ModelSource::HfDirectory(clip_directory))) => {
                Ok(ModelSpec::AlignedHeads {
                    heads,
                    clip_directory,
                })
            }
            (ModelSource::Checkpoint(_), Some(ModelSource::Checkpoint(clip))) => invalid(format!(
                "the CLIP for trained heads must be an HF CLIP directory or repo id, not the file {}",
                clip.display()
            )),
            (ModelSource::Checkpoint(checkpoint), None) => Ok(ModelSpec::G3Checkpoint {
                checkpoint,
                clip: options.clip_files,
            }),
        }
    }

    /// Whether the model has G3's heads and GPS encoder (G3's checkpoint, or trained heads).
    pub fn has_g3_heads(&self) -> bool {
        matches!(
            self,
            ModelSpec::G3Checkpoint { .. } | ModelSpec::AlignedHeads { .. }
        )
    }

    /// Whether the model can compute `kind` embeddings; if not, an error saying what can.
    pub fn check_kind(&self, kind: ImageEmbeddingKind) -> Result<(), AlignError> {
        let needs_heads = matches!(kind, ImageEmbeddingKind::Database | ImageEmbeddingKind::Gps);
        if needs_heads && !self.has_g3_heads() {
            return Err(AlignError::InvalidConfig {
                reason: format!(
                    "{self} cannot compute {kind:?} image embeddings: they need G3's heads, from a G3 checkpoint (g3.pth) or from heads trained by `g3 train` together with their CLIP"
                ),
            });
        }
        if kind == ImageEmbeddingKind::GeoClip && !matches!(self, ModelSpec::GeoClip { .. }) {
            return Err(AlignError::InvalidConfig {
                reason: format!(
                    "{self} cannot compute GeoCLIP image embeddings: they need CLIP ViT-L/14 and GeoCLIP's image MLP"
                ),
            });
        }
        Ok(())
    }

    /// Reads the weights onto `device`. Errors name the file.
    pub fn load(&self, device: &Device) -> Result<LoadedModel, AlignError> {
        let (model, processor, tokenizer_files) = match self {
            ModelSpec::Clip { directory } => {
                let clip = HfClipDirectory::open(directory)?;
                (
                    ImageModel::Clip(clip.load_model(device)?),
                    clip.image_processor()?,
                    ClipFiles::of_directory(directory),
                )
            }
            ModelSpec::G3Checkpoint { checkpoint, clip } => (
                ImageModel::G3(G3Model::load(checkpoint, &clip.config()?, device)?),
                clip.processor()?,
                clip.clone(),
            ),
            ModelSpec::AlignedHeads {
                heads,
                clip_directory,
            } => {
                let clip = HfClipDirectory::open(clip_directory)?;
                let aligned = AlignmentModel::load(heads, device)?;
                (
                    ImageModel::G3(G3Model::from_parts(clip.load_model(device)?, aligned)?),
                    clip.image_processor()?,
                    ClipFiles::of_directory(clip_directory),
                )
            }
            ModelSpec::GeoClip {
                clip_directory,
                image_mlp,
            } => {
                let clip = HfClipDirectory::open(clip_directory)?;
                (
                    ImageModel::GeoClip {
                        clip: clip.load_model(device)?,
                        mlp: crate::loader::load_geoclip_image_mlp(image_mlp, device)?,
                    },
                    clip.image_processor()?,
                    ClipFiles::of_directory(clip_directory),
                )
            }
        };
        Ok(LoadedModel {
            spec: self.clone(),
            model,
            processor,
            tokenizer_files,
            device: device.clone(),
            cpu_tower: OnceLock::new(),
        })
    }
}

/// A model's weights on a device, from which encoders are made; each encoder shares the
/// weights rather than loading them again (on the CPU, also the copy of the vision tower
/// its inference path runs).
#[derive(Debug, Clone)]
pub struct LoadedModel {
    spec: ModelSpec,
    model: ImageModel,
    processor: ClipImageProcessor,
    tokenizer_files: ClipFiles,
    device: Device,
    cpu_tower: OnceLock<Arc<CpuVisionTower>>,
}

impl LoadedModel {
    /// Where the weights came from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// An image encoder computing `kind`, `batch_size` images per forward pass. Fails when
    /// the model cannot compute that kind, saying what can.
    pub fn image_encoder(
        &self,
        kind: ImageEmbeddingKind,
        batch_size: usize,
    ) -> Result<ImageEncoder, AlignError> {
        self.spec.check_kind(kind)?;
        ImageEncoder::with_cpu_tower(
            self.model.clone(),
            kind,
            self.processor.clone(),
            self.device.clone(),
            batch_size,
            self.cpu_tower()?,
        )
    }

    /// The CPU copy of the vision tower on the ndarray device, made on first use and shared
    /// by every encoder of this model; `None` elsewhere.
    fn cpu_tower(&self) -> Result<Option<Arc<CpuVisionTower>>, AlignError> {
        if !crate::device::runs_on_ndarray(&self.device) {
            return Ok(None);
        }
        if let Some(tower) = self.cpu_tower.get() {
            return Ok(Some(Arc::clone(tower)));
        }
        let tower = Arc::new(CpuVisionTower::from_tower(self.model.vision_tower())?);
        Ok(Some(Arc::clone(self.cpu_tower.get_or_init(|| tower))))
    }

    /// A text encoder, `batch_size` texts per forward pass: G3's text embedding for models
    /// with G3's heads, CLIP's otherwise.
    pub fn text_encoder(&self, batch_size: usize) -> Result<TextEncoder, AlignError> {
        let model = match &self.model {
            ImageModel::G3(g3) => TextModel::G3(g3.clone()),
            ImageModel::Clip(clip) | ImageModel::GeoClip { clip, .. } => {
                TextModel::Clip(clip.clone())
            }
        };
        TextEncoder::new(model, self.tokenizer_files.tokenizer()?, batch_size)
    }

    /// G3's GPS encoder (Mercator projection, capsules and `location_projection_else`), with
    /// its sizes read from the checkpoint. Only models with G3's heads have one; GeoCLIP's
    /// location encoder is a file of its own ([`GpsEncoder::load`]).
    pub fn gps_encoder(&self) -> Result<GpsEncoder, AlignError> {
        match &self.spec {
            ModelSpec::G3Checkpoint { checkpoint, .. } => {
                GpsEncoder::load_g3(checkpoint, &self.device)
            }
            ModelSpec::AlignedHeads { heads, .. } => GpsEncoder::load_g3(heads, &self.device),
            other => Err(AlignError::InvalidConfig {
                reason: format!("{other} has no G3 GPS encoder"),
            }),
        }
    }
}

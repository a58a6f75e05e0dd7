//! The image encoder as a pipeline stage: photos (encoded bytes) in, L2-normalised
//! embeddings out.

use burn::prelude::*;
use g3_core::{Embeddings, ImageEmbedder, ImageInput, StageKind};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::ops::PadMode;

use crate::clip::{
    AttentionKernel, ClipImageProcessor, ClipModel, ClipVisionTransformer, CpuVisionTower,
};
use crate::error::AlignError;
use crate::g3::{G3Model, l2_normalize};
use crate::heads::ProjectionHead;
use crate::precision::Precision;

/// Which embedding of an image to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageEmbeddingKind {
    /// The CLIP image feature (`visual_projection` of the pooled class token): the database
    /// of the paper's "w/o Geo-A" ablation and of Img2Loc.
    Clip,
    /// G3's database vector: CLIP, image–text and image–GPS embeddings concatenated (2304-d
    /// for ViT-L/14).
    Database,
    /// G3's image–GPS embedding (`vision_projection_else_2`), compared with candidate GPS
    /// embeddings by geo-verification.
    Gps,
    /// GeoCLIP's image embedding: its MLP (768 → 768 → 512) on the CLIP image feature,
    /// comparable with GeoCLIP's GPS embeddings.
    GeoClip,
    /// CLIP's projected image feature before normalisation: what G3's heads take, and what
    /// Geo-alignment training reads from its feature cache (`g3 cache-features`).
    ClipFeatures,
}

/// The model behind an [`ImageEncoder`].
// Built once per encoder and never moved in a loop: boxing the variants would only add a
// `Box::new` to every caller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ImageModel {
    /// A plain CLIP (HF layout).
    Clip(ClipModel),
    /// G3's model (CLIP towers and heads).
    G3(G3Model),
    /// GeoCLIP's image side: CLIP and GeoCLIP's image MLP.
    GeoClip {
        /// The CLIP model (ViT-L/14 for GeoCLIP's weights).
        clip: ClipModel,
        /// GeoCLIP's `image_encoder_mlp_weights.pth` (keys `0.*`, `2.*`).
        mlp: ProjectionHead,
    },
}

impl ImageModel {
    fn supports(&self, kind: ImageEmbeddingKind) -> bool {
        matches!(
            (self, kind),
            (
                ImageModel::Clip(_),
                ImageEmbeddingKind::Clip | ImageEmbeddingKind::ClipFeatures
            ) | (
                ImageModel::G3(_),
                ImageEmbeddingKind::Clip
                    | ImageEmbeddingKind::Database
                    | ImageEmbeddingKind::Gps
                    | ImageEmbeddingKind::ClipFeatures
            ) | (
                ImageModel::GeoClip { .. },
                ImageEmbeddingKind::Clip
                    | ImageEmbeddingKind::GeoClip
                    | ImageEmbeddingKind::ClipFeatures
            )
        )
    }

    fn name(&self) -> &'static str {
        match self {
            ImageModel::Clip(_) => "a CLIP model",
            ImageModel::G3(_) => "a G3 checkpoint",
            ImageModel::GeoClip { .. } => "GeoCLIP",
        }
    }

    fn image_size(&self) -> usize {
        self.vision_tower().image_size()
    }

    /// Chooses how the CLIP towers compute attention (the same mathematics, other kernels).
    pub fn set_attention_kernel(&mut self, kernel: AttentionKernel) {
        match self {
            ImageModel::Clip(clip) | ImageModel::GeoClip { clip, .. } => {
                clip.set_attention_kernel(kernel)
            }
            ImageModel::G3(g3) => g3.set_attention_kernel(kernel),
        }
    }

    /// The model with every float parameter in `precision`.
    pub fn cast(self, precision: Precision) -> Self {
        match self {
            ImageModel::Clip(clip) => ImageModel::Clip(precision.cast_module(clip)),
            ImageModel::G3(g3) => ImageModel::G3(precision.cast_module(g3)),
            ImageModel::GeoClip { clip, mlp } => ImageModel::GeoClip {
                clip: precision.cast_module(clip),
                mlp: precision.cast_module(mlp),
            },
        }
    }

    /// CLIP's vision tower inside the model.
    pub fn vision_tower(&self) -> &ClipVisionTransformer {
        match self {
            ImageModel::Clip(clip) | ImageModel::GeoClip { clip, .. } => &clip.vision_model,
            ImageModel::G3(g3) => &g3.vision_model,
        }
    }
}

/// Photos to embeddings: decoding and CLIP preprocessing on every CPU core (rayon), then the
/// vision tower in batches on the model's device. Implements [`ImageEmbedder`].
///
/// On the ndarray CPU device the vision tower runs as a [`CpuVisionTower`] (the weights
/// copied once into plain memory and multiplied with multi-threaded GEMM; a second copy of
/// the tower's weights, 1.2 GB for ViT-L/14), and only the projections and heads run in
/// burn; on every other device the whole model runs in burn.
#[derive(Debug)]
pub struct ImageEncoder {
    model: ImageModel,
    kind: ImageEmbeddingKind,
    processor: ClipImageProcessor,
    device: Device,
    batch_size: usize,
    dimension: usize,
    cpu_tower: Option<Arc<CpuVisionTower>>,
    precision: Precision,
    attention: AttentionKernel,
    /// A full batch has run through the burn module: its kernels are compiled and tuned for
    /// that shape, so a later partial batch is padded to it rather than compiled and tuned
    /// again (seconds on a GPU, for the last few photos of a run).
    full_batch_done: AtomicBool,
}

impl ImageEncoder {
    /// An encoder computing `kind` with `model` (already on `device`). Fails when the model
    /// cannot compute that kind (a plain CLIP has no G3 heads), when `batch_size` is zero, or
    /// when the processor's crop does not fit the model's input.
    pub fn new(
        model: ImageModel,
        kind: ImageEmbeddingKind,
        processor: ClipImageProcessor,
        device: Device,
        batch_size: usize,
    ) -> Result<Self, AlignError> {
        let cpu_tower = if crate::device::runs_on_ndarray(&device) {
            Some(Arc::new(CpuVisionTower::from_tower(model.vision_tower())?))
        } else {
            None
        };
        Self::with_cpu_tower(model, kind, processor, device, batch_size, cpu_tower)
    }

    /// [`new`](Self::new) with the CPU copy of the tower given (shared between encoders of
    /// one model), or `None` to run the burn module.
    pub(crate) fn with_cpu_tower(
        model: ImageModel,
        kind: ImageEmbeddingKind,
        processor: ClipImageProcessor,
        device: Device,
        batch_size: usize,
        cpu_tower: Option<Arc<CpuVisionTower>>,
    ) -> Result<Self, AlignError> {
        if !model.supports(kind) {
            return Err(AlignError::InvalidConfig {
                reason: format!("{} cannot compute {kind:?} image embeddings", model.name()),
            });
        }
        if batch_size == 0 {
            return Err(AlignError::InvalidConfig {
                reason: "batch_size must be at least 1".to_owned(),
            });
        }
        let side = model.image_size() as u32;
        if processor.config().crop_size != (side, side) {
            return Err(AlignError::InvalidConfig {
                reason: format!(
                    "the preprocessor crops {:?} but the vision tower takes {side} x {side}",
                    processor.config().crop_size
                ),
            });
        }
        let mut encoder = ImageEncoder {
            model,
            kind,
            processor,
            device,
            batch_size,
            dimension: 0,
            cpu_tower,
            precision: Precision::F32,
            attention: AttentionKernel::default(),
            full_batch_done: AtomicBool::new(false),
        };
        encoder.dimension = encoder.output_dimension();
        Ok(encoder)
    }

    fn output_dimension(&self) -> usize {
        match (&self.model, self.kind) {
            (ImageModel::Clip(clip), _)
            | (
                ImageModel::GeoClip { clip, .. },
                ImageEmbeddingKind::Clip | ImageEmbeddingKind::ClipFeatures,
            ) => clip.visual_projection.weight.dims()[1],
            (ImageModel::GeoClip { mlp, .. }, _) => mlp.output_size(),
            (ImageModel::G3(g3), ImageEmbeddingKind::Database) => {
                g3.embedding_size()
                    + g3.vision_projection_else_1.output_size()
                    + g3.vision_projection_else_2.output_size()
            }
            (ImageModel::G3(g3), ImageEmbeddingKind::Gps) => {
                g3.vision_projection_else_2.output_size()
            }
            (ImageModel::G3(g3), _) => g3.embedding_size(),
        }
    }

    /// The encoder computing in `precision` (weights and activations; float32 by default).
    /// Half precision needs a device whose backend has it (a GPU, or the flex CPU backend);
    /// on the ndarray CPU device it is an error.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self, AlignError> {
        precision.check(&self.device)?;
        if precision != self.precision {
            self.model = self.model.cast(precision);
            self.precision = precision;
        }
        Ok(self)
    }

    /// The precision the encoder computes in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The encoder with its CLIP towers computing attention with `kernel` (on devices where
    /// the burn module runs; the native CPU tower has its own). [`AttentionKernel::Explicit`]
    /// by default; docs/performance.md measures the kernels on a GPU.
    pub fn with_attention_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.model.set_attention_kernel(kernel);
        self.attention = kernel;
        self
    }

    /// How the CLIP towers compute attention.
    pub fn attention_kernel(&self) -> AttentionKernel {
        self.attention
    }

    /// What this encoder computes.
    pub fn kind(&self) -> ImageEmbeddingKind {
        self.kind
    }

    /// The preprocessing in use.
    pub fn processor(&self) -> &ClipImageProcessor {
        &self.processor
    }

    /// Images per forward pass.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Width of the embeddings.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Decodes and preprocesses images in parallel; one result per image, in order, so a
    /// caller can skip the ones that fail.
    pub fn preprocess(&self, images: &[ImageInput]) -> Vec<Result<Vec<f32>, AlignError>> {
        images
            .par_iter()
            .map(|image| self.processor.preprocess(image.encoded(), image.id()))
            .collect()
    }

    /// Embeds preprocessed images (`[count, 3, side, side]` values, concatenated), in batches.
    pub fn embed_pixels(&self, pixels: &[f32], count: usize) -> Result<Embeddings, AlignError> {
        let per_image = self.processor.values_per_image();
        if pixels.len() != count * per_image {
            return Err(AlignError::InvalidInput {
                reason: format!(
                    "{} pixel values for {count} images of {per_image} values",
                    pixels.len()
                ),
            });
        }
        let (height, width) = self.processor.config().crop_size;
        let mut values = Vec::with_capacity(count * self.dimension);
        for batch in pixels.chunks(self.batch_size * per_image) {
            let images = batch.len() / per_image;
            let pooled = match &self.cpu_tower {
                Some(tower) => {
                    let pooled = tower.pooled(batch, images)?;
                    Tensor::<2>::from_data(
                        TensorData::new(pooled, [images, tower.width()]),
                        &self.device,
                    )
                }
                None => {
                    let input = Tensor::<4>::from_data(
                        self.precision
                            .host_data(batch, [images, 3, height as usize, width as usize]),
                        (&self.device, self.precision.dtype().into()),
                    );
                    if images == self.batch_size {
                        self.full_batch_done.store(true, Ordering::Relaxed);
                    }
                    // Zero images pad a short batch to the shape already compiled; every
                    // image is computed on its own, so the real rows are unchanged.
                    let padding = if self.full_batch_done.load(Ordering::Relaxed) {
                        self.batch_size - images
                    } else {
                        0
                    };
                    if padding == 0 {
                        self.model.vision_tower().forward(input)?.pooled
                    } else {
                        let input = input.pad(
                            [(0, padding), (0, 0), (0, 0), (0, 0)],
                            PadMode::Constant(0.0),
                        );
                        let pooled = self.model.vision_tower().forward(input)?.pooled;
                        let pooled_width = pooled.dims()[1];
                        pooled.slice([0..images, 0..pooled_width])
                    }
                }
            };
            let output = self
                .embedding_of_pooled(pooled)
                .into_data()
                .convert::<f32>();
            values.extend_from_slice(output.as_slice::<f32>().map_err(|error| {
                AlignError::TensorRead {
                    message: format!("{error:?}"),
                }
            })?);
        }
        Embeddings::new(self.dimension, values).map_err(|error| AlignError::TensorRead {
            message: error.to_string(),
        })
    }

    /// The embedding of this encoder's kind from the vision tower's pooled output.
    fn embedding_of_pooled(&self, pooled: Tensor<2>) -> Tensor<2> {
        match (&self.model, self.kind) {
            (
                ImageModel::Clip(clip) | ImageModel::GeoClip { clip, .. },
                ImageEmbeddingKind::ClipFeatures,
            ) => clip.visual_projection.forward(pooled),
            (ImageModel::G3(g3), ImageEmbeddingKind::ClipFeatures) => {
                g3.vision_projection.forward(pooled)
            }
            (ImageModel::Clip(clip), _)
            | (ImageModel::GeoClip { clip, .. }, ImageEmbeddingKind::Clip) => {
                l2_normalize(clip.visual_projection.forward(pooled))
            }
            (ImageModel::GeoClip { clip, mlp }, _) => {
                l2_normalize(mlp.forward(clip.visual_projection.forward(pooled)))
            }
            (ImageModel::G3(g3), kind) => {
                let embeddings = g3.image_embeddings_from_pooled(pooled);
                match kind {
                    ImageEmbeddingKind::Database => embeddings.database(),
                    ImageEmbeddingKind::Gps => embeddings.image_gps,
                    _ => embeddings.clip,
                }
            }
        }
    }

    /// Embeds images in order; the first undecodable image is an error naming it.
    pub fn embed(&self, images: &[ImageInput]) -> Result<Embeddings, AlignError> {
        let mut pixels = Vec::with_capacity(images.len() * self.processor.values_per_image());
        for result in self.preprocess(images) {
            pixels.extend(result?);
        }
        self.embed_pixels(&pixels, images.len())
    }
}

impl ImageEmbedder for ImageEncoder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed_images(&self, images: &[ImageInput]) -> g3_core::Result<Embeddings> {
        self.embed(images)
            .map_err(|error| g3_core::Error::stage(StageKind::ImageEmbedder, error))
    }
}

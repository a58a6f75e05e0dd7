//! G3's image and text side: frozen CLIP towers plus the trainable heads that align images
//! with text and with GPS (reference: `utils/G3.py`, `IndexSearch.py`).

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clip::{ClipConfig, ClipTextTransformer, ClipVisionTransformer};
use crate::error::AlignError;
use crate::heads::{ProjectionHead, ProjectionHeadConfig};

/// Sizes of G3's three image/text heads (the GPS head belongs to the
/// [`crate::GpsEncoder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct G3HeadSizes {
    /// `vision_projection_else_1`: CLIP image features → image–text space.
    pub vision_projection_else_1: ProjectionHeadConfig,
    /// `text_projection_else`: CLIP text features → image–text space.
    pub text_projection_else: ProjectionHeadConfig,
    /// `vision_projection_else_2`: CLIP image features → image–GPS space.
    pub vision_projection_else_2: ProjectionHeadConfig,
}

impl G3HeadSizes {
    /// The paper's heads on ViT-L/14: 768 → 768 → 768 each.
    pub fn paper() -> Self {
        let head = ProjectionHeadConfig {
            input_size: 768,
            hidden_size: 768,
            output_size: 768,
        };
        G3HeadSizes {
            vision_projection_else_1: head,
            text_projection_else: head,
            vision_projection_else_2: head,
        }
    }
}

/// The 0-d `logit_scale1..3` temperatures of a G3 checkpoint (used as `exp(scale)`).
pub type LogitScales = [f32; 3];

/// G3's image and text model. Field names are the keys of G3's checkpoint.
#[derive(Module, Debug)]
pub struct G3Model {
    /// CLIP's vision tower (frozen in G3).
    pub vision_model: ClipVisionTransformer,
    /// CLIP's text tower (frozen in G3).
    pub text_model: ClipTextTransformer,
    /// CLIP's `visual_projection` (G3 renames it).
    pub vision_projection: Linear,
    /// CLIP's `text_projection`.
    pub text_projection: Linear,
    /// Image side of the image–text alignment.
    pub vision_projection_else_1: ProjectionHead,
    /// Text side of the image–text alignment.
    pub text_projection_else: ProjectionHead,
    /// Image side of the image–GPS alignment.
    pub vision_projection_else_2: ProjectionHead,
    /// The learned temperatures, `logit_scale1..3`.
    #[module(skip)]
    pub logit_scales: LogitScales,
}

/// The three L2-normalised image embeddings G3 computes from one CLIP image feature.
#[derive(Debug, Clone)]
pub struct G3ImageEmbeddings {
    /// `l2n(vision_projection(clip_pooled))`: the plain CLIP image embedding.
    pub clip: Tensor<2>,
    /// `l2n(vision_projection_else_1(...))`: the image in the image–text space.
    pub image_text: Tensor<2>,
    /// `l2n(vision_projection_else_2(...))`: the image in the image–GPS space, which
    /// geo-verification compares with candidate GPS embeddings.
    pub image_gps: Tensor<2>,
}

impl G3ImageEmbeddings {
    /// G3's database vector: `concat(clip, image_text, image_gps)` (3 × 768 = 2304-d for
    /// ViT-L/14), the rows `IndexSearch.py` adds to its faiss index.
    pub fn database(&self) -> Tensor<2> {
        Tensor::cat(
            vec![
                self.clip.clone(),
                self.image_text.clone(),
                self.image_gps.clone(),
            ],
            1,
        )
    }
}

/// Divides each row by its Euclidean norm, as `x / x.norm(p=2, dim=-1, keepdim=True)`.
pub fn l2_normalize(rows: Tensor<2>) -> Tensor<2> {
    let norms = rows.clone().powi_scalar(2).sum_dim(1).sqrt();
    rows / norms
}

impl G3Model {
    /// A model with random weights (tests and benchmarks).
    pub fn new(clip: &ClipConfig, heads: &G3HeadSizes, device: &Device) -> Self {
        let projection = |input| {
            LinearConfig::new(input, clip.projection_dim)
                .with_bias(false)
                .init(device)
        };
        G3Model {
            vision_model: ClipVisionTransformer::new(&clip.vision, device),
            text_model: ClipTextTransformer::new(&clip.text, device),
            vision_projection: projection(clip.vision.hidden_size),
            text_projection: projection(clip.text.hidden_size),
            vision_projection_else_1: heads.vision_projection_else_1.init(device),
            text_projection_else: heads.text_projection_else.init(device),
            vision_projection_else_2: heads.vision_projection_else_2.init(device),
            logit_scales: [3.99; 3],
        }
    }

    /// Loads a G3 checkpoint: a PyTorch state dict (`torch.save(model.state_dict())`) or
    /// safetensors file with G3's keys. The CLIP architecture comes from `clip` (the
    /// checkpoint does not record it; G3 uses [`ClipConfig::vit_large_patch14`]); head sizes
    /// come from the checkpoint's shapes. The GPS branch in the same file loads with
    /// [`crate::GpsEncoder::load_g3`].
    pub fn load(path: &Path, clip: &ClipConfig, device: &Device) -> Result<Self, AlignError> {
        let tensors = crate::loader::CheckpointTensors::read(path)?;
        let heads = G3HeadSizes {
            vision_projection_else_1: tensors.head_sizes("vision_projection_else_1")?,
            text_projection_else: tensors.head_sizes("text_projection_else")?,
            vision_projection_else_2: tensors.head_sizes("vision_projection_else_2")?,
        };
        let mut logit_scales = [0.0; 3];
        for (index, scale) in logit_scales.iter_mut().enumerate() {
            *scale = tensors.scalar(&format!("logit_scale{}", index + 1))?;
        }
        let mut model = G3Model::new(clip, &heads, device);
        model.logit_scales = logit_scales;
        crate::loader::load_g3_model(&mut model, path)?;
        Ok(model)
    }

    /// G3's image and text model from its two halves: CLIP's towers and projections (an HF
    /// CLIP model, as G3 starts from) and the trained heads and temperatures of a
    /// Geo-alignment checkpoint (`g3 train`'s output, or any file
    /// [`crate::training::AlignmentModel::load`] reads). Fails when the heads do not take the
    /// CLIP model's projection width.
    pub fn from_parts(
        clip: crate::clip::ClipModel,
        aligned: crate::training::AlignmentModel,
    ) -> Result<Self, AlignError> {
        let width = clip.visual_projection.weight.dims()[1];
        if aligned.feature_size() != width {
            return Err(AlignError::InvalidConfig {
                reason: format!(
                    "the Geo-alignment heads take {}-d features, the CLIP model projects to {width}",
                    aligned.feature_size()
                ),
            });
        }
        let logit_scales = aligned.logit_scales()?;
        Ok(G3Model {
            vision_model: clip.vision_model,
            text_model: clip.text_model,
            vision_projection: clip.visual_projection,
            text_projection: clip.text_projection,
            vision_projection_else_1: aligned.vision_projection_else_1,
            text_projection_else: aligned.text_projection_else,
            vision_projection_else_2: aligned.vision_projection_else_2,
            logit_scales,
        })
    }

    /// Chooses the attention kernel of both CLIP towers.
    pub fn set_attention_kernel(&mut self, kernel: crate::clip::AttentionKernel) {
        self.vision_model.set_attention_kernel(kernel);
        self.text_model.set_attention_kernel(kernel);
    }

    /// `[batch, 3, side, side]` CLIP-normalised pixels → the three image embeddings.
    pub fn image_embeddings(&self, pixels: Tensor<4>) -> Result<G3ImageEmbeddings, AlignError> {
        let pooled = self.vision_model.forward(pixels)?.pooled;
        Ok(self.image_embeddings_from_pooled(pooled))
    }

    /// The three image embeddings from the vision tower's pooled output `[batch, width]`
    /// (computed elsewhere, by [`CpuVisionTower`](crate::clip::CpuVisionTower) for example).
    pub fn image_embeddings_from_pooled(&self, pooled: Tensor<2>) -> G3ImageEmbeddings {
        let clip = self.vision_projection.forward(pooled);
        G3ImageEmbeddings {
            image_text: l2_normalize(self.vision_projection_else_1.forward(clip.clone())),
            image_gps: l2_normalize(self.vision_projection_else_2.forward(clip.clone())),
            clip: l2_normalize(clip),
        }
    }

    /// Token ids in rows of `tokens` → `l2n(text_projection_else(text_projection(pooled)))`,
    /// the text in the image–text space.
    pub fn text_embeddings(&self, ids: &[u32], tokens: usize) -> Result<Tensor<2>, AlignError> {
        let pooled = self.text_model.forward(ids, tokens)?.pooled;
        let projected = self.text_projection.forward(pooled);
        Ok(l2_normalize(self.text_projection_else.forward(projected)))
    }

    /// Width of each of the three image embeddings (768 for ViT-L/14).
    pub fn embedding_size(&self) -> usize {
        self.vision_projection.weight.dims()[1]
    }
}

//! The text encoder as a pipeline stage: texts in, L2-normalised embeddings (or CLIP's
//! projected features, for Geo-alignment training) out.

use g3_core::{Embeddings, StageKind, TextEmbedder};

use crate::clip::{CONTEXT_LENGTH, ClipModel, ClipTokenizer};
use crate::error::AlignError;
use crate::g3::{G3Model, l2_normalize};

/// The text model behind a [`TextEncoder`].
#[allow(clippy::large_enum_variant)] // built once, like `ImageModel`
#[derive(Debug, Clone)]
pub enum TextModel {
    /// A plain CLIP: L2-normalised text features.
    Clip(ClipModel),
    /// G3: L2-normalised `text_projection_else` of the CLIP text feature.
    G3(G3Model),
}

/// Texts to L2-normalised embeddings with CLIP's tokenizer and text tower. Implements
/// [`TextEmbedder`].
#[derive(Debug)]
pub struct TextEncoder {
    model: TextModel,
    tokenizer: ClipTokenizer,
    batch_size: usize,
}

impl TextEncoder {
    /// An encoder of `batch_size` texts per forward pass.
    pub fn new(
        model: TextModel,
        tokenizer: ClipTokenizer,
        batch_size: usize,
    ) -> Result<Self, AlignError> {
        if batch_size == 0 {
            return Err(AlignError::InvalidConfig {
                reason: "batch_size must be at least 1".to_owned(),
            });
        }
        Ok(TextEncoder {
            model,
            tokenizer,
            batch_size,
        })
    }

    /// Width of the embeddings.
    pub fn dimension(&self) -> usize {
        match &self.model {
            TextModel::Clip(clip) => clip.text_projection.weight.dims()[1],
            TextModel::G3(g3) => g3.text_projection_else.output_size(),
        }
    }

    /// CLIP's projected text features of `texts` before normalisation and before G3's head:
    /// what Geo-alignment training reads from its feature cache.
    pub fn features(&self, texts: &[&str]) -> Result<Embeddings, AlignError> {
        let dimension = match &self.model {
            TextModel::Clip(clip) => clip.text_projection.weight.dims()[1],
            TextModel::G3(g3) => g3.text_projection.weight.dims()[1],
        };
        let mut values = Vec::with_capacity(texts.len() * dimension);
        for batch in texts.chunks(self.batch_size) {
            let tokens = self.tokenizer.encode(batch)?;
            let output = match &self.model {
                TextModel::Clip(clip) => clip.text_features(&tokens.ids, CONTEXT_LENGTH)?,
                TextModel::G3(g3) => g3
                    .text_projection
                    .forward(g3.text_model.forward(&tokens.ids, CONTEXT_LENGTH)?.pooled),
            }
            .into_data()
            .convert::<f32>();
            values.extend_from_slice(output.as_slice::<f32>().map_err(|error| {
                AlignError::TensorRead {
                    message: format!("{error:?}"),
                }
            })?);
        }
        Embeddings::new(dimension, values).map_err(|error| AlignError::TensorRead {
            message: error.to_string(),
        })
    }

    /// Embeddings of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, AlignError> {
        let mut values = Vec::with_capacity(texts.len() * self.dimension());
        for batch in texts.chunks(self.batch_size) {
            let tokens = self.tokenizer.encode(batch)?;
            let output = match &self.model {
                TextModel::Clip(clip) => {
                    l2_normalize(clip.text_features(&tokens.ids, CONTEXT_LENGTH)?)
                }
                TextModel::G3(g3) => g3.text_embeddings(&tokens.ids, CONTEXT_LENGTH)?,
            }
            .into_data()
            .convert::<f32>();
            values.extend_from_slice(output.as_slice::<f32>().map_err(|error| {
                AlignError::TensorRead {
                    message: format!("{error:?}"),
                }
            })?);
        }
        Embeddings::new(self.dimension(), values).map_err(|error| AlignError::TensorRead {
            message: error.to_string(),
        })
    }
}

impl TextEmbedder for TextEncoder {
    fn dimension(&self) -> usize {
        TextEncoder::dimension(self)
    }

    fn embed_texts(&self, texts: &[&str]) -> g3_core::Result<Embeddings> {
        self.embed(texts)
            .map_err(|error| g3_core::Error::stage(StageKind::TextEmbedder, error))
    }
}

//! Training data: cached CLIP features and locations, addressed by row ([`AlignmentData`]),
//! held in memory ([`FeatureTable`]) or memory-mapped from files
//! ([`FeatureCache`](super::FeatureCache)).

use g3_core::GeoPoint;

use crate::error::AlignError;

/// Rows of training data gathered for one batch, on the host.
#[derive(Debug, Clone, Default)]
pub struct FeatureRows {
    /// Row-major `[rows, feature_size]` projected CLIP image features.
    pub image_features: Vec<f32>,
    /// Row-major `[rows, feature_size]` projected CLIP text features, when the data has them.
    pub text_features: Option<Vec<f32>>,
    /// Each row's location.
    pub locations: Vec<GeoPoint>,
}

/// Training data: cached CLIP features and locations, addressed by row.
///
/// [`FeatureTable`] holds them in memory; [`FeatureCache`](super::FeatureCache) maps the
/// `.npy` files written by `g3 cache-features`.
pub trait AlignmentData: Sync {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Width of the image (and text) features.
    fn feature_size(&self) -> usize;
    /// Whether text features are present.
    fn has_text(&self) -> bool;
    /// The given rows, in the given order.
    fn gather(&self, rows: &[usize]) -> Result<FeatureRows, AlignError>;
}

/// Training data held in memory.
#[derive(Debug, Clone)]
pub struct FeatureTable {
    feature_size: usize,
    image_features: Vec<f32>,
    text_features: Option<Vec<f32>>,
    locations: Vec<GeoPoint>,
}

impl FeatureTable {
    /// Row-major features of `locations.len()` rows; fails when a buffer's length does not
    /// match or a value is not finite.
    pub fn new(
        feature_size: usize,
        image_features: Vec<f32>,
        text_features: Option<Vec<f32>>,
        locations: Vec<GeoPoint>,
    ) -> Result<Self, AlignError> {
        let expected = feature_size * locations.len();
        let check = |name: &str, values: &[f32]| {
            if feature_size == 0 || values.len() != expected {
                return Err(AlignError::InvalidInput {
                    reason: format!(
                        "{name}: {} values for {} rows of width {feature_size}",
                        values.len(),
                        locations.len()
                    ),
                });
            }
            match values.iter().position(|value| !value.is_finite()) {
                Some(index) => Err(AlignError::InvalidInput {
                    reason: format!(
                        "{name}: row {} has a non-finite value",
                        index / feature_size
                    ),
                }),
                None => Ok(()),
            }
        };
        check("image features", &image_features)?;
        if let Some(text) = &text_features {
            check("text features", text)?;
        }
        Ok(FeatureTable {
            feature_size,
            image_features,
            text_features,
            locations,
        })
    }
}

impl AlignmentData for FeatureTable {
    fn len(&self) -> usize {
        self.locations.len()
    }

    fn feature_size(&self) -> usize {
        self.feature_size
    }

    fn has_text(&self) -> bool {
        self.text_features.is_some()
    }

    fn gather(&self, rows: &[usize]) -> Result<FeatureRows, AlignError> {
        let width = self.feature_size;
        let take = |values: &[f32]| -> Result<Vec<f32>, AlignError> {
            let mut out = Vec::with_capacity(rows.len() * width);
            for &row in rows {
                let slice = values.get(row * width..(row + 1) * width).ok_or_else(|| {
                    AlignError::InvalidInput {
                        reason: format!("row {row} is out of range ({} rows)", self.len()),
                    }
                })?;
                out.extend_from_slice(slice);
            }
            Ok(out)
        };
        Ok(FeatureRows {
            image_features: take(&self.image_features)?,
            text_features: self.text_features.as_deref().map(take).transpose()?,
            locations: rows.iter().map(|&row| self.locations[row]).collect(),
        })
    }
}

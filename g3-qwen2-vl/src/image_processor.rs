//! Qwen2-VL's image preprocessing as GeoRanker runs it: `qwen_vl_utils.fetch_image` (PIL
//! decoding, `convert("RGB")`, a bicubic resize to sides that are multiples of 28 within a
//! pixel budget), then transformers' `Qwen2VLImageProcessor` (whose own resize is the identity
//! on such an image, rescaling and normalisation fused as `(x − 255·mean) / (255·std)` in f32,
//! and patches of `temporal_patch_size` copies of the photo × 14 × 14 pixels, ordered so that
//! each 2 × 2 square the vision tower merges is contiguous).

use g3_core::ImageLimits;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::Qwen2VlError;
use crate::vision::ImageGrid;

/// OpenAI CLIP's channel means, Qwen2-VL's normalisation.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's channel standard deviations.
#[allow(clippy::excessive_precision)] // as written in the reference's OPENAI_CLIP_STD
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// The preprocessing settings; defaults are `qwen_vl_utils`'s (0.0.8, as GeoRanker pins it)
/// and Qwen2-VL-7B-Instruct's `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageProcessorConfig {
    /// Fewest pixels after resizing (`min_pixels`, 4 × 28 × 28).
    pub min_pixels: u64,
    /// Most pixels after resizing (`max_pixels`, 16384 × 28 × 28). Each 28 × 28 square
    /// becomes one decoder token: this bounds a photo's cost.
    pub max_pixels: u64,
    /// Side of a patch (14).
    pub patch_size: u32,
    /// Side of the square of patches merged into one token (2).
    pub merge_size: u32,
    /// Copies of a photo per patch (2: the vision tower's patches span two video frames).
    pub temporal_patch_size: usize,
    /// Channel means.
    pub image_mean: [f32; 3],
    /// Channel standard deviations.
    pub image_std: [f32; 3],
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        ImageProcessorConfig {
            min_pixels: 4 * 28 * 28,
            max_pixels: 16_384 * 28 * 28,
            patch_size: 14,
            merge_size: 2,
            temporal_patch_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
        }
    }
}

/// The largest ratio between a photo's sides that `smart_resize` accepts.
pub const MAX_ASPECT_RATIO: f64 = 200.0;

/// `qwen_vl_utils.smart_resize`: the `(height, width)` nearest to the photo's with both
/// sides multiples of `factor` and the area within `[min_pixels, max_pixels]`, keeping the
/// aspect ratio. Python's `round` (half to even) and float arithmetic, so sizes agree
/// exactly.
pub fn smart_resize(
    height: u32,
    width: u32,
    factor: u32,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(u32, u32), String> {
    if height == 0 || width == 0 || factor == 0 {
        return Err(format!("cannot resize a {width} × {height} image"));
    }
    let (h, w, f) = (f64::from(height), f64::from(width), f64::from(factor));
    let ratio = h.max(w) / h.min(w);
    if ratio > MAX_ASPECT_RATIO {
        return Err(format!(
            "absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got {ratio}"
        ));
    }
    let round_to = |value: f64| (value / f).round_ties_even() * f;
    let mut h_bar = round_to(h).max(f);
    let mut w_bar = round_to(w).max(f);
    if h_bar * w_bar > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = (h / beta / f).floor() * f;
        w_bar = (w / beta / f).floor() * f;
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    if h_bar < f || w_bar < f || h_bar > f64::from(u32::MAX) || w_bar > f64::from(u32::MAX) {
        return Err(format!(
            "a {width} × {height} image cannot fit {min_pixels}..={max_pixels} pixels in multiples of {factor}"
        ));
    }
    Ok((h_bar as u32, w_bar as u32))
}

/// A photo ready for the vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// Its patch grid.
    pub grid: ImageGrid,
    /// `[patches, channels × frames × side × side]` row-major.
    pub pixel_values: Vec<f32>,
}

/// Qwen2-VL's preprocessing of one photo at a time.
#[derive(Debug, Clone, Default)]
pub struct ImageProcessor {
    config: ImageProcessorConfig,
    limits: ImageLimits,
}

impl ImageProcessor {
    /// A processor with `config` and the default decoding limits.
    pub fn new(config: ImageProcessorConfig) -> Self {
        ImageProcessor {
            config,
            limits: ImageLimits::default(),
        }
    }

    /// The same processor refusing photos beyond `limits` before decoding them.
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The decoding limits.
    pub fn limits(&self) -> ImageLimits {
        self.limits
    }

    /// The settings.
    pub fn config(&self) -> &ImageProcessorConfig {
        &self.config
    }

    /// Decodes `encoded` (JPEG, PNG, WebP, GIF) as PIL does and preprocesses it; `name`
    /// identifies the photo in errors.
    pub fn process(&self, encoded: &[u8], name: &str) -> Result<ProcessedImage, Qwen2VlError> {
        let image =
            g3_align::clip::decode_rgb_like_pil(encoded, name, self.limits).map_err(|error| {
                Qwen2VlError::Image {
                    name: name.to_owned(),
                    reason: error.to_string(),
                }
            })?;
        let resized = self.resize(&image, name)?;
        Ok(self.patches(&resized))
    }

    /// `fetch_image`'s resize: PIL bicubic to [`smart_resize`]'s size.
    pub fn resize(&self, image: &RgbImage, name: &str) -> Result<RgbImage, Qwen2VlError> {
        let factor = self.config.patch_size * self.config.merge_size;
        let (height, width) = smart_resize(
            image.height(),
            image.width(),
            factor,
            self.config.min_pixels,
            self.config.max_pixels,
        )
        .map_err(|reason| Qwen2VlError::Image {
            name: name.to_owned(),
            reason,
        })?;
        Ok(g3_align::clip::resize_bicubic_like_pil(
            image, width, height,
        ))
    }

    /// Normalises a resized photo (sides multiples of `patch_size × merge_size`) and cuts it
    /// into the vision tower's patches.
    pub fn patches(&self, image: &RgbImage) -> ProcessedImage {
        let config = &self.config;
        let (patch, merge) = (config.patch_size as usize, config.merge_size as usize);
        let frames = config.temporal_patch_size;
        let (rows, columns) = (
            image.height() as usize / patch,
            image.width() as usize / patch,
        );
        // The fused rescale-and-normalise of transformers' torchvision processors.
        let mean = config.image_mean.map(|mean| mean * 255.0);
        let std = config.image_std.map(|std| std * 255.0);
        let values_per_patch = 3 * frames * patch * patch;
        let mut pixel_values = Vec::with_capacity(rows * columns * values_per_patch);
        for block_row in 0..rows / merge {
            for block_column in 0..columns / merge {
                for inner_row in 0..merge {
                    for inner_column in 0..merge {
                        let top = (block_row * merge + inner_row) * patch;
                        let left = (block_column * merge + inner_column) * patch;
                        for channel in 0..3 {
                            let start = pixel_values.len();
                            for y in 0..patch {
                                for x in 0..patch {
                                    let value = image
                                        .get_pixel((left + x) as u32, (top + y) as u32)[channel];
                                    pixel_values
                                        .push((f32::from(value) - mean[channel]) / std[channel]);
                                }
                            }
                            // The photo repeated over the patch's frames.
                            for _ in 1..frames {
                                pixel_values.extend_from_within(start..start + patch * patch);
                            }
                        }
                    }
                }
            }
        }
        ProcessedImage {
            grid: ImageGrid {
                frames: 1,
                rows,
                columns,
            },
            pixel_values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_round_half_to_even_like_python() {
        // 42 / 28 = 1.5 rounds to 2, 70 / 28 = 2.5 to 2: Python's round.
        assert_eq!(smart_resize(42, 70, 28, 0, u64::MAX).unwrap(), (56, 56));
        assert_eq!(smart_resize(10, 10, 28, 0, u64::MAX).unwrap(), (28, 28));
    }

    #[test]
    fn extreme_ratios_are_refused_with_the_ratio() {
        let error = smart_resize(1, 201, 28, 3136, 12_845_056).unwrap_err();
        assert!(error.contains("201"), "{error}");
    }
}

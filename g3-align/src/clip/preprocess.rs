//! CLIP image preprocessing, identical to the PIL path of Hugging Face's `CLIPImageProcessor`.
//!
//! G3 opens every photo with PIL, converts it with `convert("RGB")` and hands it to
//! `CLIPImageProcessor`: resize the shortest edge to 224 with PIL's antialiased bicubic
//! filter, centre-crop 224 x 224, rescale by 1/255, normalise with CLIP's mean and standard
//! deviation. A ViT fed slightly different pixels gives slightly different features, so every
//! step here follows PIL, including its quirks (16-bit gray is clipped to 255, not scaled;
//! alpha is dropped, not composited over white). transformers 5 calls that processor
//! `CLIPImageProcessorPil`; its default `CLIPImageProcessor` now resizes with torchvision and
//! lands up to 0.03 away (see `tests/fixtures/clip/pixel_values_torchvision_max_diff.txt`).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

use super::pil_resize::resize_bicubic_like_pil;
use crate::error::AlignError;

/// The settings of a `preprocessor_config.json`, with OpenAI CLIP's values as defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipImageProcessorConfig {
    /// Resize so that the shorter side has this length (HF `size.shortest_edge`).
    pub shortest_edge: u32,
    /// Centre-crop size as (height, width) (HF `crop_size`).
    pub crop_size: (u32, u32),
    /// Per-channel mean subtracted after rescaling (RGB).
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation divided by after the mean (RGB).
    pub image_std: [f32; 3],
    /// Factor from bytes to [0, 1] (HF `rescale_factor`, 1/255).
    pub rescale_factor: f64,
    /// Whether to resize at all.
    pub do_resize: bool,
    /// Whether to centre-crop.
    pub do_center_crop: bool,
    /// Whether to multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// Whether to normalise with `image_mean` and `image_std`.
    pub do_normalize: bool,
}

impl Default for ClipImageProcessorConfig {
    // The mean and deviation as written in OpenAI's preprocessor_config.json.
    #[allow(clippy::excessive_precision)]
    fn default() -> Self {
        ClipImageProcessorConfig {
            shortest_edge: 224,
            crop_size: (224, 224),
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_58, 0.275_777_11],
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            do_center_crop: true,
            do_rescale: true,
            do_normalize: true,
        }
    }
}

/// The JSON layout of HF's `preprocessor_config.json` (only the fields that matter here).
#[derive(Deserialize)]
struct HfPreprocessorConfig {
    size: Option<HfSize>,
    crop_size: Option<HfSize>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    rescale_factor: Option<f64>,
    resample: Option<u32>,
    do_resize: Option<bool>,
    do_center_crop: Option<bool>,
    do_rescale: Option<bool>,
    do_normalize: Option<bool>,
}

/// `size` and `crop_size` appear as `{"shortest_edge": n}`, `{"height": h, "width": w}` or,
/// in old files, a bare number.
#[derive(Deserialize)]
#[serde(untagged)]
enum HfSize {
    Square(u32),
    Shortest { shortest_edge: u32 },
    HeightWidth { height: u32, width: u32 },
}

/// PIL's `Image.BICUBIC`, the only filter this processor implements.
const PIL_BICUBIC: u32 = 3;

impl ClipImageProcessorConfig {
    /// Reads an HF `preprocessor_config.json`; missing fields keep OpenAI CLIP's values.
    pub fn from_json_file(path: &Path) -> Result<Self, AlignError> {
        super::read_config_file(path, Self::from_json_str)
    }

    /// Parses the text of an HF `preprocessor_config.json`.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let hf: HfPreprocessorConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut config = ClipImageProcessorConfig::default();
        if let Some(resample) = hf.resample
            && resample != PIL_BICUBIC
        {
            return Err(format!(
                "field `resample`: only bicubic (3) is implemented, found {resample}"
            ));
        }
        match hf.size {
            None => {}
            Some(HfSize::Shortest { shortest_edge }) | Some(HfSize::Square(shortest_edge)) => {
                config.shortest_edge = shortest_edge;
            }
            Some(HfSize::HeightWidth { height, width }) => {
                return Err(format!(
                    "field `size`: a fixed {height} x {width} resize is not CLIP's; expected {{\"shortest_edge\": n}}"
                ));
            }
        }
        match hf.crop_size {
            None => {}
            Some(HfSize::HeightWidth { height, width }) => config.crop_size = (height, width),
            Some(HfSize::Square(side))
            | Some(HfSize::Shortest {
                shortest_edge: side,
            }) => {
                config.crop_size = (side, side);
            }
        }
        if let Some(mean) = hf.image_mean {
            config.image_mean = mean;
        }
        if let Some(std) = hf.image_std {
            config.image_std = std;
        }
        if let Some(factor) = hf.rescale_factor {
            config.rescale_factor = factor;
        }
        config.do_resize = hf.do_resize.unwrap_or(config.do_resize);
        config.do_center_crop = hf.do_center_crop.unwrap_or(config.do_center_crop);
        config.do_rescale = hf.do_rescale.unwrap_or(config.do_rescale);
        config.do_normalize = hf.do_normalize.unwrap_or(config.do_normalize);
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.shortest_edge == 0 || self.crop_size.0 == 0 || self.crop_size.1 == 0 {
            return Err("`size` and `crop_size` must be positive".to_owned());
        }
        if let Some(channel) = self
            .image_std
            .iter()
            .position(|&s| s <= 0.0 || !s.is_finite())
        {
            return Err(format!(
                "field `image_std`: channel {channel} is not a positive number"
            ));
        }
        Ok(())
    }

    /// The (height, width) of the processor's output.
    pub fn output_size(&self) -> (u32, u32) {
        self.crop_size
    }
}

pub use g3_core::ImageLimits;

/// Decodes photos and turns them into CLIP's input tensor, the way G3's PyTorch code does.
#[derive(Debug, Clone, Default)]
pub struct ClipImageProcessor {
    config: ClipImageProcessorConfig,
    limits: ImageLimits,
}

impl ClipImageProcessor {
    /// A processor with these settings and the default [`ImageLimits`].
    pub fn new(config: ClipImageProcessorConfig) -> Self {
        ClipImageProcessor {
            config,
            limits: ImageLimits::default(),
        }
    }

    /// The same processor with other decoding limits.
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The settings.
    pub fn config(&self) -> &ClipImageProcessorConfig {
        &self.config
    }

    /// Number of floats per preprocessed image (3 x height x width).
    pub fn values_per_image(&self) -> usize {
        let (height, width) = self.config.crop_size;
        3 * height as usize * width as usize
    }

    /// Decodes an encoded image (JPEG, PNG, WebP, GIF) into RGB as PIL's
    /// `Image.open(...).convert("RGB")` does. `name` identifies the image in errors.
    ///
    /// The header is read first and the image refused if it exceeds the limits, before any
    /// pixel buffer is allocated.
    pub fn decode(&self, encoded: &[u8], name: &str) -> Result<RgbImage, AlignError> {
        decode_rgb_like_pil(encoded, name, self.limits)
    }

    /// Resizes (shortest edge, PIL bicubic) and centre-crops an RGB image: the bytes that
    /// [`ClipImageProcessor::normalize`] turns into the model's input.
    pub fn resize_and_crop(&self, image: &RgbImage) -> Result<RgbImage, AlignError> {
        let resized = if self.config.do_resize {
            let (width, height) =
                shortest_edge_size(image.width(), image.height(), self.config.shortest_edge);
            resize_bicubic_like_pil(image, width, height)
        } else {
            image.clone()
        };
        Ok(if self.config.do_center_crop {
            let (crop_height, crop_width) = self.config.crop_size;
            center_crop(&resized, crop_width, crop_height)
        } else {
            resized
        })
    }

    /// Rescales and normalises RGB bytes into a `[3, height, width]` (channel-first) vector.
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let plane = image.width() as usize * image.height() as usize;
        let mut values = vec![0.0f32; 3 * plane];
        let config = &self.config;
        for (index, pixel) in image.pixels().enumerate() {
            for channel in 0..3 {
                let mut value = f64::from(pixel[channel]);
                if config.do_rescale {
                    value *= config.rescale_factor;
                }
                if config.do_normalize {
                    value = (value - f64::from(config.image_mean[channel]))
                        / f64::from(config.image_std[channel]);
                }
                values[channel * plane + index] = value as f32;
            }
        }
        values
    }

    /// The whole pipeline on an encoded image: decode, resize, crop, normalise.
    pub fn preprocess(&self, encoded: &[u8], name: &str) -> Result<Vec<f32>, AlignError> {
        let rgb = self.decode(encoded, name)?;
        let cropped = self.resize_and_crop(&rgb)?;
        let (height, width) = self.config.crop_size;
        if cropped.dimensions() != (width, height) {
            return Err(AlignError::ImageDecode {
                name: name.to_owned(),
                reason: format!(
                    "preprocessing gave {} x {} pixels, the model needs {width} x {height} (resizing or cropping is off)",
                    cropped.width(),
                    cropped.height()
                ),
            });
        }
        Ok(self.normalize(&cropped))
    }
}

/// Decodes an encoded image (JPEG, PNG, WebP, GIF) into RGB as PIL's
/// `Image.open(...).convert("RGB")` does (JPEGs through libjpeg-turbo, as PIL's wheels):
/// the first step of every PIL-based preprocessing (CLIP's, Qwen2-VL's). `name` identifies
/// the image in errors. The header is read first and the image refused if it exceeds
/// `limits`, before any pixel buffer is allocated.
pub fn decode_rgb_like_pil(
    encoded: &[u8],
    name: &str,
    limits: ImageLimits,
) -> Result<RgbImage, AlignError> {
    let bad = |reason: String| AlignError::ImageDecode {
        name: name.to_owned(),
        reason,
    };
    let reader = || {
        ImageReader::new(Cursor::new(encoded))
            .with_guessed_format()
            .map_err(|e| bad(e.to_string()))
    };
    let header = reader()?;
    if header.format().is_none() {
        return Err(bad(
            "not an image in a supported format (JPEG, PNG, WebP, GIF)".to_owned(),
        ));
    }
    let (width, height) = header.into_dimensions().map_err(|e| bad(e.to_string()))?;
    if !limits.admits(width, height) {
        return Err(AlignError::ImageTooLarge {
            name: name.to_owned(),
            width,
            height,
            limits,
        });
    }
    if header_is_jpeg(encoded) {
        return decode_jpeg_like_pil(encoded).map_err(bad);
    }
    let mut decoder = reader()?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes);
    decoder.limits(decoder_limits);
    let image = decoder.decode().map_err(|e| bad(e.to_string()))?;
    Ok(to_rgb_like_pil(image))
}

/// `Image.open(...).save(buffer, format="JPEG", quality=quality)` as PIL's wheels write it
/// (libjpeg-turbo's settings: baseline, standard Huffman tables, 4:2:0 chroma): the same
/// bytes. Datasets re-encode photos this way (GeoRanker shows its model each reference photo
/// after PIL's default quality 75), and a model trained on those bytes should see them.
///
/// A grayscale image stays grayscale, as PIL keeps mode `L`; any other image is written from
/// its RGB conversion ([`decode_rgb_like_pil`]), which is what PIL writes for RGB. (PIL would
/// write a CMYK JPEG as CMYK and refuse palette or alpha images, which callers convert to RGB
/// first; photo datasets hold RGB and grayscale JPEGs.)
pub fn reencode_jpeg_like_pil(
    encoded: &[u8],
    name: &str,
    limits: ImageLimits,
    quality: u8,
) -> Result<Vec<u8>, AlignError> {
    use mozjpeg::ColorSpace;
    // PIL's mode `L`: a grayscale JPEG, or an 8- or 16-bit gray image of another format.
    let grayscale = if header_is_jpeg(encoded) {
        std::panic::catch_unwind(|| {
            mozjpeg::Decompress::new_mem(encoded)
                .map(|decompress| decompress.color_space() == ColorSpace::JCS_GRAYSCALE)
                .unwrap_or(false)
        })
        .unwrap_or(false)
    } else {
        ImageReader::new(Cursor::new(encoded))
            .with_guessed_format()
            .ok()
            .and_then(|reader| reader.into_decoder().ok())
            .is_some_and(|decoder| {
                use image::ImageDecoder;
                matches!(
                    decoder.color_type(),
                    image::ColorType::L8 | image::ColorType::L16
                )
            })
    };
    let rgb = decode_rgb_like_pil(encoded, name, limits)?;
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    let (color_space, pixels) = if grayscale {
        let gray: Vec<u8> = rgb.pixels().map(|pixel| pixel[0]).collect();
        (ColorSpace::JCS_GRAYSCALE, gray)
    } else {
        (ColorSpace::JCS_RGB, rgb.into_raw())
    };
    let written = std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut compress = mozjpeg::Compress::new(color_space);
        // libjpeg-turbo's defaults instead of mozjpeg's (trellis quantisation, progressive
        // scans, optimised tables): the encoder PIL's wheels ship.
        compress.set_fastest_defaults();
        compress.set_size(width, height);
        compress.set_quality(f32::from(quality));
        let mut started = compress.start_compress(Vec::new())?;
        started.write_scanlines(&pixels)?;
        started.finish()
    });
    let failed = |reason: String| AlignError::ImageDecode {
        name: name.to_owned(),
        reason: format!("cannot re-encode as JPEG: {reason}"),
    };
    match written {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Err(_) => Err(failed("libjpeg failed".to_owned())),
    }
}

/// Converts any decoded image to 8-bit RGB the way PIL's `convert("RGB")` does on the image
/// PIL would have opened:
///
/// - gray and gray + alpha are replicated into three channels; alpha is dropped (PIL does not
///   composite over a background);
/// - 16-bit gray is clipped at 255 (PIL opens it as mode `I;16` and clips when converting);
/// - other 16-bit images keep their high byte (PIL unpacks 16-bit RGB and RGBA PNGs to 8 bits
///   by dropping the low byte);
/// - palette images arrive expanded by the decoder, CMYK JPEGs converted by it (with the same
///   formula as PIL's).
pub fn to_rgb_like_pil(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma16(gray) => {
            let (width, height) = gray.dimensions();
            RgbImage::from_fn(width, height, |x, y| {
                let value = gray.get_pixel(x, y)[0].min(255) as u8;
                image::Rgb([value; 3])
            })
        }
        DynamicImage::ImageLumaA16(gray) => {
            let (width, height) = gray.dimensions();
            RgbImage::from_fn(width, height, |x, y| {
                let value = (gray.get_pixel(x, y)[0] >> 8) as u8;
                image::Rgb([value; 3])
            })
        }
        DynamicImage::ImageRgb16(rgb) => {
            let (width, height) = rgb.dimensions();
            RgbImage::from_fn(width, height, |x, y| {
                let p = rgb.get_pixel(x, y).0;
                image::Rgb([(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            })
        }
        DynamicImage::ImageRgba16(rgba) => {
            let (width, height) = rgba.dimensions();
            RgbImage::from_fn(width, height, |x, y| {
                let p = rgba.get_pixel(x, y).0;
                image::Rgb([(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            })
        }
        // 8-bit gray, gray + alpha, RGBA: replicate or drop alpha, exactly as PIL.
        other => other.to_rgb8(),
    }
}

fn header_is_jpeg(encoded: &[u8]) -> bool {
    encoded.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes a JPEG with libjpeg-turbo's algorithms (integer IDCT, fancy chroma upsampling), as
/// PIL does, so the bytes match PIL's; the image crate's decoder lands a few levels away.
///
/// Gray JPEGs are replicated into RGB. CMYK and YCCK JPEGs are read as CMYK, inverted as PIL
/// does for every CMYK JPEG ("assume Adobe conventions"), and converted with PIL's
/// `cmyk2rgb`: `channel = (255 - k) - round((255 - k) * c / 255)`.
fn decode_jpeg_like_pil(encoded: &[u8]) -> Result<RgbImage, String> {
    use mozjpeg::ColorSpace;
    // libjpeg reports fatal errors by unwinding out of the decoder; `mozjpeg` turns most into
    // `io::Error`s, and this catches any that escape, so a broken file never aborts a batch.
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<RgbImage> {
        let decompress = mozjpeg::Decompress::new_mem(encoded)?;
        let (width, height) = (decompress.width() as u32, decompress.height() as u32);
        let pixels: Vec<u8> = match decompress.color_space() {
            ColorSpace::JCS_GRAYSCALE => {
                let mut started = decompress.grayscale()?;
                let gray: Vec<u8> = started.read_scanlines()?;
                started.finish()?;
                gray.iter().flat_map(|&value| [value; 3]).collect()
            }
            ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
                let mut started = decompress.to_colorspace(ColorSpace::JCS_CMYK)?;
                let cmyk: Vec<[u8; 4]> = started.read_scanlines()?;
                started.finish()?;
                cmyk.iter()
                    .flat_map(|&pixel| cmyk_to_rgb_like_pil(pixel))
                    .collect()
            }
            _ => {
                let mut started = decompress.rgb()?;
                let rgb: Vec<u8> = started.read_scanlines()?;
                started.finish()?;
                rgb
            }
        };
        RgbImage::from_raw(width, height, pixels).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "decoded size mismatch")
        })
    });
    match decoded {
        Ok(Ok(image)) => Ok(image),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "libjpeg failed".to_owned())),
    }
}

/// One raw (Adobe-inverted) CMYK JPEG pixel to RGB, as PIL's `CMYK;I` unpacking followed by
/// `convert("RGB")`.
fn cmyk_to_rgb_like_pil(raw: [u8; 4]) -> [u8; 3] {
    let [c, m, y, k] = raw.map(|value| 255 - u32::from(value));
    let not_k = 255 - k;
    let channel = |ink: u32| {
        let product = ink * not_k + 128;
        not_k.saturating_sub(((product >> 8) + product) >> 8) as u8
    };
    [channel(c), channel(m), channel(y)]
}

/// HF's `get_resize_output_image_size(..., default_to_square=False)`: the shorter side becomes
/// `shortest_edge`, the longer one `int(shortest_edge * long / short)`. Returns (width, height).
pub fn shortest_edge_size(width: u32, height: u32, shortest_edge: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (f64::from(shortest_edge) * f64::from(long) / f64::from(short)) as u32;
    if width <= height {
        (shortest_edge, new_long)
    } else {
        (new_long, shortest_edge)
    }
}

/// HF's `center_crop`: top = (height - crop) / 2, left = (width - crop) / 2, rounded down;
/// a side shorter than the crop is padded with zeros, centred the same way.
fn center_crop(image: &RgbImage, crop_width: u32, crop_height: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let offset = |size: u32, crop: u32| (i64::from(size) - i64::from(crop)).div_euclid(2);
    let (left, top) = (offset(width, crop_width), offset(height, crop_height));
    RgbImage::from_fn(crop_width, crop_height, |x, y| {
        let (source_x, source_y) = (i64::from(x) + left, i64::from(y) + top);
        if (0..i64::from(width)).contains(&source_x) && (0..i64::from(height)).contains(&source_y) {
            *image.get_pixel(source_x as u32, source_y as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_follows_hf_rounding() {
        assert_eq!(shortest_edge_size(640, 427, 224), (335, 224));
        assert_eq!(shortest_edge_size(300, 517, 224), (224, 386));
        assert_eq!(shortest_edge_size(1, 1, 224), (224, 224));
        assert_eq!(shortest_edge_size(3, 500, 224), (224, 37_333));
    }

    #[test]
    fn center_crop_takes_the_middle_rounding_down() {
        let image = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let crop = center_crop(&image, 2, 2);
        assert_eq!(crop.get_pixel(0, 0).0, [1, 1, 0]);
        assert_eq!(crop.get_pixel(1, 1).0, [2, 2, 0]);
    }

    #[test]
    fn center_crop_pads_small_images_with_zeros() {
        let image = RgbImage::from_pixel(2, 2, image::Rgb([9, 9, 9]));
        let crop = center_crop(&image, 4, 4);
        assert_eq!(crop.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(crop.get_pixel(1, 1).0, [9, 9, 9]);
        assert_eq!(crop.get_pixel(2, 2).0, [9, 9, 9]);
        assert_eq!(crop.get_pixel(3, 3).0, [0, 0, 0]);
    }

    #[test]
    fn config_reads_hf_json_and_refuses_other_filters() {
        let config = ClipImageProcessorConfig::from_json_str(
            r#"{"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}, "resample": 3}"#,
        )
        .unwrap();
        assert_eq!(config.shortest_edge, 336);
        assert_eq!(config.crop_size, (336, 336));
        assert_eq!(
            config.image_mean,
            ClipImageProcessorConfig::default().image_mean
        );
        let error = ClipImageProcessorConfig::from_json_str(r#"{"resample": 2}"#).unwrap_err();
        assert!(error.contains("resample"), "{error}");
        let error = ClipImageProcessorConfig::from_json_str(r#"{"image_std": [0.2, 0.0, 0.3]}"#)
            .unwrap_err();
        assert!(error.contains("image_std"), "{error}");
    }

    #[test]
    fn garbage_and_bombs_are_errors_not_panics() {
        let processor = ClipImageProcessor::default();
        let error = processor
            .decode(b"not an image", "garbage.bin")
            .unwrap_err();
        assert!(error.to_string().contains("garbage.bin"), "{error}");
        // A PNG header announcing 100,000 x 100,000 pixels, and nothing else.
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        // An empty IDAT chunk: the decoder reads the header up to the first one.
        png.extend_from_slice(b"\x00\x00\x00\x00IDAT");
        png.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
        let error = processor.decode(&png, "bomb.png").unwrap_err();
        assert!(
            matches!(error, AlignError::ImageTooLarge { width: 100_000, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("bomb.png"), "{error}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        crc.sum()
    }
}

//! [`ImageInput`]: a query or database photo as its encoded file bytes, and the
//! [`ImageLimits`] every decoder of them applies.

use std::path::Path;
use std::sync::Arc;

/// A photo as the bytes of its file (JPEG, PNG, WebP...), with an identifier.
///
/// Stages receive encoded bytes rather than decoded pixels because they need different
/// things: a CLIP embedder decodes and resizes to 224 x 224, while an LMM client sends the
/// original file as a base64 data URL. Cloning is cheap (the bytes are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct ImageInput {
    id: String,
    encoded: Arc<[u8]>,
}

impl std::fmt::Debug for ImageInput {
    /// Shows the id and the size, not megabytes of bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageInput")
            .field("id", &self.id)
            .field("encoded_bytes", &self.encoded.len())
            .finish()
    }
}

impl ImageInput {
    /// An image from bytes already in memory; `id` names it in outputs and errors
    /// (an `IMG_ID`, a file name).
    pub fn from_bytes(id: impl Into<String>, encoded: impl Into<Arc<[u8]>>) -> Self {
        ImageInput {
            id: id.into(),
            encoded: encoded.into(),
        }
    }

    /// Reads an image file; its id is the path as given.
    pub fn from_path(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let encoded = std::fs::read(path)?;
        Ok(ImageInput::from_bytes(path.display().to_string(), encoded))
    }

    /// The identifier given at construction.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The encoded file bytes.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The media type guessed from the first bytes (`image/jpeg`, `image/png`, `image/webp`,
    /// `image/gif`), or `None` when the format is not recognised.
    pub fn media_type(&self) -> Option<&'static str> {
        let bytes = self.encoded();
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some("image/jpeg")
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some("image/png")
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some("image/webp")
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some("image/gif")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_comes_from_magic_bytes() {
        let jpeg = ImageInput::from_bytes("a", vec![0xFF, 0xD8, 0xFF, 0xE0]);
        assert_eq!(jpeg.media_type(), Some("image/jpeg"));
        let png = ImageInput::from_bytes("b", b"\x89PNG\r\n\x1a\nrest".to_vec());
        assert_eq!(png.media_type(), Some("image/png"));
        assert_eq!(
            ImageInput::from_bytes("c", vec![1, 2, 3]).media_type(),
            None
        );
    }

    #[test]
    fn debug_output_does_not_dump_the_bytes() {
        let image = ImageInput::from_bytes("photo.jpg", vec![7u8; 10_000]);
        assert_eq!(
            format!("{image:?}"),
            r#"ImageInput { id: "photo.jpg", encoded_bytes: 10000 }"#
        );
    }

    #[test]
    fn reading_a_missing_file_is_an_error() {
        assert!(ImageInput::from_path("/nonexistent/g3/image.jpg").is_err());
    }
}

/// Limits on the images g3 decodes, checked from the header before any pixel buffer is
/// allocated: a small file can announce a huge image (the image crate's defaults let a
/// 389 KB PNG decode to 400 MB). One type and one default for every place that decodes
/// photos: dataset decoding, CLIP's preprocessing and the web service's uploads.
///
/// The default follows the reference's PIL: up to 89,478,485 pixels (above which PIL warns
/// of a decompression bomb), at most 32,768 on a side, at most 1 GiB for the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ImageLimits {
    /// Longest accepted width or height, in pixels.
    pub max_side: u32,
    /// Most pixels accepted (width x height).
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate.
    pub max_decoder_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_side: 32_768,
            max_pixels: 89_478_485,
            max_decoder_bytes: 1 << 30,
        }
    }
}

impl ImageLimits {
    /// Whether an image of `width` x `height` pixels is within the limits.
    pub fn admits(&self, width: u32, height: u32) -> bool {
        width <= self.max_side
            && height <= self.max_side
            && u64::from(width) * u64::from(height) <= self.max_pixels
    }
}

#[cfg(test)]
mod limit_tests {
    use super::ImageLimits;

    #[test]
    fn sides_and_pixels_are_both_limits() {
        let limits = ImageLimits::default();
        assert!(limits.admits(4032, 3024));
        assert!(!limits.admits(40_000, 10));
        assert!(!limits.admits(10_000, 10_000));
        assert!(limits.admits(32_768, 2_000));
    }
}

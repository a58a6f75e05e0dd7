//! The query image as the client sends it: its hash (for the answer cache) and its base64
//! data URL (for the request body), each computed once per image however many prompts and
//! retries use it.

use std::sync::OnceLock;

use base64::Engine as _;
use g3_core::ImageInput;

use crate::cache::image_sha256;

/// An image's hash and (lazily) its data URL.
pub(super) struct PreparedImage<'a> {
    /// The image's id, for log lines.
    pub(super) id: &'a str,
    image: &'a ImageInput,
    /// SHA-256 of the encoded file, the image's part of a cache key.
    pub(super) sha256: [u8; 32],
    data_url: OnceLock<String>,
}

impl<'a> PreparedImage<'a> {
    pub(super) fn new(image: &'a ImageInput) -> Self {
        PreparedImage {
            id: image.id(),
            image,
            sha256: image_sha256(image.encoded()),
            data_url: OnceLock::new(),
        }
    }

    /// `data:{media type};base64,...`; unrecognised formats are sent as JPEG, the type
    /// servers are most lenient about.
    pub(super) fn data_url(&self) -> &str {
        self.data_url.get_or_init(|| {
            let media_type = self.image.media_type().unwrap_or("image/jpeg");
            let encoded = base64::engine::general_purpose::STANDARD.encode(self.image.encoded());
            format!("data:{media_type};base64,{encoded}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_url_names_the_media_type_and_falls_back_to_jpeg() {
        let png = ImageInput::from_bytes("a.png", b"\x89PNG\r\n\x1a\nrest".to_vec());
        let prepared = PreparedImage::new(&png);
        assert!(
            prepared
                .data_url()
                .starts_with("data:image/png;base64,iVBORw0K")
        );
        assert_eq!(prepared.sha256, image_sha256(png.encoded()));
        let unknown = ImageInput::from_bytes("b.bin", vec![1, 2, 3]);
        assert_eq!(
            PreparedImage::new(&unknown).data_url(),
            "data:image/jpeg;base64,AQID"
        );
    }
}

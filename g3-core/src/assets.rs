//! Where the files that package registries ship (pretrained weights, galleries, gazetteers)
//! are cached, as laid out by `scripts/fetch-assets.sh`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Environment variable that overrides the cache directory.
pub const CACHE_DIR_VARIABLE: &str = "G3_CACHE_DIR";

/// The asset cache: `$G3_CACHE_DIR`, else `$HOME/.cache/g3`, else `.g3-cache` in the current
/// directory.
pub fn cache_dir() -> PathBuf {
    if let Some(directory) = std::env::var_os(CACHE_DIR_VARIABLE).filter(|value| !value.is_empty())
    {
        return PathBuf::from(directory);
    }
    match std::env::var_os("HOME").filter(|value| !value.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("g3"),
        None => PathBuf::from(".g3-cache"),
    }
}

/// One file of the asset cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Sub-directory of the cache, named after the package and version it comes from.
    pub directory: &'static str,
    /// File name.
    pub file: &'static str,
}

impl Asset {
    /// GeoCLIP's pretrained location encoder (`geoclip==1.3.0`, MIT): the weights G3 starts from.
    pub const GEOCLIP_LOCATION_ENCODER: Asset = Asset {
        directory: "geoclip-1.3.0",
        file: "location_encoder_weights.pth",
    };
    /// GeoCLIP's image MLP (768 → 768 → 512 on CLIP ViT-L/14 image features).
    pub const GEOCLIP_IMAGE_MLP: Asset = Asset {
        directory: "geoclip-1.3.0",
        file: "image_encoder_mlp_weights.pth",
    };
    /// GeoCLIP's learned logit scale.
    pub const GEOCLIP_LOGIT_SCALE: Asset = Asset {
        directory: "geoclip-1.3.0",
        file: "logit_scale_weights.pth",
    };
    /// GeoCLIP's GPS gallery: 100,000 MP16 coordinates, header `LAT,LON`.
    pub const GEOCLIP_GPS_GALLERY: Asset = Asset {
        directory: "geoclip-1.3.0",
        file: "coordinates_100K.csv",
    };
    /// OpenAI CLIP's BPE merges (`bpe_simple_vocab_16e6.txt.gz`, MIT) as `open_clip_torch==3.3.0`
    /// ships them: the vocabulary of every CLIP text tower, from which the tokenizer is built.
    pub const CLIP_BPE_VOCABULARY: Asset = Asset {
        directory: "open_clip_torch-3.3.0",
        file: "bpe_simple_vocab_16e6.txt.gz",
    };

    /// Where the file is, or would be, in the cache.
    pub fn path(&self) -> PathBuf {
        cache_dir().join(self.directory).join(self.file)
    }

    /// The file's path if it is in the cache, else [`Error::MissingAsset`] saying how to fetch it.
    pub fn require(&self) -> Result<PathBuf> {
        let path = self.path();
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingAsset { path })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_asset_names_the_fetch_script() {
        let asset = Asset {
            directory: "no-such-package-0.0.0",
            file: "nothing.bin",
        };
        let message = asset.require().unwrap_err().to_string();
        assert!(message.contains("scripts/fetch-assets.sh"), "{message}");
        assert!(message.contains("no-such-package-0.0.0"), "{message}");
    }
}

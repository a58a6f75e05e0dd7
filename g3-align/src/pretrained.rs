//! Opening pretrained models from local files: an HF model directory or a G3 checkpoint
//! file. Nothing here touches the network or knows where caches are.

use std::path::{Path, PathBuf};

use burn::prelude::Device;

use crate::clip::{
    ClipConfig, ClipImageProcessor, ClipImageProcessorConfig, ClipModel, ClipTokenizer,
};
use crate::error::AlignError;

/// The files of an HF CLIP model directory that g3-rs reads.
pub const HF_CLIP_FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
];

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// An HF model directory (`config.json` and `model.safetensors` or `pytorch_model.bin`).
    HfDirectory(PathBuf),
    /// A single checkpoint file (a G3 `g3.pth`, or safetensors with G3's keys).
    Checkpoint(PathBuf),
}

impl ModelSource {
    /// An existing directory (an HF model) or file (a checkpoint) at `path`; `None` when
    /// nothing is there. Repo ids are found in the HF cache by the facade
    /// (`g3::published::LocalFiles`), which knows where `g3 fetch` puts them.
    pub fn from_path(path: &Path) -> Option<Self> {
        if path.is_dir() {
            Some(ModelSource::HfDirectory(path.to_path_buf()))
        } else if path.is_file() {
            Some(ModelSource::Checkpoint(path.to_path_buf()))
        } else {
            None
        }
    }
}

/// An HF CLIP model directory, checked and ready to load.
#[derive(Debug, Clone)]
pub struct HfClipDirectory {
    directory: PathBuf,
    config: ClipConfig,
    weights: PathBuf,
}

impl HfClipDirectory {
    /// Reads `config.json` and finds the weights (`model.safetensors`, else
    /// `pytorch_model.bin`).
    pub fn open(directory: &Path) -> Result<Self, AlignError> {
        let config = ClipConfig::from_json_file(&directory.join("config.json"))?;
        let weights = ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .map(|file| directory.join(file))
            .find(|path| path.is_file())
            .ok_or_else(|| AlignError::ModelNotFound {
                name: directory.display().to_string(),
                help: "the directory has no model.safetensors or pytorch_model.bin".to_owned(),
            })?;
        Ok(HfClipDirectory {
            directory: directory.to_path_buf(),
            config,
            weights,
        })
    }

    /// The architecture from `config.json`.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// The weights file.
    pub fn weights(&self) -> &Path {
        &self.weights
    }

    /// The model, loaded onto `device`.
    pub fn load_model(&self, device: &Device) -> Result<ClipModel, AlignError> {
        let mut model = ClipModel::new(&self.config, device);
        crate::loader::load_clip_model(&mut model, &self.weights)?;
        Ok(model)
    }

    /// The image processor from `preprocessor_config.json`, or OpenAI CLIP's settings when the
    /// directory has none.
    pub fn image_processor(&self) -> Result<ClipImageProcessor, AlignError> {
        let path = self.directory.join("preprocessor_config.json");
        let config = if path.is_file() {
            ClipImageProcessorConfig::from_json_file(&path)?
        } else {
            ClipImageProcessorConfig::default()
        };
        Ok(ClipImageProcessor::new(config))
    }

    /// The tokenizer from `tokenizer.json`, or built from OpenAI's BPE vocabulary in the
    /// asset cache when the directory has none.
    pub fn tokenizer(&self) -> Result<ClipTokenizer, AlignError> {
        let path = self.directory.join("tokenizer.json");
        if path.is_file() {
            return ClipTokenizer::from_tokenizer_json(&path);
        }
        let vocabulary = g3_core::assets::Asset::CLIP_BPE_VOCABULARY
            .require()
            .map_err(|error| AlignError::ModelNotFound {
                name: path.display().to_string(),
                help: error.to_string(),
            })?;
        ClipTokenizer::from_bpe_vocabulary(&vocabulary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_an_hf_model_and_a_file_a_checkpoint() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("g3.pth");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            ModelSource::from_path(directory.path()),
            Some(ModelSource::HfDirectory(directory.path().to_path_buf()))
        );
        assert_eq!(
            ModelSource::from_path(&file),
            Some(ModelSource::Checkpoint(file.clone()))
        );
        assert_eq!(ModelSource::from_path(&directory.path().join("none")), None);
    }
}

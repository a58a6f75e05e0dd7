//! Finding and opening pretrained models from local files: an HF model directory, an HF repo
//! id found in the standard HF cache (where `g3 fetch` and Python's `huggingface_hub` put
//! models), or a G3 checkpoint file. Nothing here touches the network.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use g3_hub::{HubCache, Repo};

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
    /// Resolves what a user typed: an existing directory or file, or an HF repo id
    /// (`openai/clip-vit-large-patch14`) whose snapshot in the HF cache
    /// ([`HubCache::from_env`]) has a `config.json`. A repo id found nowhere is an error
    /// saying how to fetch it and which files to place where.
    pub fn resolve(name: &str) -> Result<Self, AlignError> {
        ModelSource::resolve_in(name, &HubCache::from_env())
    }

    /// [`resolve`](Self::resolve) with repo ids looked up in `cache`.
    pub fn resolve_in(name: &str, cache: &HubCache) -> Result<Self, AlignError> {
        let path = Path::new(name);
        if path.is_dir() {
            return Ok(ModelSource::HfDirectory(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(ModelSource::Checkpoint(path.to_path_buf()));
        }
        if let Ok(repo) = Repo::model(name) {
            if let Some(config) = cache.cached_file(&repo, "config.json")
                && let Some(directory) = config.parent()
            {
                return Ok(ModelSource::HfDirectory(directory.to_path_buf()));
            }
            let fetch = if name == "openai/clip-vit-large-patch14" {
                "`g3 fetch clip`".to_owned()
            } else {
                format!("`huggingface-cli download {name}`")
            };
            return Err(AlignError::ModelNotFound {
                name: name.to_owned(),
                help: format!(
                    "it is not in the HF cache ({}). Fetch it with {fetch}; without a network, copy {} of {name} into a directory and pass that directory",
                    cache.root().display(),
                    HF_CLIP_FILES.join(", "),
                ),
            });
        }
        Err(AlignError::ModelNotFound {
            name: name.to_owned(),
            help: "no such file or directory, and not an HF repo id (owner/name)".to_owned(),
        })
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
    fn an_unknown_repo_id_says_which_files_to_place() {
        let error = ModelSource::resolve("nobody-here/no-such-model-g3test")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nobody-here/no-such-model-g3test"),
            "{error}"
        );
        assert!(error.contains("model.safetensors"), "{error}");
        assert!(error.contains("huggingface-cli download"), "{error}");
        let error = ModelSource::resolve_in(
            "openai/clip-vit-large-patch14",
            &HubCache::new("/nonexistent-g3-cache"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("g3 fetch clip"), "{error}");
        assert!(error.contains("/nonexistent-g3-cache"), "{error}");
        let error = ModelSource::resolve("no/such/path.pth")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no such file"), "{error}");
    }
}

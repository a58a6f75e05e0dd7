//! Finding and opening pretrained models from local files: an HF model directory, an HF repo
//! id resolved through the local HF hub cache, or a G3 checkpoint file.
//!
//! Nothing here touches the network, except [`download_hf_model`] (cargo feature `download`),
//! which fills the g3 model cache ([`g3_model_cache`]) from an HF hub endpoint when a network
//! exists.

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
    /// Resolves what a user typed: an existing directory or file, or an HF repo id
    /// (`openai/clip-vit-large-patch14`) found in the HF hub cache (`$HF_HUB_CACHE`,
    /// `$HF_HOME/hub` or `~/.cache/huggingface/hub`) or in the g3 model cache. A repo id
    /// found nowhere is an error saying which files to place where.
    pub fn resolve(name: &str) -> Result<Self, AlignError> {
        let path = Path::new(name);
        if path.is_dir() {
            return Ok(ModelSource::HfDirectory(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(ModelSource::Checkpoint(path.to_path_buf()));
        }
        if let Some((owner, repository)) = repo_id(name) {
            if let Some(directory) = hf_hub_snapshot(owner, repository) {
                return Ok(ModelSource::HfDirectory(directory));
            }
            let ours = g3_model_cache(owner, repository);
            if ours.join("config.json").is_file() {
                return Ok(ModelSource::HfDirectory(ours));
            }
            return Err(AlignError::ModelNotFound {
                name: name.to_owned(),
                help: format!(
                    "it is not in the HF hub cache ({}) nor in {}. Without a network, copy {} \
                     of {name} into a directory and pass that directory; with one, build g3 with \
                     the `download` feature to fetch them",
                    hf_hub_cache().display(),
                    ours.display(),
                    HF_CLIP_FILES.join(", ")
                ),
            });
        }
        Err(AlignError::ModelNotFound {
            name: name.to_owned(),
            help: "no such file or directory, and not an HF repo id (owner/name)".to_owned(),
        })
    }
}

impl ModelSource {
    /// [`ModelSource::resolve`], and when `name` is an HF repo id found nowhere locally,
    /// [`download_hf_model`] into the g3 model cache first.
    #[cfg(feature = "download")]
    pub fn resolve_or_download(
        name: &str,
        endpoint: &str,
        token: Option<&str>,
        progress: &mut dyn FnMut(&str, u64, Option<u64>),
    ) -> Result<Self, AlignError> {
        match ModelSource::resolve(name) {
            Err(AlignError::ModelNotFound { .. }) if repo_id(name).is_some() => Ok(
                ModelSource::HfDirectory(download_hf_model(name, endpoint, token, progress)?),
            ),
            other => other,
        }
    }
}

/// `owner/name` with no other slash and no path-like start.
fn repo_id(name: &str) -> Option<(&str, &str)> {
    let (owner, repository) = name.split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !part.starts_with('.')
    };
    (valid(owner) && valid(repository)).then_some((owner, repository))
}

/// The HF hub cache directory, as `huggingface_hub` finds it.
pub fn hf_hub_cache() -> PathBuf {
    let variable = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(cache) = variable("HF_HUB_CACHE") {
        return PathBuf::from(cache);
    }
    if let Some(home) = variable("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    match variable("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/huggingface/hub"),
        None => PathBuf::from(".cache/huggingface/hub"),
    }
}

/// The snapshot of `owner/repository` in the HF hub cache that `refs/main` points to (or,
/// without refs, any snapshot holding a `config.json`).
pub fn hf_hub_snapshot(owner: &str, repository: &str) -> Option<PathBuf> {
    let model = hf_hub_cache().join(format!("models--{owner}--{repository}"));
    let snapshots = model.join("snapshots");
    if let Ok(reference) = std::fs::read_to_string(model.join("refs/main")) {
        let directory = snapshots.join(reference.trim());
        if directory.join("config.json").is_file() {
            return Some(directory);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|directory| directory.join("config.json").is_file())
        .collect();
    candidates.sort();
    candidates.pop()
}

/// Where the `download` feature of the `g3` crate puts `owner/repository`:
/// `<g3 cache>/huggingface/owner--repository`.
pub fn g3_model_cache(owner: &str, repository: &str) -> PathBuf {
    g3_core::assets::cache_dir()
        .join("huggingface")
        .join(format!("{owner}--{repository}"))
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

/// The public HF hub, where [`download_hf_model`] fetches from unless told otherwise
/// (`huggingface_hub` reads the same override from `HF_ENDPOINT`).
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// Downloads an HF CLIP model (`owner/name`) from `endpoint` into the g3 model cache and
/// returns its directory. `config.json` and `model.safetensors` are required,
/// `preprocessor_config.json` and `tokenizer.json` fetched when the repository has them.
/// Each file is written to a temporary file and renamed into place when complete, and files
/// already there are kept, so an interrupted download resumes file by file. `token`, if any,
/// is sent as a bearer token (gated repositories). `progress` gets (file, bytes so far,
/// total bytes if known).
///
/// Offline, or when the endpoint refuses, the error says which files to place where instead.
#[cfg(feature = "download")]
pub fn download_hf_model(
    name: &str,
    endpoint: &str,
    token: Option<&str>,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<PathBuf, AlignError> {
    let (owner, repository) = repo_id(name).ok_or_else(|| AlignError::ModelNotFound {
        name: name.to_owned(),
        help: "not an HF repo id (owner/name)".to_owned(),
    })?;
    let target = g3_model_cache(owner, repository);
    download_hf_model_into(name, endpoint, token, &target, progress)?;
    Ok(target)
}

/// [`download_hf_model`] into a directory of the caller's choosing.
#[cfg(feature = "download")]
pub fn download_hf_model_into(
    name: &str,
    endpoint: &str,
    token: Option<&str>,
    target: &Path,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<(), AlignError> {
    use std::io::{Read, Write};

    let (owner, repository) = repo_id(name).ok_or_else(|| AlignError::ModelNotFound {
        name: name.to_owned(),
        help: "not an HF repo id (owner/name)".to_owned(),
    })?;
    let offline_help = |problem: String| AlignError::ModelNotFound {
        name: name.to_owned(),
        help: format!(
            "{problem}. Without a network, copy {} of {name} into {} (or any directory, and pass it)",
            HF_CLIP_FILES.join(", "),
            target.display()
        ),
    };
    let io_error = |path: &Path, source| AlignError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(target).map_err(|source| io_error(target, source))?;
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .build(),
    );
    let required = ["config.json", "model.safetensors"];
    for file in HF_CLIP_FILES {
        let destination = target.join(file);
        if destination.is_file() {
            continue;
        }
        let url = format!(
            "{}/{owner}/{repository}/resolve/main/{file}",
            endpoint.trim_end_matches('/')
        );
        let mut request = agent.get(&url);
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .map_err(|error| offline_help(format!("cannot download {url}: {error}")))?;
        let status = response.status().as_u16();
        if status == 404 && !required.contains(&file) {
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(offline_help(format!("{url} answered HTTP {status}")));
        }
        let total = response
            .headers()
            .get("content-length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        // Under a temporary name until complete: a broken download never looks finished.
        let mut temporary = g3_core::atomic::AtomicFile::create(&destination)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            let read = reader
                .read(&mut buffer)
                .map_err(|error| offline_help(format!("download of {url} broke off: {error}")))?;
            if read == 0 {
                break;
            }
            temporary
                .write_all(&buffer[..read])
                .map_err(|source| io_error(&destination, source))?;
            written += read as u64;
            progress(file, written, total);
        }
        if total.is_some_and(|total| total != written) {
            return Err(offline_help(format!(
                "{url} ended after {written} of {} bytes",
                total.unwrap_or_default()
            )));
        }
        temporary.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_owner_slash_name() {
        assert_eq!(
            repo_id("openai/clip-vit-large-patch14"),
            Some(("openai", "clip-vit-large-patch14"))
        );
        assert_eq!(
            repo_id("Jia-py/G3-checkpoint"),
            Some(("Jia-py", "G3-checkpoint"))
        );
        assert_eq!(repo_id("a/b/c"), None);
        assert_eq!(repo_id("/abs"), None);
        assert_eq!(repo_id("./x"), None);
        assert_eq!(repo_id("plain"), None);
    }

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
        assert!(error.contains("download"), "{error}");
        let error = ModelSource::resolve("no/such/path.pth")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no such file"), "{error}");
    }
}

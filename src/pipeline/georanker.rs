//! GeoRanker (NeurIPS 2025) in the pipeline: G3's retrieval and an LMM's zero-shot answers
//! fill the pool, and Qwen2-VL-7B-Instruct with GeoRanker's LoRA adapter and value head
//! scores each candidate against the query photo ([`g3_qwen2_vl::GeoRankerVerifier`]). The
//! retrieved candidates' place names come from the database's metadata and their photos from
//! MP16-Pro's archive (or a folder), by image id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use g3_align::pretrained::ModelSource;
use g3_core::assets::cache_dir;
use g3_core::{ImageInput, StageKind};
use g3_data::{FolderImageSource, ImageSource, TarShardImageSource};
use g3_index::Database;
use g3_qwen2_vl::{
    ChatTemplate, GeoRankerConfig, GeoRankerVerifier, MemoryPlan, PlaceNames, Precision,
    PromptTokenizer, ReferenceLookup, available_memory, load_reward_model_in,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, MissingFile, Result};
use crate::published::LocalFiles;

/// GeoRanker's base model on the HF hub.
pub const GEORANKER_BASE_MODEL: &str = "Qwen/Qwen2-VL-7B-Instruct";
/// Where GeoRanker publishes its adapter: the `checkpoints/` folder of its GitHub repository
/// (not the HF hub).
pub const GEORANKER_REPOSITORY: &str = "Applied-Machine-Learning-Lab/GeoRanker";
/// The adapter's files, in that folder.
pub const GEORANKER_ADAPTER_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];
/// Git's blob SHA-1 of the published `adapter_model.safetensors` (`git hash-object` prints
/// it for a good download; the repository stores the file in git itself, not in LFS).
pub const GEORANKER_ADAPTER_BLOB_SHA1: &str = "c9d48d93bce2cb5b5edb4543efb350c51c8d7c43";
/// The files of the base model a GeoRanker verifier reads (the weights are listed by
/// `model.safetensors.index.json`).
pub const GEORANKER_MODEL_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors.index.json",
];

/// The GeoRanker verifier's settings: where its files are, which metadata columns name the
/// reference photos and places, and GeoRanker's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoRankerSettings {
    /// The base model: a directory, or an HF repo id found in the HF cache (`g3 fetch
    /// georanker`).
    pub model: String,
    /// The folder of GeoRanker's adapter (`adapter_config.json`,
    /// `adapter_model.safetensors`); default: `georanker` in the g3 asset cache.
    pub adapter: Option<PathBuf>,
    /// Where the database's photos are: MP16-Pro's tar archives (their index is saved beside
    /// the first), or one folder of photos named by image id.
    pub photos: Vec<PathBuf>,
    /// The database's metadata column holding each entry's image id.
    pub id_column: String,
    /// The metadata column of the city.
    pub city_column: String,
    /// The metadata column of the state.
    pub state_column: String,
    /// The metadata column of the country.
    pub country_column: String,
    /// The reward model's precision: `f32` (default), or `f16`/`bf16` on GPUs (half the
    /// memory: the 7B model in 17 GB instead of 33).
    pub precision: Precision,
    /// GeoRanker's settings (negatives, batch size, image budget).
    pub ranker: GeoRankerConfig,
}

impl Default for GeoRankerSettings {
    fn default() -> Self {
        GeoRankerSettings {
            model: GEORANKER_BASE_MODEL.to_owned(),
            adapter: None,
            photos: Vec::new(),
            id_column: "IMG_ID".to_owned(),
            city_column: "city".to_owned(),
            state_column: "state".to_owned(),
            country_column: "country".to_owned(),
            precision: Precision::F32,
            ranker: GeoRankerConfig::default(),
        }
    }
}

/// The adapter folder when none is configured.
pub fn default_adapter_folder() -> PathBuf {
    cache_dir().join("georanker")
}

/// What the adapter folder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterStatus {
    /// These files are missing.
    Missing(Vec<PathBuf>),
    /// GeoRanker's published adapter (its git blob hash matches).
    Published,
    /// Another adapter (a retrained one, or a damaged download), with its git blob hash.
    Other {
        /// `git hash-object adapter_model.safetensors`.
        blob_sha1: String,
    },
}

/// Checks the adapter folder: both files there, and whether the weights are GeoRanker's
/// published ones.
pub fn adapter_status(folder: &Path) -> std::io::Result<AdapterStatus> {
    let missing: Vec<PathBuf> = GEORANKER_ADAPTER_FILES
        .iter()
        .map(|file| folder.join(file))
        .filter(|path| !path.is_file())
        .collect();
    if !missing.is_empty() {
        return Ok(AdapterStatus::Missing(missing));
    }
    let blob_sha1 = git_blob_sha1(&folder.join("adapter_model.safetensors"))?;
    Ok(if blob_sha1 == GEORANKER_ADAPTER_BLOB_SHA1 {
        AdapterStatus::Published
    } else {
        AdapterStatus::Other { blob_sha1 }
    })
}

/// Git's hash of a file's content (`git hash-object`): SHA-1 of `blob {size}\0{bytes}`.
pub fn git_blob_sha1(path: &Path) -> std::io::Result<String> {
    use sha1::{Digest, Sha1};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {size}\0").as_bytes());
    let mut buffer = vec![0_u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// GeoRanker's files, found on disk.
#[derive(Debug, Clone)]
pub(crate) struct GeoRankerFiles {
    model: PathBuf,
    adapter: PathBuf,
}

impl GeoRankerSettings {
    /// The adapter folder.
    pub fn adapter_folder(&self) -> PathBuf {
        self.adapter.clone().unwrap_or_else(default_adapter_folder)
    }

    /// Finds the model and adapter, recording each missing file in `missing`.
    pub(crate) fn find_files(
        &self,
        local: &LocalFiles,
        missing: &mut Vec<MissingFile>,
    ) -> Option<GeoRankerFiles> {
        let before = missing.len();
        let model = match local.model(&self.model) {
            Ok(ModelSource::HfDirectory(directory)) => Some(directory),
            Ok(ModelSource::Checkpoint(file)) => {
                missing.push(MissingFile {
                    what: format!("GeoRanker's base model {}", self.model),
                    looked_for: format!("{} is a file; the model is a directory", file.display()),
                    how_to_get:
                        "`g3 fetch georanker`, or set verifier.model to the model's directory"
                            .to_owned(),
                });
                None
            }
            Err(error) => {
                missing.push(MissingFile {
                    what: format!("GeoRanker's base model {}", self.model),
                    looked_for: error.to_string(),
                    how_to_get: "`g3 fetch georanker` (about 16 GB); without a network, copy the model's config.json, tokenizer files, model.safetensors.index.json and its shards into a directory and set verifier.model to it".to_owned(),
                });
                None
            }
        };
        if let Some(model) = &model {
            for file in GEORANKER_MODEL_FILES {
                // A model small enough for one weights file has no index.
                let present = model.join(file).is_file()
                    || (file == "model.safetensors.index.json"
                        && model.join("model.safetensors").is_file());
                if !present {
                    missing.push(MissingFile {
                        what: format!("{file} of GeoRanker's base model"),
                        looked_for: model.join(file).display().to_string(),
                        how_to_get: "`g3 fetch georanker`".to_owned(),
                    });
                }
            }
        }
        let adapter = self.adapter_folder();
        for file in GEORANKER_ADAPTER_FILES {
            if !adapter.join(file).is_file() {
                missing.push(MissingFile {
                    what: format!("GeoRanker's LoRA adapter and value head: {file}"),
                    looked_for: adapter.join(file).display().to_string(),
                    how_to_get: format!(
                        "download checkpoints/{file} of the GitHub repository {GEORANKER_REPOSITORY} (the adapter is not on the HF hub; `git hash-object adapter_model.safetensors` prints {GEORANKER_ADAPTER_BLOB_SHA1} for the published one) into {}, or set verifier.adapter to its folder",
                        adapter.display()
                    ),
                });
            }
        }
        if self.photos.is_empty() {
            missing.push(MissingFile {
                what: "the database's photos (GeoRanker shows the model each retrieved candidate's photo)".to_owned(),
                looked_for: "verifier.photos".to_owned(),
                how_to_get: "MP16-Pro's tar archives (HF dataset Jia-py/MP16-Pro) or a folder of the photos named by image id; set verifier.photos = [\"mp-16-images.tar\"]".to_owned(),
            });
        }
        for path in &self.photos {
            if !path.exists() {
                missing.push(MissingFile {
                    what: "the database's photos (verifier.photos)".to_owned(),
                    looked_for: path.display().to_string(),
                    how_to_get: "MP16-Pro's tar archives (HF dataset Jia-py/MP16-Pro) or a folder of the photos named by image id".to_owned(),
                });
            }
        }
        (missing.len() == before).then(|| GeoRankerFiles {
            model: model.expect("found when nothing is missing"),
            adapter,
        })
    }

    /// Loads the verifier: checks the memory plan, loads the model with the adapter merged,
    /// and opens the database's metadata and photos.
    pub(crate) fn load(
        &self,
        files: &GeoRankerFiles,
        database: &Path,
        device: &g3_align::Device,
        on_cpu: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<GeoRankerVerifier> {
        let plan =
            MemoryPlan::of_model_folder(&files.model).map_err(Error::load_path(&files.model))?;
        if on_cpu && let Some(available) = available_memory() {
            plan.check(available)
                .map_err(Error::load("GeoRanker's reward model"))?;
        }
        progress(&format!(
            "loading GeoRanker's reward model ({:.1} billion parameters, {:.1} GB in f32, computing in {})",
            plan.parameters as f64 / 1e9,
            plan.f32_bytes as f64 / 1e9,
            self.precision
        ));
        let model = load_reward_model_in(&files.model, &files.adapter, device, self.precision)
            .map_err(Error::load("GeoRanker's reward model"))?;
        let template = ChatTemplate::from_model_folder(&files.model)
            .map_err(Error::load_path(&files.model))?;
        let tokenizer = PromptTokenizer::from_model_folder(&files.model)
            .map_err(Error::load_path(&files.model))?;
        progress("opening the database's metadata and photos for GeoRanker");
        let references = DatabaseReferences::open(self, database)?;
        Ok(GeoRankerVerifier::new(
            model,
            template,
            tokenizer,
            Arc::new(references),
            self.ranker.clone(),
        ))
    }
}

/// Place names and photos of database entries, by key: the database's metadata (opened
/// memory-mapped beside the pipeline's) and a photo source.
struct DatabaseReferences {
    database: Database,
    rows: KeyRows,
    columns: [String; 4],
    photos: Box<dyn ImageSource>,
}

/// Key → row of the metadata: the identity when keys are rows (the default), else a map.
enum KeyRows {
    Identity,
    Map(HashMap<u64, usize>),
}

impl DatabaseReferences {
    fn open(settings: &GeoRankerSettings, path: &Path) -> Result<Self> {
        let database = Database::open(path).map_err(Error::load_path(path))?;
        let metadata = database.metadata();
        let columns = [
            settings.id_column.clone(),
            settings.city_column.clone(),
            settings.state_column.clone(),
            settings.country_column.clone(),
        ];
        let absent: Vec<&String> = columns
            .iter()
            .filter(|column| !metadata.text_columns().contains(column))
            .collect();
        if !absent.is_empty() {
            return Err(Error::InvalidPipeline(format!(
                "{}: GeoRanker needs the metadata columns {absent:?} (the database has {:?}); build the database from MP16-Pro's metadata, or set verifier.id_column, city_column, state_column and country_column",
                path.display(),
                metadata.text_columns()
            )));
        }
        let keys = metadata.keys();
        let rows = if keys.iter().enumerate().all(|(row, &key)| key == row as u64) {
            KeyRows::Identity
        } else {
            KeyRows::Map(
                keys.iter()
                    .enumerate()
                    .map(|(row, &key)| (key, row))
                    .collect(),
            )
        };
        let photos: Box<dyn ImageSource> = match settings.photos.as_slice() {
            [folder] if folder.is_dir() => {
                Box::new(FolderImageSource::new(folder.clone()).map_err(Error::load_path(folder))?)
            }
            archives => Box::new(
                TarShardImageSource::open_beside(archives)
                    .map_err(Error::load("the database's photo archives"))?,
            ),
        };
        Ok(DatabaseReferences {
            database,
            rows,
            columns,
            photos,
        })
    }

    fn row(&self, key: u64) -> g3_core::Result<usize> {
        let row = match &self.rows {
            KeyRows::Identity => {
                Some(key as usize).filter(|&row| row < self.database.metadata().len())
            }
            KeyRows::Map(map) => map.get(&key).copied(),
        };
        row.ok_or_else(|| {
            g3_core::Error::stage(
                StageKind::Verifier,
                format!("the database has no entry with key {key}"),
            )
        })
    }

    fn text(&self, row: usize, column: usize) -> String {
        self.database
            .metadata()
            .text(row, &self.columns[column])
            .unwrap_or_default()
            .to_owned()
    }
}

impl ReferenceLookup for DatabaseReferences {
    fn places(&self, key: u64) -> g3_core::Result<PlaceNames> {
        let row = self.row(key)?;
        Ok(PlaceNames {
            city: self.text(row, 1),
            state: self.text(row, 2),
            country: self.text(row, 3),
        })
    }

    fn photo(&self, key: u64) -> g3_core::Result<ImageInput> {
        let row = self.row(key)?;
        let id = self.text(row, 0);
        self.photos.get(&id).map_err(|error| {
            g3_core::Error::stage(
                StageKind::Verifier,
                format!("the photo {id:?} of database entry {key}: {error}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_hashes_are_gits() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("hello.txt");
        std::fs::write(&path, "hello\n").unwrap();
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(&path).unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn the_adapter_folder_is_checked() {
        let directory = tempfile::tempdir().unwrap();
        let status = adapter_status(directory.path()).unwrap();
        assert_eq!(
            status,
            AdapterStatus::Missing(vec![
                directory.path().join("adapter_config.json"),
                directory.path().join("adapter_model.safetensors")
            ])
        );
        for file in GEORANKER_ADAPTER_FILES {
            std::fs::write(directory.path().join(file), "{}").unwrap();
        }
        assert!(matches!(
            adapter_status(directory.path()).unwrap(),
            AdapterStatus::Other { .. }
        ));
    }
}

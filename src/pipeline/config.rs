//! Pipelines described as data: TOML files and the paper's presets.

use std::path::{Path, PathBuf};

use g3_align::{ComputeDevice, Precision};
use g3_prompt::{DensityPeakGenerator, OpenAiConfig, PromptEnsembleConfig, PromptSpec};
use g3_verify::KernelDensityVerifier;
use serde::{Deserialize, Serialize};

use g3_core::ReferenceCounts;

use super::georanker::GeoRankerSettings;
use super::{AnswerPolicy, EmptyPool, MinAnswers, NeighborCounts, PipelineSettings};
use crate::error::{Error, Result};

/// The paper's method, its ablations and its baselines, each a complete [`PipelineConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// G3: G3 database embeddings, the four-prompt ensemble, the retrieved top-1 in the pool,
    /// image–GPS verification.
    G3,
    /// "w/o Geo-A": the database holds plain CLIP image embeddings; verification still uses
    /// G3's heads.
    G3NoAlign,
    /// "w/o Geo-D": one prompt quoting 10 similar and 10 dissimilar coordinates.
    G3NoDiversification,
    /// "w/o Geo-V": a seeded random pick among the candidates.
    G3NoVerification,
    /// Img2Loc: retrieval over plain CLIP embeddings, one prompt with 10 similar and 10
    /// dissimilar coordinates answered once, and that answer taken as the prediction.
    #[serde(rename = "img2loc")]
    Img2Loc,
    /// GeoCLIP: GeoCLIP's image embedding against its 100K-point GPS gallery; no database,
    /// no LMM.
    #[serde(rename = "geoclip")]
    GeoClip,
    /// [L]kNN: the kernel-density peak among the 16 most similar database images.
    Knn,
    /// GeoRanker (NeurIPS 2025): G3's retrieval (its top 10 in the pool, ranks 15 to 19 as
    /// negative examples) and 5 zero-shot LMM answers, scored by Qwen2-VL-7B-Instruct with
    /// GeoRanker's LoRA adapter and value head.
    #[serde(rename = "georanker")]
    GeoRanker,
}

impl Preset {
    /// Every preset: the paper's, in the order of its tables, then its successor GeoRanker.
    pub const ALL: [Preset; 8] = [
        Preset::G3,
        Preset::G3NoAlign,
        Preset::G3NoDiversification,
        Preset::G3NoVerification,
        Preset::Img2Loc,
        Preset::GeoClip,
        Preset::Knn,
        Preset::GeoRanker,
    ];

    /// The name used on the command line and in config files (`g3-no-align`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::G3 => "g3",
            Preset::G3NoAlign => "g3-no-align",
            Preset::G3NoDiversification => "g3-no-diversification",
            Preset::G3NoVerification => "g3-no-verification",
            Preset::Img2Loc => "img2loc",
            Preset::GeoClip => "geoclip",
            Preset::Knn => "knn",
            Preset::GeoRanker => "georanker",
        }
    }

    /// The preset called `name`, or an error listing the names.
    pub fn from_name(name: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|preset| preset.name() == name)
            .ok_or_else(|| {
                Error::InvalidPipeline(format!(
                    "no preset named {name:?}; presets: {}",
                    Preset::ALL.map(Preset::name).join(", ")
                ))
            })
    }

    /// The complete configuration of this preset.
    pub fn config(self) -> PipelineConfig {
        let g3 = PipelineConfig::default();
        let config = match self {
            Preset::G3 => g3,
            Preset::G3NoAlign => PipelineConfig {
                query_embedding: QueryEmbeddingKind::Clip,
                ..g3
            },
            Preset::G3NoDiversification => PipelineConfig {
                generation: GenerationConfig {
                    ensemble: PromptEnsembleConfig::without_diversification(),
                    ..g3.generation.clone()
                },
                ..g3
            },
            Preset::G3NoVerification => PipelineConfig {
                verifier: VerifierConfig::Random,
                ..g3
            },
            Preset::Img2Loc => PipelineConfig {
                query_embedding: QueryEmbeddingKind::Clip,
                generation: GenerationConfig {
                    ensemble: PromptEnsembleConfig {
                        prompts: vec![PromptSpec {
                            similar: 10,
                            dissimilar: 10,
                            samples: 1,
                            ..PromptSpec::default()
                        }],
                        ..PromptEnsembleConfig::default()
                    },
                    ..g3.generation.clone()
                },
                pool: PipelineSettings {
                    retrieved_candidates: 0,
                    ..g3.pool
                },
                verifier: VerifierConfig::First,
                ..g3
            },
            Preset::GeoClip => PipelineConfig {
                query_embedding: QueryEmbeddingKind::GeoClip,
                generation: GenerationConfig {
                    enabled: false,
                    ..g3.generation.clone()
                },
                pool: PipelineSettings {
                    retrieved_candidates: 0,
                    gallery_candidates: 16,
                    empty_pool: EmptyPool::Error,
                    ..g3.pool
                },
                verifier: VerifierConfig::GeoClip,
                ..g3
            },
            Preset::Knn => PipelineConfig {
                generation: GenerationConfig {
                    enabled: false,
                    ..g3.generation.clone()
                },
                pool: PipelineSettings {
                    retrieved_candidates: 16,
                    similar_neighbors: 16,
                    ..g3.pool
                },
                verifier: VerifierConfig::KernelDensity(KernelDensityVerifier::default()),
                ..g3
            },
            Preset::GeoRanker => {
                let settings = GeoRankerSettings::default();
                PipelineConfig {
                    generation: GenerationConfig {
                        ensemble: PromptEnsembleConfig::georanker_zero_shot(5),
                        parser: ParserKind::GeoRanker,
                        ..g3.generation.clone()
                    },
                    pool: PipelineSettings {
                        retrieved_candidates: 10,
                        similar_neighbors: settings.ranker.similar_needed(),
                        ..g3.pool
                    },
                    verifier: VerifierConfig::GeoRanker(Box::new(settings)),
                    ..g3
                }
            }
        };
        PipelineConfig {
            preset: Some(self),
            ..config
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Which embedding of the query photo is searched in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryEmbeddingKind {
    /// G3's 2304-d database embedding (CLIP, image–text and image–GPS parts).
    G3Database,
    /// The plain CLIP image embedding (768-d for ViT-L/14).
    Clip,
    /// GeoCLIP's 512-d image embedding.
    #[serde(rename = "geoclip")]
    GeoClip,
}

/// Where the models come from. Names are local paths or HF repo ids found in the standard HF
/// cache (where `g3 fetch` puts them); building a pipeline downloads nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Where models run.
    pub device: ComputeDevice,
    /// An HF CLIP directory or repo id (`openai/clip-vit-large-patch14`): the weights for
    /// plain CLIP, GeoCLIP and trained heads; its `config.json` and
    /// `preprocessor_config.json` are also used with a G3 checkpoint when found (ViT-L/14's
    /// settings otherwise).
    pub clip: String,
    /// G3's checkpoint (`g3.pth`, which holds the CLIP towers and the heads): a file, or the
    /// HF repo id whose snapshot in the HF cache holds `g3.pth` (`g3 fetch g3`).
    pub g3_checkpoint: String,
    /// A `g3 train` checkpoint to use instead of `g3_checkpoint`, with `clip`'s weights.
    pub aligned_heads: Option<PathBuf>,
    /// GeoCLIP's `location_encoder_weights.pth` (default: the asset cache).
    pub geoclip_location_encoder: Option<PathBuf>,
    /// GeoCLIP's `image_encoder_mlp_weights.pth` (default: the asset cache).
    pub geoclip_image_mlp: Option<PathBuf>,
    /// GeoCLIP's GPS gallery CSV (`LAT,LON`; default: the 100K gallery in the asset cache).
    pub geoclip_gallery: Option<PathBuf>,
    /// Where embedded GPS galleries are cached (default: `galleries` in the asset cache,
    /// `$G3_CACHE_DIR` or `~/.cache/g3`).
    pub gallery_cache_dir: Option<PathBuf>,
    /// Images per forward pass of the image encoder.
    pub batch_size: usize,
    /// The image encoders' floating-point format: `f32` (default), or `f16`/`bf16` on GPUs.
    pub precision: Precision,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            device: ComputeDevice::Cpu,
            clip: "openai/clip-vit-large-patch14".into(),
            g3_checkpoint: "Jia-py/G3-checkpoint".into(),
            aligned_heads: None,
            geoclip_location_encoder: None,
            geoclip_image_mlp: None,
            geoclip_gallery: None,
            gallery_cache_dir: None,
            batch_size: 16,
            precision: Precision::F32,
        }
    }
}

/// Which LMM (or stand-in) answers the prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GeneratorConfig {
    /// [`DensityPeakGenerator`]: no model, no network; answers with the densest quoted
    /// coordinates.
    Offline(DensityPeakGenerator),
    /// [`g3_prompt::OpenAiGenerator`]: any OpenAI-compatible chat-completions server. For a
    /// local server without authentication, set `api_key_env = ""`.
    #[serde(rename = "openai")]
    OpenAi(OpenAiConfig),
}

/// Which parser reads locations from answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParserKind {
    /// [`g3_prompt::RobustAnswerParser`]: JSON, labels, hemispheres, DMS.
    #[default]
    Robust,
    /// [`g3_prompt::ReferenceAnswerParser`]: G3's regex, failures rejected.
    Reference,
    /// [`g3_prompt::GeoRankerAnswerParser`]: GeoRanker's, the last two decimal numbers,
    /// failures rejected.
    #[serde(rename = "georanker")]
    GeoRanker,
}

/// Geo-diversification: prompts, the generator and the parser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// Whether LMM candidates are generated at all (off for GeoCLIP and kNN).
    pub enabled: bool,
    /// The prompts (default: the paper's four).
    pub ensemble: PromptEnsembleConfig,
    /// Who answers them (default: the offline density-peak generator).
    pub generator: GeneratorConfig,
    /// How answers are read.
    pub parser: ParserKind,
    /// A persistent answer cache for the OpenAI-compatible generator, so a killed run does
    /// not pay twice for the same answers.
    pub response_cache: Option<PathBuf>,
    /// How many answers a photo needs when some were lost (the server was down, refused the
    /// key, gave up): `"all"` (default: any lost answer fails the photo, which a rerun then
    /// retries), a count (`15`) or a fraction of the samples asked (`0.75`).
    pub min_answers: MinAnswers,
    /// Stop asking the LMM after this many photos in a row lost their answers to a cause no
    /// retry fixes (unreachable server, refused key, unknown model, no quota); 0 never stops.
    pub stop_after_failed_photos: usize,
}

impl GenerationConfig {
    /// The pipeline's policy for lost answers.
    pub fn answer_policy(&self) -> AnswerPolicy {
        AnswerPolicy {
            min_answers: self.min_answers,
            stop_after_failed_photos: self.stop_after_failed_photos,
        }
    }
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            enabled: true,
            ensemble: PromptEnsembleConfig::default(),
            generator: GeneratorConfig::Offline(DensityPeakGenerator::default()),
            parser: ParserKind::Robust,
            response_cache: None,
            min_answers: MinAnswers::All,
            stop_after_failed_photos: AnswerPolicy::default().stop_after_failed_photos,
        }
    }
}

/// Which verifier chooses among the candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VerifierConfig {
    /// G3's image–GPS cosine with G3's heads (the query side is the tail of the database
    /// embedding, or computed by G3's image encoder when the database holds something else).
    G3,
    /// The same score with GeoCLIP's encoders (the query embedding must be GeoCLIP's).
    #[serde(rename = "geoclip")]
    GeoClip,
    /// A random pick, seeded by [`PipelineConfig::seed`] and the image id.
    Random,
    /// The candidate closest to the most similar database image.
    NearestNeighbor,
    /// The kernel density of the most similar database images' locations.
    KernelDensity(KernelDensityVerifier),
    /// The first candidate of the pool.
    First,
    /// GeoRanker's reward model ([`GeoRankerSettings`]).
    #[serde(rename = "georanker")]
    GeoRanker(Box<GeoRankerSettings>),
}

/// A whole pipeline as data: the default is the paper's G3 ([`Preset::G3`]).
///
/// In a TOML file, `preset = "NAME"` starts from that preset and every other key overrides
/// it, so a file holds only what differs:
///
/// ```toml
/// preset = "g3"
/// database = "mp16-g3.db"
///
/// [generation.generator]
/// kind = "openai"
/// model = "gpt-4o"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The preset this configuration starts from; in a file, the keys beside it override it.
    pub preset: Option<Preset>,
    /// The embedding searched in the database (and given to the gallery).
    pub query_embedding: QueryEmbeddingKind,
    /// The database built from the same embedding (`g3 index build`); needed unless only a
    /// gallery fills the pool. Unset with G3's database embedding: the database `g3 fetch g3`
    /// imported from the published index, in the snapshot of `models.g3_checkpoint`.
    pub database: Option<PathBuf>,
    /// Seed of everything random (the random verifier).
    pub seed: u64,
    /// Where the models come from.
    pub models: ModelsConfig,
    /// Geo-diversification.
    pub generation: GenerationConfig,
    /// How the candidate pool is filled.
    pub pool: PipelineSettings,
    /// Geo-verification.
    pub verifier: VerifierConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            preset: None,
            query_embedding: QueryEmbeddingKind::G3Database,
            database: None,
            seed: 0,
            models: ModelsConfig::default(),
            generation: GenerationConfig::default(),
            pool: PipelineSettings::default(),
            verifier: VerifierConfig::G3,
        }
    }
}

impl PipelineConfig {
    /// Reads a TOML file: its `preset` (default `g3`) overridden by its other keys. Relative
    /// paths are relative to the file's directory. Errors name the file, line and key.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text).map_err(|error| match error {
            Error::Config { message, .. } => Error::Config {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        config.resolve_relative_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses TOML text as [`from_toml_file`](Self::from_toml_file) does, without resolving
    /// paths.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config_error = |message: String| Error::Config {
            path: PathBuf::from("<text>"),
            message,
        };
        // The file alone first: its type errors then name its own line and key.
        let checked: PipelineConfig = toml::from_str(text)
            .map_err(|error: toml::de::Error| config_error(error.to_string()))?;
        let preset = checked.preset.unwrap_or(Preset::G3);
        let overrides: toml::Table = toml::from_str(text)
            .map_err(|error: toml::de::Error| config_error(error.to_string()))?;
        let mut merged = toml::Table::try_from(preset.config())
            .map_err(|error| config_error(error.to_string()))?;
        merge_tables(&mut merged, overrides);
        merged.try_into().map_err(|error: toml::de::Error| {
            config_error(format!(
                "{} (the preset {preset} merged with the file's keys)",
                error.message()
            ))
        })
    }

    /// The configuration with one setting replaced: `key` is a dotted path
    /// (`models.clip`, `pool.retrieved_candidates`, `generation.generator.model`) and
    /// `value` a TOML value (`16`, `true`, `"text"`), or plain text for a string.
    pub fn with_setting(&self, key: &str, value: &str) -> Result<Self> {
        let setting_error = |message: String| Error::Config {
            path: PathBuf::from(format!("--set {key}={value}")),
            message,
        };
        // A TOML value (`16`, `true`, `"text"`), else the text itself as a string.
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("value = {value}"))
            .ok()
            .and_then(|mut table| table.remove("value"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        let mut table =
            toml::Table::try_from(self).map_err(|error| setting_error(error.to_string()))?;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts
            .pop()
            .filter(|part| !part.is_empty())
            .ok_or_else(|| setting_error("the key is empty".into()))?;
        let mut current = &mut table;
        for part in parts {
            current = match current
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                toml::Value::Table(inner) => inner,
                _ => return Err(setting_error(format!("{part} is not a table of settings"))),
            };
        }
        current.insert(last.to_owned(), value);
        table
            .try_into()
            .map_err(|error: toml::de::Error| setting_error(error.message().to_owned()))
    }

    /// The configuration as TOML, every setting spelled out.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|error| Error::Config {
            path: PathBuf::from("<config>"),
            message: error.to_string(),
        })
    }

    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        let resolve_name = |name: &mut String| {
            let joined = base.join(&*name);
            if Path::new(name).is_relative() && joined.exists() {
                *name = joined.to_string_lossy().into_owned();
            }
        };
        self.database.as_mut().map(resolve);
        self.models.aligned_heads.as_mut().map(resolve);
        self.models.geoclip_location_encoder.as_mut().map(resolve);
        self.models.geoclip_image_mlp.as_mut().map(resolve);
        self.models.geoclip_gallery.as_mut().map(resolve);
        self.models.gallery_cache_dir.as_mut().map(resolve);
        self.generation.response_cache.as_mut().map(resolve);
        if let VerifierConfig::GeoRanker(settings) = &mut self.verifier {
            settings.adapter.as_mut().map(resolve);
            settings.photos.iter_mut().for_each(resolve);
            resolve_name(&mut settings.model);
        }
        resolve_name(&mut self.models.clip);
        resolve_name(&mut self.models.g3_checkpoint);
    }

    /// Whether the pipeline searches a database: its prompts quote neighbours, its pool or
    /// its verifier takes them ([`NeighborCounts::required`], the rule the built pipeline
    /// checks and follows).
    pub fn needs_database(&self) -> bool {
        let prompts = if self.generation.enabled {
            self.generation.ensemble.references_needed()
        } else {
            ReferenceCounts::default()
        };
        NeighborCounts::required(&self.pool, prompts).any()
            || matches!(
                self.verifier,
                VerifierConfig::NearestNeighbor
                    | VerifierConfig::KernelDensity(_)
                    | VerifierConfig::GeoRanker(_)
            )
    }
}

/// Overrides `base` with `overrides`, key by key; tables merge recursively, anything else
/// (arrays included) is replaced.
fn merge_tables(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(table))
                if !is_tagged_change(base_table, &table) =>
            {
                merge_tables(base_table, table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A table switching to another `kind` (another generator or verifier) replaces the old one
/// instead of inheriting settings of a different kind.
fn is_tagged_change(base: &toml::Table, overrides: &toml::Table) -> bool {
    matches!(
        (base.get("kind"), overrides.get("kind")),
        (Some(old), Some(new)) if old != new
    )
}

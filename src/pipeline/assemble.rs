//! From a [`PipelineConfig`] to a running [`Pipeline`]: finding every file first, then
//! loading models, the database and the gallery.

use std::path::{Path, PathBuf};

use g3_align::models::{ClipFiles, LoadedModel, ModelSpec};
use g3_align::pretrained::ModelSource;
use g3_align::{Device, GpsEncoder, GpsEncoderConfig, ImageEmbeddingKind};
use g3_core::assets::{Asset, cache_dir};
use g3_core::{Embeddings, GeoPoint};
use g3_hub::Repo;
use g3_index::Database;
use g3_prompt::{
    GeoRankerAnswerParser, OpenAiGenerator, RagPromptEnsemble, ReferenceAnswerParser,
    ResponseCache, RobustAnswerParser,
};
use g3_verify::{
    FirstCandidateVerifier, GpsGallery, ImageGpsVerifier, NearestNeighborVerifier, QueryEmbedding,
    RandomVerifier,
};

use super::config::{
    GeneratorConfig, ParserKind, PipelineConfig, QueryEmbeddingKind, VerifierConfig,
};
use super::georanker::{GeoRankerFiles, GeoRankerSettings};
use super::{Pipeline, PipelineBuilder};
use crate::error::{Error, MissingFile, Result};
use crate::published::{self, LocalFiles};

/// Which model embeds query photos, and which embedding of it.
struct EncoderPlan {
    model: ModelSpec,
    kind: ImageEmbeddingKind,
}

/// Where a verifier's GPS embeddings come from.
enum GpsPlan {
    /// The GPS encoder of G3's checkpoint (or of trained heads).
    G3(ModelSpec),
    /// GeoCLIP's `location_encoder_weights.pth`.
    GeoClip(PathBuf),
}

/// The image side of an image–GPS verifier.
enum QuerySide {
    /// The tail of the retrieval embedding (G3's database vector ends with the image–GPS
    /// embedding; GeoCLIP's embedding is compared whole).
    RetrievalTail,
    /// A second image encoder.
    Encoder(EncoderPlan),
}

/// The verifier, with the files it needs.
enum VerifierPlan {
    ImageGps {
        gps: GpsPlan,
        query: QuerySide,
    },
    Random,
    NearestNeighbor,
    KernelDensity(g3_verify::KernelDensityVerifier),
    First,
    GeoRanker {
        settings: Box<GeoRankerSettings>,
        files: GeoRankerFiles,
    },
}

/// GeoCLIP's gallery and the encoder that embeds it.
struct GalleryPlan {
    points: PathBuf,
    location_encoder: PathBuf,
}

/// Everything the configuration needs, found on disk: each stage with its files, so that
/// building meets no unresolved case.
struct FilePlan {
    query: EncoderPlan,
    database: Option<PathBuf>,
    gallery: Option<GalleryPlan>,
    verifier: VerifierPlan,
}

impl PipelineConfig {
    /// Whether G3's model (heads and GPS encoder) is needed.
    fn needs_g3_model(&self) -> bool {
        self.query_embedding == QueryEmbeddingKind::G3Database
            || self.verifier == VerifierConfig::G3
    }

    /// Every file the pipeline needs that is missing, with how to get it (empty when all are
    /// there).
    pub fn missing_files(&self) -> Vec<MissingFile> {
        match self.plan() {
            Err(Error::MissingFiles(missing)) => missing,
            _ => Vec::new(),
        }
    }

    /// Finds every file, or fails with [`Error::MissingFiles`] listing all that are missing
    /// (or [`Error::InvalidPipeline`] for settings that cannot work together).
    fn plan(&self) -> Result<FilePlan> {
        if self.verifier == VerifierConfig::GeoClip
            && self.query_embedding != QueryEmbeddingKind::GeoClip
        {
            return Err(Error::InvalidPipeline(
                "the geoclip verifier compares GeoCLIP's image embedding with GeoCLIP's GPS embeddings: set query_embedding = \"geoclip\"".into(),
            ));
        }
        let mut missing = Vec::new();
        let local = LocalFiles::from_env();
        let clip_directory = match local.model(&self.models.clip) {
            Ok(ModelSource::HfDirectory(directory)) => Some(directory),
            _ => None,
        };
        let missing_clip = |why: &str| MissingFile {
            what: format!("CLIP model {} ({why})", self.models.clip),
            looked_for: format!(
                "a directory of that name, and its snapshot in the HF cache ({})",
                local.cache_root().display(),
            ),
            how_to_get: format!(
                "`g3 fetch clip` (1.7 GB); without a network, copy config.json, model.safetensors, preprocessor_config.json and tokenizer.json of {} into a directory and set models.clip to it (`--set models.clip=DIR`)",
                published::CLIP_REPO
            ),
        };
        let g3 = if self.needs_g3_model() {
            self.g3_model(
                clip_directory.as_deref(),
                &local,
                &mut missing,
                &missing_clip,
            )
        } else {
            None
        };
        let geoclip_location_encoder = (self.verifier == VerifierConfig::GeoClip
            || self.pool.gallery_candidates > 0)
            .then(|| {
                find_asset(
                    &mut missing,
                    &self.models.geoclip_location_encoder,
                    Asset::GEOCLIP_LOCATION_ENCODER,
                    "GeoCLIP's location encoder weights",
                )
            })
            .flatten();
        let query = match self.query_embedding {
            QueryEmbeddingKind::G3Database => g3.clone().map(|model| EncoderPlan {
                model,
                kind: ImageEmbeddingKind::Database,
            }),
            // G3's own CLIP towers when G3 is loaded anyway, else the CLIP directory.
            QueryEmbeddingKind::Clip => match (&g3, &clip_directory) {
                (Some(model), _) => Some(EncoderPlan {
                    model: model.clone(),
                    kind: ImageEmbeddingKind::Clip,
                }),
                (None, Some(directory)) => Some(EncoderPlan {
                    model: ModelSpec::Clip {
                        directory: directory.clone(),
                    },
                    kind: ImageEmbeddingKind::Clip,
                }),
                (None, None) => {
                    missing.push(missing_clip("the query embedding is plain CLIP"));
                    None
                }
            },
            QueryEmbeddingKind::GeoClip => {
                let image_mlp = find_asset(
                    &mut missing,
                    &self.models.geoclip_image_mlp,
                    Asset::GEOCLIP_IMAGE_MLP,
                    "GeoCLIP's image MLP weights",
                );
                if clip_directory.is_none() {
                    missing.push(missing_clip("GeoCLIP's image side runs CLIP ViT-L/14"));
                }
                clip_directory
                    .clone()
                    .zip(image_mlp)
                    .map(|(clip_directory, image_mlp)| EncoderPlan {
                        model: ModelSpec::GeoClip {
                            clip_directory,
                            image_mlp,
                        },
                        kind: ImageEmbeddingKind::GeoClip,
                    })
            }
        };
        let gallery = if self.pool.gallery_candidates > 0 {
            let points = find_asset(
                &mut missing,
                &self.models.geoclip_gallery,
                Asset::GEOCLIP_GPS_GALLERY,
                "GeoCLIP's GPS gallery",
            );
            points
                .zip(geoclip_location_encoder.clone())
                .map(|(points, location_encoder)| {
                    Some(GalleryPlan {
                        points,
                        location_encoder,
                    })
                })
        } else {
            Some(None)
        };
        let verifier = match &self.verifier {
            VerifierConfig::G3 => g3.map(|model| VerifierPlan::ImageGps {
                gps: GpsPlan::G3(model.clone()),
                query: if self.query_embedding == QueryEmbeddingKind::G3Database {
                    QuerySide::RetrievalTail
                } else {
                    QuerySide::Encoder(EncoderPlan {
                        model,
                        kind: ImageEmbeddingKind::Gps,
                    })
                },
            }),
            VerifierConfig::GeoClip => {
                geoclip_location_encoder.map(|path| VerifierPlan::ImageGps {
                    gps: GpsPlan::GeoClip(path),
                    query: QuerySide::RetrievalTail,
                })
            }
            VerifierConfig::Random => Some(VerifierPlan::Random),
            VerifierConfig::NearestNeighbor => Some(VerifierPlan::NearestNeighbor),
            VerifierConfig::KernelDensity(verifier) => Some(VerifierPlan::KernelDensity(*verifier)),
            VerifierConfig::First => Some(VerifierPlan::First),
            VerifierConfig::GeoRanker(settings) => {
                settings
                    .find_files(&local, &mut missing)
                    .map(|files| VerifierPlan::GeoRanker {
                        settings: settings.clone(),
                        files,
                    })
            }
        };
        let database = if self.needs_database() {
            // G3's published index, imported by `g3 fetch g3`, holds G3's database embeddings:
            // the default for G3 only.
            let published = (self.query_embedding == QueryEmbeddingKind::G3Database)
                .then(|| local.published_database(&self.models.g3_checkpoint))
                .flatten();
            let how_to_get = format!(
                "{}embed the database images with `g3 embed-images --kind {}` and build it with `g3 index build`, then set database in the config or pass --db",
                if self.query_embedding == QueryEmbeddingKind::G3Database {
                    "`g3 fetch g3` (G3's published index and MP16-Pro's metadata, about 40 GB, imported once), or "
                } else {
                    ""
                },
                match self.query_embedding {
                    QueryEmbeddingKind::G3Database => "database",
                    QueryEmbeddingKind::Clip => "clip",
                    QueryEmbeddingKind::GeoClip => "geoclip",
                }
            );
            match (&self.database, published) {
                (Some(path), _) if path.exists() => Some(Some(path.clone())),
                (Some(path), _) => {
                    missing.push(MissingFile {
                        what: "the vector database".into(),
                        looked_for: path.display().to_string(),
                        how_to_get,
                    });
                    None
                }
                (None, Some(published)) => Some(Some(published)),
                (None, None) => {
                    let mut looked_for = "the config's database key and --db".to_owned();
                    if self.query_embedding == QueryEmbeddingKind::G3Database {
                        looked_for.push_str(&format!(
                            ", and {} in the snapshot of {} in the HF cache ({})",
                            published::DATABASE_DIRECTORY,
                            self.models.g3_checkpoint,
                            local.cache_root().display()
                        ));
                    }
                    missing.push(MissingFile {
                        what: "the vector database (none configured)".into(),
                        looked_for,
                        how_to_get,
                    });
                    None
                }
            }
        } else {
            Some(None)
        };
        // Every `None` above recorded what is missing, so the list is not empty here.
        match (query, database, gallery, verifier) {
            (Some(query), Some(database), Some(gallery), Some(verifier)) if missing.is_empty() => {
                Ok(FilePlan {
                    query,
                    database,
                    gallery,
                    verifier,
                })
            }
            _ => Err(Error::MissingFiles(missing)),
        }
    }

    /// G3's model as configured: trained heads on `models.clip`, or G3's checkpoint (with
    /// CLIP's settings from `models.clip` when that directory exists). `None` when missing.
    fn g3_model(
        &self,
        clip_directory: Option<&Path>,
        local: &LocalFiles,
        missing: &mut Vec<MissingFile>,
        missing_clip: &dyn Fn(&str) -> MissingFile,
    ) -> Option<ModelSpec> {
        if let Some(heads) = &self.models.aligned_heads {
            if !heads.is_file() {
                missing.push(MissingFile {
                    what: "Geo-alignment heads (models.aligned_heads)".into(),
                    looked_for: heads.display().to_string(),
                    how_to_get:
                        "train them with `g3 train`, or unset aligned_heads to use G3's checkpoint"
                            .into(),
                });
            }
            if clip_directory.is_none() {
                missing.push(missing_clip("its weights go with the trained heads"));
            }
            return clip_directory
                .filter(|_| heads.is_file())
                .map(|clip_directory| ModelSpec::AlignedHeads {
                    heads: heads.clone(),
                    clip_directory: clip_directory.to_path_buf(),
                });
        }
        match local.g3_checkpoint(&self.models.g3_checkpoint) {
            Some(checkpoint) => Some(ModelSpec::G3Checkpoint {
                checkpoint,
                clip: clip_directory
                    .map(ClipFiles::of_directory)
                    .unwrap_or_default(),
            }),
            None => {
                let name = &self.models.g3_checkpoint;
                let in_cache = if Repo::model(name).is_ok() && !Path::new(name).exists() {
                    format!(
                        ", and {} in its snapshot in the HF cache ({})",
                        published::G3_CHECKPOINT_FILE,
                        local.cache_root().display()
                    )
                } else {
                    String::new()
                };
                missing.push(MissingFile {
                    what: "G3 checkpoint g3.pth (models.g3_checkpoint)".into(),
                    looked_for: format!("{name:?} as a file{in_cache}"),
                    how_to_get: format!(
                        "`g3 fetch g3`; without a network, download g3.pth of the HF repository {} and set models.g3_checkpoint to its path (`--set models.g3_checkpoint=FILE`), or train heads with `g3 train` and set models.aligned_heads",
                        published::G3_CHECKPOINT_REPO
                    ),
                });
                None
            }
        }
    }

    /// Loads every model, the database and the gallery, and composes the pipeline. When
    /// files are missing, fails before loading anything with [`Error::MissingFiles`] listing
    /// all of them. `progress` hears what is being loaded.
    pub fn build(&self, progress: &mut dyn FnMut(&str)) -> Result<Pipeline> {
        self.builder(progress)?.build()
    }

    /// Like [`build`](Self::build), but returns the builder with every configured stage set,
    /// so that any of them can be replaced before building:
    /// `config.builder(&mut |_| {})?.verifier(MyVerifier).build()?`.
    pub fn builder(&self, progress: &mut dyn FnMut(&str)) -> Result<PipelineBuilder> {
        let plan = self.plan()?;
        let device = self
            .models
            .device
            .to_device()
            .map_err(Error::load("the device"))?;
        let batch = self.models.batch_size.max(1);
        let mut models = LoadedModels {
            loaded: Vec::new(),
            precision: self.models.precision,
        };

        let mut builder = Pipeline::builder().settings(self.pool);
        let query = models.encoder(&plan.query, &device, batch, progress)?;
        builder = builder.image_embedder(query);

        if let Some(path) = &plan.database {
            progress("opening the database");
            let database = Database::open(path).map_err(Error::load_path(path))?;
            builder = builder.vector_store(database);
        }

        // GeoCLIP's location encoder, loaded once for the gallery and the verifier.
        let mut geoclip_gps = None;
        if let Some(gallery) = &plan.gallery {
            let gps = load_geoclip_gps(&gallery.location_encoder, &device, progress)?;
            builder = builder.gallery(cached_gallery(
                &gallery.points,
                &gallery.location_encoder,
                self.models.gallery_cache_dir.as_deref(),
                &gps,
                progress,
            )?);
            geoclip_gps = Some(gps);
        }

        if self.generation.enabled {
            builder = self.with_generation(builder)?;
        }

        builder = match plan.verifier {
            VerifierPlan::ImageGps { gps, query } => {
                let gps = match gps {
                    GpsPlan::G3(model) => {
                        let loaded = models.load(&model, &device, progress)?;
                        loaded
                            .gps_encoder()
                            .map_err(Error::load(&model.to_string()))?
                    }
                    GpsPlan::GeoClip(path) => match geoclip_gps.take() {
                        Some(gps) => gps,
                        None => load_geoclip_gps(&path, &device, progress)?,
                    },
                };
                let query = match query {
                    QuerySide::RetrievalTail => QueryEmbedding::RetrievalTail,
                    QuerySide::Encoder(plan) => QueryEmbedding::Encoder(Box::new(
                        models.encoder(&plan, &device, batch, progress)?,
                    )),
                };
                builder.verifier(ImageGpsVerifier::new(gps, query))
            }
            VerifierPlan::Random => builder.verifier(RandomVerifier::new(self.seed)),
            VerifierPlan::NearestNeighbor => builder.verifier(NearestNeighborVerifier),
            VerifierPlan::KernelDensity(verifier) => builder.verifier(verifier),
            VerifierPlan::First => builder.verifier(FirstCandidateVerifier),
            VerifierPlan::GeoRanker { settings, files } => {
                let database = plan.database.as_deref().ok_or_else(|| {
                    Error::InvalidPipeline(
                        "the GeoRanker verifier reads the database's metadata: configure a database".into(),
                    )
                })?;
                let on_cpu = self.models.device == g3_align::ComputeDevice::Cpu;
                builder.verifier(settings.load(&files, database, &device, on_cpu, progress)?)
            }
        };
        Ok(builder)
    }

    /// The prompt ensemble, the generator (offline, or OpenAI-compatible with its answer
    /// cache), the parser and the policy for lost answers.
    fn with_generation(&self, builder: PipelineBuilder) -> Result<PipelineBuilder> {
        let ensemble = RagPromptEnsemble::new(self.generation.ensemble.clone())
            .map_err(Error::load("the prompt ensemble"))?;
        let builder = builder
            .prompt_ensemble(ensemble)
            .answer_policy(self.generation.answer_policy());
        let builder = match &self.generation.generator {
            GeneratorConfig::Offline(generator) => builder.generator(*generator),
            GeneratorConfig::OpenAi(config) => {
                let mut config = config.clone();
                // TOML has no null: an empty variable name means "no API key".
                if config.api_key_env.as_deref().is_some_and(str::is_empty) {
                    config.api_key_env = None;
                }
                let mut generator =
                    OpenAiGenerator::new(config).map_err(Error::load("the LMM client"))?;
                if let Some(path) = &self.generation.response_cache {
                    let cache = ResponseCache::open(path).map_err(Error::load_path(path))?;
                    generator = generator.with_cache(cache);
                }
                builder.generator(generator)
            }
        };
        Ok(match self.generation.parser {
            ParserKind::Robust => builder.answer_parser(RobustAnswerParser),
            ParserKind::Reference => builder.answer_parser(ReferenceAnswerParser::default()),
            ParserKind::GeoRanker => builder.answer_parser(GeoRankerAnswerParser::default()),
        })
    }
}

/// Models loaded while assembling, each once: the query encoder and a verifier's encoders
/// share G3's weights. Encoders compute in `precision`.
struct LoadedModels {
    loaded: Vec<LoadedModel>,
    precision: g3_align::Precision,
}

impl LoadedModels {
    fn load(
        &mut self,
        model: &ModelSpec,
        device: &Device,
        progress: &mut dyn FnMut(&str),
    ) -> Result<&LoadedModel> {
        let index = match self.loaded.iter().position(|loaded| loaded.spec() == model) {
            Some(index) => index,
            None => {
                progress(&format!("loading {model}"));
                let loaded = model
                    .load(device)
                    .map_err(Error::load(&model.to_string()))?;
                self.loaded.push(loaded);
                self.loaded.len() - 1
            }
        };
        Ok(&self.loaded[index])
    }

    fn encoder(
        &mut self,
        plan: &EncoderPlan,
        device: &Device,
        batch: usize,
        progress: &mut dyn FnMut(&str),
    ) -> Result<g3_align::ImageEncoder> {
        let precision = self.precision;
        self.load(&plan.model, device, progress)?
            .image_encoder(plan.kind, batch)
            .and_then(|encoder| encoder.with_precision(precision))
            .map_err(Error::load("the image encoder"))
    }
}

/// The configured file, else the asset cache's; `None` (recorded in `missing`) when absent.
fn find_asset(
    missing: &mut Vec<MissingFile>,
    configured: &Option<PathBuf>,
    asset: Asset,
    what: &str,
) -> Option<PathBuf> {
    let path = configured.clone().unwrap_or_else(|| asset.path());
    if path.is_file() {
        return Some(path);
    }
    missing.push(MissingFile {
        what: what.into(),
        looked_for: path.display().to_string(),
        how_to_get:
            "`g3 fetch geoclip` (or scripts/fetch-assets.sh): GeoCLIP's files from the Python package index"
                .into(),
    });
    None
}

fn load_geoclip_gps(
    path: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<GpsEncoder> {
    progress("loading GeoCLIP's location encoder");
    GpsEncoder::load(path, GpsEncoderConfig::geoclip(), device).map_err(Error::load_path(path))
}

/// Where the gallery embeddings of `gallery` under `weights` are cached: a file in
/// `directory` (default `$G3_CACHE_DIR/galleries`) named by a hash of both files' contents,
/// so changed weights or a changed gallery never reuse stale embeddings.
pub fn gallery_cache_path(
    gallery: &Path,
    weights: &Path,
    directory: Option<&Path>,
) -> Result<PathBuf> {
    let mut hasher = blake3::Hasher::new();
    for path in [weights, gallery] {
        hasher.update_mmap(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let digest = hasher.finalize().to_hex();
    let directory = directory.map_or_else(|| cache_dir().join("galleries"), Path::to_path_buf);
    Ok(directory.join(format!("gps-gallery-{}.npy", &digest[..32])))
}

/// The gallery, embedded once and read from the cache afterwards.
fn cached_gallery(
    gallery: &Path,
    weights: &Path,
    cache_directory: Option<&Path>,
    gps: &GpsEncoder,
    progress: &mut dyn FnMut(&str),
) -> Result<GpsGallery> {
    let points: Vec<GeoPoint> = g3_core::table::read_points_csv(gallery, "LAT", "LON")?;
    let cache = gallery_cache_path(gallery, weights, cache_directory)?;
    if cache.is_file() {
        // A cache that cannot be read (truncated, another shape) is recomputed, not trusted.
        if let Ok(embeddings) = g3_core::npy::read_embeddings_npy(&cache)
            && embeddings.len() == points.len()
        {
            let dimension = embeddings.dimension();
            return Ok(GpsGallery::from_embeddings(
                points,
                dimension,
                embeddings.into_values(),
            )?);
        }
    }
    progress(&format!(
        "embedding the GPS gallery ({} points, once; cached in {})",
        points.len(),
        cache.display()
    ));
    let gallery = GpsGallery::embed(points, gps)?;
    if let Some(directory) = cache.parent() {
        std::fs::create_dir_all(directory).map_err(|source| Error::Io {
            path: directory.to_path_buf(),
            source,
        })?;
    }
    let embeddings = Embeddings::new(gallery.dimension(), gallery.embeddings().to_vec())?;
    let mut writer =
        g3_core::npy::EmbeddingFileWriter::create(&cache, gallery.len(), gallery.dimension())?;
    writer.write(&embeddings)?;
    writer.finish()?;
    Ok(gallery)
}

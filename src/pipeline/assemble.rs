//! From a [`PipelineConfig`] to a running [`Pipeline`]: finding every file first, then
//! loading models, the database and the gallery.

use std::fmt;
use std::path::{Path, PathBuf};

use g3_align::clip::{ClipConfig, ClipImageProcessor};
use g3_align::pretrained::{HfClipDirectory, ModelSource, g3_model_cache, hf_hub_snapshot};
use g3_align::training::AlignmentModel;
use g3_align::{
    Device, G3Model, GpsEncoder, GpsEncoderConfig, ImageEmbeddingKind, ImageEncoder, ImageModel,
    loader,
};
use g3_core::assets::{Asset, cache_dir};
use g3_core::{Embeddings, GeoPoint};
use g3_index::Database;
use g3_prompt::{
    OpenAiGenerator, RagPromptEnsemble, ReferenceAnswerParser, ResponseCache, RobustAnswerParser,
};
use g3_verify::{
    FirstCandidateVerifier, GpsGallery, ImageGpsVerifier, NearestNeighborVerifier, QueryEmbedding,
    RandomVerifier,
};

use super::config::{
    GeneratorConfig, ParserKind, PipelineConfig, QueryEmbeddingKind, VerifierConfig,
};
use super::{Pipeline, PipelineBuilder};
use crate::error::{Error, Result};

/// A file the configuration needs that is not on this machine, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    /// What it is ("G3 checkpoint g3.pth").
    pub what: String,
    /// Where it was looked for.
    pub looked_for: String,
    /// How to get it.
    pub how_to_get: String,
}

impl fmt::Display for MissingFile {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}\n      looked for: {}\n      to get it: {}",
            self.what, self.looked_for, self.how_to_get
        )
    }
}

/// Where the G3 model comes from, once resolved.
enum G3Source {
    /// A full G3 checkpoint (`g3.pth`), with CLIP's config and preprocessing from an HF
    /// directory when one is available.
    Checkpoint {
        path: PathBuf,
        clip_directory: Option<PathBuf>,
    },
    /// `g3 train` heads with an HF CLIP's weights.
    Heads {
        path: PathBuf,
        clip_directory: PathBuf,
    },
}

/// Everything the configuration needs, found on disk.
struct ResolvedFiles {
    g3: Option<G3Source>,
    clip_directory: Option<PathBuf>,
    geoclip_location_encoder: Option<PathBuf>,
    geoclip_image_mlp: Option<PathBuf>,
    geoclip_gallery: Option<PathBuf>,
    database: Option<PathBuf>,
}

impl PipelineConfig {
    /// Whether G3's model (heads and GPS branch) is needed.
    fn needs_g3_model(&self) -> bool {
        self.query_embedding == QueryEmbeddingKind::G3Database
            || self.verifier == VerifierConfig::G3
    }

    /// Every file the pipeline needs, or the list of those missing with how to get them.
    pub fn missing_files(&self) -> Vec<MissingFile> {
        match self.resolve_files() {
            Ok(_) => Vec::new(),
            Err(missing) => missing,
        }
    }

    fn resolve_files(&self) -> std::result::Result<ResolvedFiles, Vec<MissingFile>> {
        let mut missing = Vec::new();
        let clip_directory = match ModelSource::resolve(&self.models.clip) {
            Ok(ModelSource::HfDirectory(directory)) => Some(directory),
            _ => None,
        };
        let missing_clip = |why: &str| {
            MissingFile {
            what: format!("CLIP model {} ({why})", self.models.clip),
            looked_for: format!(
                "a directory of that name, the local HF hub cache and {}",
                cache_dir().join("models").display()
            ),
            how_to_get: "copy config.json, model.safetensors and preprocessor_config.json of openai/clip-vit-large-patch14 into a directory and set models.clip to it (`--set models.clip=DIR`; or build g3 with the `download` feature where the HF hub is reachable)".into(),
        }
        };
        let g3 = if self.needs_g3_model() {
            match &self.models.aligned_heads {
                Some(heads) => {
                    if !heads.is_file() {
                        missing.push(MissingFile {
                            what: "Geo-alignment heads (models.aligned_heads)".into(),
                            looked_for: heads.display().to_string(),
                            how_to_get: "train them with `g3 train`, or unset aligned_heads to use G3's checkpoint".into(),
                        });
                    }
                    if clip_directory.is_none() {
                        missing.push(missing_clip("its weights go with the trained heads"));
                    }
                    clip_directory
                        .clone()
                        .map(|clip_directory| G3Source::Heads {
                            path: heads.clone(),
                            clip_directory,
                        })
                }
                None => match find_g3_checkpoint(&self.models.g3_checkpoint) {
                    Some(path) => Some(G3Source::Checkpoint {
                        path,
                        clip_directory: clip_directory.clone(),
                    }),
                    None => {
                        missing.push(MissingFile {
                            what: "G3 checkpoint g3.pth (models.g3_checkpoint)".into(),
                            looked_for: format!(
                                "{:?} as a file, and g3.pth in its snapshot in the local HF hub cache or in {}",
                                self.models.g3_checkpoint,
                                cache_dir().join("models").display()
                            ),
                            how_to_get: "download g3.pth from the HF repository Jia-py/G3-checkpoint and set models.g3_checkpoint to its path (`--set models.g3_checkpoint=FILE`; or train heads with `g3 train` and set models.aligned_heads)".into(),
                        });
                        None
                    }
                },
            }
        } else {
            None
        };
        match self.query_embedding {
            QueryEmbeddingKind::Clip if g3.is_none() && clip_directory.is_none() => {
                missing.push(missing_clip("the query embedding is plain CLIP"));
            }
            QueryEmbeddingKind::GeoClip if clip_directory.is_none() => {
                missing.push(missing_clip("GeoCLIP's image side runs CLIP ViT-L/14"));
            }
            _ => {}
        }
        let mut asset = |configured: &Option<PathBuf>, asset: Asset, what: &str| {
            let path = configured.clone().unwrap_or_else(|| asset.path());
            if path.is_file() {
                Some(path)
            } else {
                missing.push(MissingFile {
                    what: what.into(),
                    looked_for: path.display().to_string(),
                    how_to_get: "run scripts/fetch-assets.sh (it fetches GeoCLIP's files from the Python package index)".into(),
                });
                None
            }
        };
        let geoclip_image_mlp = (self.query_embedding == QueryEmbeddingKind::GeoClip)
            .then(|| {
                asset(
                    &self.models.geoclip_image_mlp,
                    Asset::GEOCLIP_IMAGE_MLP,
                    "GeoCLIP's image MLP weights",
                )
            })
            .flatten();
        let geoclip_location_encoder = (self.verifier == VerifierConfig::GeoClip
            || self.pool.gallery_candidates > 0)
            .then(|| {
                asset(
                    &self.models.geoclip_location_encoder,
                    Asset::GEOCLIP_LOCATION_ENCODER,
                    "GeoCLIP's location encoder weights",
                )
            })
            .flatten();
        let geoclip_gallery = (self.pool.gallery_candidates > 0)
            .then(|| {
                asset(
                    &self.models.geoclip_gallery,
                    Asset::GEOCLIP_GPS_GALLERY,
                    "GeoCLIP's GPS gallery",
                )
            })
            .flatten();
        let database = if self.needs_database() {
            let how_to_get = format!(
                "embed the database images with `g3 embed-images --kind {}` and build it with `g3 index build` (G3's is MP16-Pro, 4.12M images), then set database in the config or pass --db",
                match self.query_embedding {
                    QueryEmbeddingKind::G3Database => "database",
                    QueryEmbeddingKind::Clip => "clip",
                    QueryEmbeddingKind::GeoClip => "geoclip",
                }
            );
            match &self.database {
                Some(path) if path.exists() => Some(path.clone()),
                Some(path) => {
                    missing.push(MissingFile {
                        what: "the vector database".into(),
                        looked_for: path.display().to_string(),
                        how_to_get,
                    });
                    None
                }
                None => {
                    missing.push(MissingFile {
                        what: "the vector database (none configured)".into(),
                        looked_for: "the config's database key and --db".into(),
                        how_to_get,
                    });
                    None
                }
            }
        } else {
            None
        };
        if missing.is_empty() {
            Ok(ResolvedFiles {
                g3,
                clip_directory,
                geoclip_location_encoder,
                geoclip_image_mlp,
                geoclip_gallery,
                database,
            })
        } else {
            Err(missing)
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
        let files = self.resolve_files().map_err(Error::MissingFiles)?;
        let device = self
            .models
            .device
            .to_device()
            .map_err(Error::load("the device"))?;
        let batch = self.models.batch_size.max(1);

        let mut builder = Pipeline::builder().settings(self.pool);
        let g3 = match &files.g3 {
            Some(source) => {
                progress("loading G3's model");
                Some(load_g3(source, &device)?)
            }
            None => None,
        };
        let clip_model = |progress: &mut dyn FnMut(&str)| -> Result<_> {
            let directory = files
                .clip_directory
                .as_ref()
                .expect("resolve_files checked the CLIP directory");
            progress("loading CLIP");
            let clip = HfClipDirectory::open(directory).map_err(Error::load("CLIP"))?;
            let model = clip.load_model(&device).map_err(Error::load("CLIP"))?;
            let processor = clip.image_processor().map_err(Error::load("CLIP"))?;
            Ok((model, processor))
        };
        let encoder = |model, kind, processor| {
            ImageEncoder::new(model, kind, processor, device.clone(), batch)
                .map_err(Error::load("the image encoder"))
        };

        let query_encoder = match (self.query_embedding, &g3) {
            (QueryEmbeddingKind::G3Database, Some((model, processor))) => encoder(
                ImageModel::G3(model.clone()),
                ImageEmbeddingKind::Database,
                processor.clone(),
            )?,
            (QueryEmbeddingKind::Clip, _) if files.clip_directory.is_some() && g3.is_none() => {
                let (model, processor) = clip_model(progress)?;
                encoder(ImageModel::Clip(model), ImageEmbeddingKind::Clip, processor)?
            }
            (QueryEmbeddingKind::Clip, Some((model, processor))) => encoder(
                ImageModel::G3(model.clone()),
                ImageEmbeddingKind::Clip,
                processor.clone(),
            )?,
            (QueryEmbeddingKind::GeoClip, _) => {
                let (clip, processor) = clip_model(progress)?;
                let mlp_path = files.geoclip_image_mlp.as_ref().expect("resolved");
                let mlp = loader::load_geoclip_image_mlp(mlp_path, &device)
                    .map_err(Error::load("GeoCLIP's image MLP"))?;
                encoder(
                    ImageModel::GeoClip { clip, mlp },
                    ImageEmbeddingKind::GeoClip,
                    processor,
                )?
            }
            _ => unreachable!("resolve_files found a model for every query embedding"),
        };
        builder = builder.image_embedder(query_encoder);

        if let Some(path) = &files.database {
            progress("opening the database");
            let database = Database::open(path).map_err(Error::load_path(path))?;
            builder = builder.vector_store(database);
        }

        let geoclip_gps = match &files.geoclip_location_encoder {
            Some(path) => {
                progress("loading GeoCLIP's location encoder");
                Some(
                    GpsEncoder::load(path, GpsEncoderConfig::geoclip(), &device)
                        .map_err(Error::load_path(path))?,
                )
            }
            None => None,
        };
        if let (Some(gallery_path), Some(gps)) = (&files.geoclip_gallery, &geoclip_gps) {
            let weights = files.geoclip_location_encoder.as_ref().expect("resolved");
            builder = builder.gallery(cached_gallery(
                gallery_path,
                weights,
                self.models.gallery_cache_dir.as_deref(),
                gps,
                progress,
            )?);
        }

        if self.generation.enabled {
            let ensemble = RagPromptEnsemble::new(self.generation.ensemble.clone())
                .map_err(Error::load("the prompt ensemble"))?;
            builder = builder.prompt_ensemble(ensemble);
            builder = match &self.generation.generator {
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
            builder = builder.answer_policy(self.generation.answer_policy());
            builder = match self.generation.parser {
                ParserKind::Robust => builder.answer_parser(RobustAnswerParser),
                ParserKind::Reference => builder.answer_parser(ReferenceAnswerParser::default()),
            };
        }

        builder = match &self.verifier {
            VerifierConfig::G3 => {
                let (model, processor) = g3.as_ref().expect("resolve_files found G3's model");
                let gps = load_g3_gps(files.g3.as_ref().expect("resolved"), &device)?;
                let query = if self.query_embedding == QueryEmbeddingKind::G3Database {
                    QueryEmbedding::RetrievalTail
                } else {
                    QueryEmbedding::Encoder(Box::new(encoder(
                        ImageModel::G3(model.clone()),
                        ImageEmbeddingKind::Gps,
                        processor.clone(),
                    )?))
                };
                builder.verifier(ImageGpsVerifier::new(gps, query))
            }
            VerifierConfig::GeoClip => {
                if self.query_embedding != QueryEmbeddingKind::GeoClip {
                    return Err(Error::InvalidPipeline(
                        "the geoclip verifier compares GeoCLIP's image embedding with GeoCLIP's GPS embeddings: set query_embedding = \"geoclip\"".into(),
                    ));
                }
                let gps = geoclip_gps.expect("resolve_files found GeoCLIP's encoder");
                builder.verifier(ImageGpsVerifier::new(gps, QueryEmbedding::RetrievalTail))
            }
            VerifierConfig::Random => builder.verifier(RandomVerifier::new(self.seed)),
            VerifierConfig::NearestNeighbor => builder.verifier(NearestNeighborVerifier),
            VerifierConfig::KernelDensity(verifier) => builder.verifier(*verifier),
            VerifierConfig::First => builder.verifier(FirstCandidateVerifier),
        };
        Ok(builder)
    }
}

/// `g3_checkpoint` as a file, or `g3.pth` in a repo id's local snapshot.
fn find_g3_checkpoint(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let (owner, repository) = name.split_once('/')?;
    [
        hf_hub_snapshot(owner, repository),
        Some(g3_model_cache(owner, repository)),
    ]
    .into_iter()
    .flatten()
    .map(|directory| directory.join("g3.pth"))
    .find(|path| path.is_file())
}

fn load_g3(source: &G3Source, device: &Device) -> Result<(G3Model, ClipImageProcessor)> {
    match source {
        G3Source::Checkpoint {
            path,
            clip_directory,
        } => {
            let (config, processor) = match clip_directory {
                Some(directory) => {
                    let clip = HfClipDirectory::open(directory).map_err(Error::load("CLIP"))?;
                    (
                        clip.config().clone(),
                        clip.image_processor().map_err(Error::load("CLIP"))?,
                    )
                }
                None => (
                    ClipConfig::vit_large_patch14(),
                    ClipImageProcessor::default(),
                ),
            };
            let model = G3Model::load(path, &config, device).map_err(Error::load_path(path))?;
            Ok((model, processor))
        }
        G3Source::Heads {
            path,
            clip_directory,
        } => {
            let clip = HfClipDirectory::open(clip_directory).map_err(Error::load("CLIP"))?;
            let heads = AlignmentModel::load(path, device).map_err(Error::load_path(path))?;
            let model =
                G3Model::from_parts(clip.load_model(device).map_err(Error::load("CLIP"))?, heads)
                    .map_err(Error::load_path(path))?;
            Ok((model, clip.image_processor().map_err(Error::load("CLIP"))?))
        }
    }
}

fn load_g3_gps(source: &G3Source, device: &Device) -> Result<GpsEncoder> {
    let path = match source {
        G3Source::Checkpoint { path, .. } | G3Source::Heads { path, .. } => path,
    };
    GpsEncoder::load_g3(path, device).map_err(Error::load_path(path))
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
    let points: Vec<GeoPoint> = crate::table::read_points_csv(gallery, "LAT", "LON")?;
    let cache = gallery_cache_path(gallery, weights, cache_directory)?;
    if cache.is_file() {
        // A cache that cannot be read (truncated, another shape) is recomputed, not trusted.
        if let Ok(embeddings) = crate::npy::read_embeddings_npy(&cache)
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
        crate::npy::EmbeddingFileWriter::create(&cache, gallery.len(), gallery.dimension())?;
    writer.write(&embeddings)?;
    writer.finish()?;
    Ok(gallery)
}

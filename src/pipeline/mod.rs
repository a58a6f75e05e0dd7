//! The G3 pipeline: photos in, coordinates out, with every stage replaceable.
//!
//! A [`Pipeline`] runs, for each query photo:
//!
//! 1. the **image embedder** (G3's 2304-d database embedding, plain CLIP, GeoCLIP...);
//! 2. **retrieval** in a vector store: the most similar and, when prompts quote them, the
//!    most dissimilar database images;
//! 3. **Geo-diversification**: the prompt ensemble renders prompts from the neighbours, the
//!    LMM generator answers each several times, the answer parser reads locations. Answers
//!    that never arrived are *lost*: by default such a photo fails instead of being
//!    predicted from a smaller pool ([`AnswerPolicy`], [`MinAnswers`]), and the pipeline stops
//!    asking after a few photos in a row fail for a cause no retry fixes
//!    ([`Pipeline::generation_halt`]); [`Pipeline::generation_report`] tells what the
//!    generator was asked, gave, lost and cost;
//! 4. the **candidate pool**: generated locations, the top-S retrieved locations and,
//!    optionally, the top gallery points (GeoCLIP);
//! 5. **Geo-verification**: the verifier scores the pool and picks one (the pools of a
//!    batch of photos in one call, so G3's GPS encoder runs once per batch).
//!
//! [`PipelineBuilder`] takes any implementation of each stage, by value (generic) or boxed.
//! [`PipelineConfig`] describes a pipeline in a TOML file, and [`Preset`] holds the paper's
//! method, its ablations and its baselines; [`PipelineConfig::build`] loads the models and
//! the database it names.
//!
//! ```
//! use g3::core::ImageEmbedder;
//! use g3::pipeline::{Pipeline, PipelineSettings};
//! use g3::prompt::{DensityPeakGenerator, PromptEnsembleConfig, RagPromptEnsemble};
//! use g3::verify::KernelDensityVerifier;
//!
//! /// Any image embedder (g3's `ImageEncoder` or your own) over any database of the same
//! /// embedding, the paper's prompts answered offline, a kernel-density vote.
//! fn locate_one(
//!     embedder: impl ImageEmbedder + 'static,
//!     database: g3::index::Database,
//!     photo: g3::ImageInput,
//! ) -> Result<g3::Prediction, Box<dyn std::error::Error>> {
//!     let pipeline = Pipeline::builder()
//!         .image_embedder(embedder)
//!         .vector_store(database)
//!         .prompt_ensemble(RagPromptEnsemble::new(PromptEnsembleConfig::default())?)
//!         .generator(DensityPeakGenerator::default())
//!         .verifier(KernelDensityVerifier::default())
//!         .settings(PipelineSettings { similar_neighbors: 16, ..PipelineSettings::default() })
//!         .build()?;
//!     Ok(pipeline.locate(&[photo])?.remove(0))
//! }
//! ```

mod answers;
mod assemble;
mod config;
mod georanker;

use std::sync::atomic::{AtomicUsize, Ordering};

use answers::GenerationAccount;
use g3_core::{
    AnswerParser, Candidate, CandidateSource, ImageEmbedder, ImageInput, LmmGenerator, LostAnswers,
    Prediction, PromptEnsemble, ReferenceCounts, RejectedAnswer, RetrievedNeighbor, StageKind,
    TwoWayNeighbors, VectorStore, VerificationQuery, Verifier,
};
use g3_prompt::RobustAnswerParser;
use g3_verify::GpsGallery;
use serde::{Deserialize, Serialize};

pub use answers::{AnswerPolicy, GenerationHalt, GenerationReport, MinAnswers};
pub use assemble::gallery_cache_path;
pub use config::{
    GenerationConfig, GeneratorConfig, ModelsConfig, ParserKind, PipelineConfig, Preset,
    QueryEmbeddingKind, VerifierConfig,
};
pub use georanker::{
    AdapterStatus, GEORANKER_ADAPTER_BLOB_SHA1, GEORANKER_ADAPTER_FILES, GEORANKER_BASE_MODEL,
    GEORANKER_MODEL_FILES, GEORANKER_REPOSITORY, GeoRankerSettings, adapter_status,
    default_adapter_folder, git_blob_sha1,
};

pub use crate::error::MissingFile;
use crate::error::{Error, Result};

/// What to do when no candidate survives (every answer unparsable, no retrieved or gallery
/// candidates configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyPool {
    /// Predict the most similar database image's location (kept as a `Retrieved` candidate,
    /// so reports show where the prediction came from).
    #[default]
    TopRetrieved,
    /// Fail the query.
    Error,
}

/// How the pool is filled and how queries run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// Retrieved neighbours whose locations join the pool (G3's S; the reference adds the
    /// top 1).
    pub retrieved_candidates: usize,
    /// Similar neighbours to retrieve at least, beyond what the prompts and the pool need:
    /// for verifiers that vote over neighbours (the kernel-density baseline).
    pub similar_neighbors: usize,
    /// Gallery points most similar to the query embedding that join the pool (GeoCLIP); needs
    /// a gallery.
    pub gallery_candidates: usize,
    /// What to do with an empty pool.
    pub empty_pool: EmptyPool,
    /// Queries processed at once by [`Pipeline::locate`] (each one's LMM requests may run
    /// concurrently as well, as the generator allows).
    pub concurrent_queries: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            retrieved_candidates: 1,
            similar_neighbors: 0,
            gallery_candidates: 0,
            empty_pool: EmptyPool::TopRetrieved,
            concurrent_queries: 8,
        }
    }
}

/// The Geo-diversification stages, which only make sense together, with the policy for lost
/// answers and the account of what the generator did.
struct Generation {
    ensemble: Box<dyn PromptEnsemble>,
    generator: Box<dyn LmmGenerator>,
    parser: Box<dyn AnswerParser>,
    policy: AnswerPolicy,
    account: GenerationAccount,
}

/// A composed G3-style pipeline; see the [module documentation](self).
pub struct Pipeline {
    embedder: Box<dyn ImageEmbedder>,
    store: Option<Box<dyn VectorStore>>,
    generation: Option<Generation>,
    gallery: Option<GpsGallery>,
    verifier: Box<dyn Verifier>,
    settings: PipelineSettings,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Pipeline")
            .field("embedding_dimension", &self.embedder.dimension())
            .field(
                "database_entries",
                &self.store.as_ref().map(|store| store.len()),
            )
            .field("generation", &self.generation.is_some())
            .field(
                "gallery_points",
                &self.gallery.as_ref().map(GpsGallery::len),
            )
            .field("settings", &self.settings)
            .finish()
    }
}

/// How many neighbours of each kind one query retrieves: the one answer to "does this
/// pipeline search a database?", used by the configuration, the builder's checks and the
/// running pipeline alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborCounts {
    /// Most similar images.
    pub similar: usize,
    /// Most dissimilar images.
    pub dissimilar: usize,
}

impl NeighborCounts {
    /// What the prompts quote and the pool takes: the neighbours a query cannot do without.
    pub fn required(settings: &PipelineSettings, prompts: ReferenceCounts) -> Self {
        NeighborCounts {
            similar: prompts
                .similar
                .max(settings.retrieved_candidates)
                .max(settings.similar_neighbors),
            dissimilar: prompts.dissimilar,
        }
    }

    /// Whether any neighbour is needed, so a database must be there.
    pub fn any(self) -> bool {
        self.similar > 0 || self.dissimilar > 0
    }
}

impl Pipeline {
    /// A builder with no stage set.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The settings the pipeline runs with.
    pub fn settings(&self) -> &PipelineSettings {
        &self.settings
    }

    /// Width of the query embeddings.
    pub fn embedding_dimension(&self) -> usize {
        self.embedder.dimension()
    }

    /// What the LMM generator was asked, gave, lost and spent since the pipeline was built,
    /// and whether the pipeline stopped asking it; `None` for pipelines without
    /// Geo-diversification.
    pub fn generation_report(&self) -> Option<GenerationReport> {
        self.generation
            .as_ref()
            .map(|generation| generation.account.report(generation.generator.as_ref()))
    }

    /// Set once the pipeline stopped asking the generator
    /// ([`AnswerPolicy::stop_after_failed_photos`]); every later photo fails with
    /// [`Error::GenerationHalted`] without a request.
    pub fn generation_halt(&self) -> Option<&GenerationHalt> {
        self.generation
            .as_ref()
            .and_then(|generation| generation.account.halted())
    }

    /// The neighbours each query retrieves: what is [required](NeighborCounts::required),
    /// and the top 1 for the empty-pool fallback, when there is a store to search.
    fn neighbors_needed(&self) -> NeighborCounts {
        if self.store.is_none() {
            return NeighborCounts {
                similar: 0,
                dissimilar: 0,
            };
        }
        let prompts = self
            .generation
            .as_ref()
            .map(|generation| generation.ensemble.references_needed())
            .unwrap_or_default();
        let required = NeighborCounts::required(&self.settings, prompts);
        let fallback = usize::from(self.settings.empty_pool == EmptyPool::TopRetrieved);
        NeighborCounts {
            similar: required.similar.max(fallback),
            ..required
        }
    }

    /// Predicts a location for each photo, in input order. Images are embedded in one batch
    /// and searched in one batch; then up to
    /// [`concurrent_queries`](PipelineSettings::concurrent_queries) queries run their
    /// prompts and generation at once, and every pool is verified in one
    /// [`Verifier::verify_batch`] call (one GPS-encoder pass for G3's verifier). The first
    /// failing query fails the call; [`locate_each`](Self::locate_each) keeps the others.
    pub fn locate(&self, images: &[ImageInput]) -> Result<Vec<Prediction>> {
        self.locate_each(images)?.into_iter().collect()
    }

    /// Like [`locate_each`](Self::locate_each), with the batched stages' failures kept to
    /// the photos that caused them: when the batch as a whole fails (an undecodable photo
    /// stops the batched image encoder), the photos are located one by one, so that only the
    /// bad ones fail.
    pub fn locate_each_isolating(&self, images: &[ImageInput]) -> Vec<Result<Prediction>> {
        match self.locate_each(images) {
            Ok(outcomes) => outcomes,
            Err(_) => images
                .iter()
                .map(|image| {
                    self.locate_each(std::slice::from_ref(image))
                        .and_then(|mut one| one.remove(0))
                })
                .collect(),
        }
    }

    /// Like [`locate`](Self::locate), with one result per photo: a query whose generation or
    /// verification fails does not lose the others. Embedding and retrieval failures still
    /// fail the whole call (they are batched).
    pub fn locate_each(&self, images: &[ImageInput]) -> Result<Vec<Result<Prediction>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = self.embedder.embed_images(images)?;
        embeddings.expect_rows(images.len(), StageKind::ImageEmbedder)?;
        if embeddings.dimension() != self.embedder.dimension() {
            return Err(Error::InvalidPipeline(format!(
                "the image embedder promised {}-d embeddings and returned {}-d ones",
                self.embedder.dimension(),
                embeddings.dimension()
            )));
        }
        let needed = self.neighbors_needed();
        // Both directions of every photo of the batch at once: an exact store serves them
        // from one pass over its vectors.
        let TwoWayNeighbors {
            similar,
            dissimilar,
        } = match &self.store {
            Some(store) if needed.similar > 0 || needed.dissimilar > 0 => {
                let found = store.search_both(&embeddings, needed.similar, needed.dissimilar)?;
                for results in [&found.similar, &found.dissimilar] {
                    if results.len() != images.len() {
                        return Err(g3_core::Error::OutputCountMismatch {
                            stage: StageKind::VectorStore,
                            expected: images.len(),
                            found: results.len(),
                        }
                        .into());
                    }
                }
                found
            }
            _ => TwoWayNeighbors {
                similar: vec![Vec::new(); images.len()],
                dissimilar: vec![Vec::new(); images.len()],
            },
        };

        // Generation and the pools, up to `concurrent_queries` queries at once.
        let pools = self.for_each_concurrently(images.len(), |index| {
            self.candidate_pool(
                &images[index],
                embeddings.row(index),
                &similar[index],
                &dissimilar[index],
            )
        });
        // Verification of every pool in one batch (one GPS-encoder pass for G3's verifier).
        let mut ready = Vec::new();
        let mut outcomes: Vec<Option<Result<Prediction>>> = Vec::with_capacity(images.len());
        for (index, pool) in pools.into_iter().enumerate() {
            match pool {
                Ok(pool) => {
                    ready.push((index, pool));
                    outcomes.push(None);
                }
                Err(error) => outcomes.push(Some(Err(error))),
            }
        }
        let queries: Vec<VerificationQuery<'_>> = ready
            .iter()
            .map(|(index, _)| VerificationQuery {
                image: &images[*index],
                embedding: Some(embeddings.row(*index)),
                similar: &similar[*index],
            })
            .collect();
        let candidates: Vec<Vec<Candidate>> = ready
            .iter()
            .map(|(_, pool)| pool.candidates.clone())
            .collect();
        let verified: Vec<Result<g3_core::Verification>> = match self
            .verifier
            .verify_batch(&queries, candidates)
        {
            Ok(verified) if verified.len() == ready.len() => verified.into_iter().map(Ok).collect(),
            // Find which queries fail, one at a time.
            _ => queries
                .iter()
                .zip(&ready)
                .map(|(query, (_, pool))| {
                    self.verifier
                        .verify(query, pool.candidates.clone())
                        .map_err(Error::from)
                })
                .collect(),
        };
        for ((index, pool), verification) in ready.into_iter().zip(verified) {
            outcomes[index] = Some(verification.map(|verification| Prediction {
                image_id: images[index].id().to_owned(),
                location: verification.candidates[verification.chosen].location,
                chosen: verification.chosen,
                candidates: verification.candidates,
                rejected: pool.rejected,
                lost: pool.lost,
            }));
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every query has an outcome"))
            .collect())
    }

    /// Runs `work(0..count)` on up to `concurrent_queries` threads; results in index order.
    fn for_each_concurrently<T: Send>(
        &self,
        count: usize,
        work: impl Fn(usize) -> T + Sync,
    ) -> Vec<T> {
        let workers = self.settings.concurrent_queries.clamp(1, count.max(1));
        if workers == 1 {
            return (0..count).map(work).collect();
        }
        let next = AtomicUsize::new(0);
        let finished = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            if index >= count {
                                break done;
                            }
                            done.push((index, work(index)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| match handle.join() {
                    Ok(done) => done,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect::<Vec<_>>()
        });
        let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
        for (index, result) in finished {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|result| result.expect("every index is claimed by exactly one worker"))
            .collect()
    }

    /// One query's candidate pool after retrieval: generated, retrieved and gallery
    /// candidates, the answers that could not be read and the ones that never arrived. Fails
    /// when answers were lost beyond the [`AnswerPolicy`], or after the pipeline stopped
    /// asking the generator.
    fn candidate_pool(
        &self,
        image: &ImageInput,
        embedding: &[f32],
        similar: &[RetrievedNeighbor],
        dissimilar: &[RetrievedNeighbor],
    ) -> Result<CandidatePool> {
        let mut candidates = Vec::new();
        let mut rejected = Vec::new();
        let mut lost = Vec::new();
        if let Some(generation) = &self.generation {
            if let Some(halt) = generation.account.halted() {
                return Err(Error::GenerationHalted {
                    image_id: image.id().to_owned(),
                    cause: halt.cause,
                    photos: halt.photos,
                    message: halt.message.clone(),
                });
            }
            let needed = generation.ensemble.references_needed();
            let prompts = generation.ensemble.prompts(
                &similar[..needed.similar.min(similar.len())],
                &dissimilar[..needed.dissimilar.min(dissimilar.len())],
            )?;
            let asked = prompts.iter().map(|prompt| u64::from(prompt.samples)).sum();
            let generated = generation.generator.generate(image, &prompts)?;
            let parsed: Vec<_> = generated
                .answers
                .iter()
                .map(|answer| generation.parser.parse(&answer.text))
                .collect();
            let unreadable = parsed.iter().filter(|location| location.is_err()).count();
            generation.account.judge(
                image.id(),
                asked,
                &generated,
                unreadable as u64,
                &generation.policy,
            )?;
            lost = generated.lost;
            for (answer, location) in generated.answers.into_iter().zip(parsed) {
                match location {
                    Ok(location) => candidates.push(Candidate::new(
                        location,
                        CandidateSource::Generated {
                            prompt_index: answer.prompt_index,
                            sample_index: answer.sample_index,
                        },
                    )),
                    Err(reason) => rejected.push(RejectedAnswer { answer, reason }),
                }
            }
        }
        let retrieved = |neighbor: &RetrievedNeighbor| {
            Candidate::new(
                neighbor.location,
                CandidateSource::Retrieved {
                    key: neighbor.key,
                    rank: neighbor.rank,
                    similarity: neighbor.similarity,
                },
            )
        };
        candidates.extend(
            similar
                .iter()
                .take(self.settings.retrieved_candidates)
                .map(retrieved),
        );
        if let Some(gallery) = &self.gallery
            && self.settings.gallery_candidates > 0
        {
            candidates.extend(gallery.top_k(embedding, self.settings.gallery_candidates)?);
        }
        if candidates.is_empty() {
            match (self.settings.empty_pool, similar.first()) {
                (EmptyPool::TopRetrieved, Some(top)) => candidates.push(retrieved(top)),
                _ => {
                    return Err(Error::NoCandidates {
                        image_id: image.id().to_owned(),
                        rejected: rejected.len(),
                    });
                }
            }
        }
        Ok(CandidatePool {
            candidates,
            rejected,
            lost,
        })
    }
}

/// What a query brings to verification.
struct CandidatePool {
    candidates: Vec<Candidate>,
    rejected: Vec<RejectedAnswer>,
    lost: Vec<LostAnswers>,
}

/// Assembles a [`Pipeline`] from stages; [`build`](Self::build) checks that they fit
/// together.
#[derive(Default)]
pub struct PipelineBuilder {
    embedder: Option<Box<dyn ImageEmbedder>>,
    store: Option<Box<dyn VectorStore>>,
    ensemble: Option<Box<dyn PromptEnsemble>>,
    generator: Option<Box<dyn LmmGenerator>>,
    parser: Option<Box<dyn AnswerParser>>,
    gallery: Option<GpsGallery>,
    verifier: Option<Box<dyn Verifier>>,
    settings: PipelineSettings,
    answer_policy: AnswerPolicy,
}

impl PipelineBuilder {
    /// The query embedder; its embeddings must live in the vector store's (and gallery's)
    /// space. Required.
    pub fn image_embedder(mut self, embedder: impl ImageEmbedder + 'static) -> Self {
        self.embedder = Some(Box::new(embedder));
        self
    }

    /// The database searched for similar and dissimilar images.
    pub fn vector_store(mut self, store: impl VectorStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The Geo-diversification prompts; needs a [`generator`](Self::generator).
    pub fn prompt_ensemble(mut self, ensemble: impl PromptEnsemble + 'static) -> Self {
        self.ensemble = Some(Box::new(ensemble));
        self
    }

    /// The LMM (or stand-in) answering the prompts; needs a
    /// [`prompt_ensemble`](Self::prompt_ensemble).
    pub fn generator(mut self, generator: impl LmmGenerator + 'static) -> Self {
        self.generator = Some(Box::new(generator));
        self
    }

    /// Reads locations from answers (default [`RobustAnswerParser`]).
    pub fn answer_parser(mut self, parser: impl AnswerParser + 'static) -> Self {
        self.parser = Some(Box::new(parser));
        self
    }

    /// A GPS gallery whose best points join the pool
    /// ([`gallery_candidates`](PipelineSettings::gallery_candidates) of them).
    pub fn gallery(mut self, gallery: GpsGallery) -> Self {
        self.gallery = Some(gallery);
        self
    }

    /// Chooses among the candidates. Required.
    pub fn verifier(mut self, verifier: impl Verifier + 'static) -> Self {
        self.verifier = Some(Box::new(verifier));
        self
    }

    /// How the pool is filled and how queries run.
    pub fn settings(mut self, settings: PipelineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// What to do with photos whose LMM answers were lost (default: such a photo fails, and
    /// the pipeline stops asking after 3 photos in a row fail for a persistent cause).
    pub fn answer_policy(mut self, policy: AnswerPolicy) -> Self {
        self.answer_policy = policy;
        self
    }

    /// The pipeline, or why its stages do not fit together.
    pub fn build(self) -> Result<Pipeline> {
        let invalid = |reason: String| Err(Error::InvalidPipeline(reason));
        let Some(embedder) = self.embedder else {
            return invalid("no image embedder: call image_embedder()".into());
        };
        let Some(verifier) = self.verifier else {
            return invalid("no verifier: call verifier()".into());
        };
        let dimension = embedder.dimension();
        if let Some(store) = &self.store {
            if store.dimension() != dimension {
                return invalid(format!(
                    "the vector store holds {}-d vectors but the image embedder gives {dimension}-d ones: build the database with the same embedding as the queries",
                    store.dimension()
                ));
            }
            if store.is_empty() {
                return invalid("the vector store is empty".into());
            }
        }
        if let Some(gallery) = &self.gallery
            && gallery.dimension() != dimension
        {
            return invalid(format!(
                "the GPS gallery's embeddings are {}-d but the image embedder gives {dimension}-d ones",
                gallery.dimension()
            ));
        }
        let generation = match (self.ensemble, self.generator) {
            (Some(ensemble), Some(generator)) => {
                self.answer_policy.min_answers.validate()?;
                Some(Generation {
                    ensemble,
                    generator,
                    parser: self.parser.unwrap_or_else(|| Box::new(RobustAnswerParser)),
                    policy: self.answer_policy,
                    account: GenerationAccount::default(),
                })
            }
            (None, None) => None,
            (Some(_), None) => return invalid("a prompt ensemble needs a generator".into()),
            (None, Some(_)) => return invalid("a generator needs a prompt ensemble".into()),
        };
        let settings = self.settings;
        let prompts = generation
            .as_ref()
            .map(|generation| generation.ensemble.references_needed())
            .unwrap_or_default();
        let required = NeighborCounts::required(&settings, prompts);
        if required.any() && self.store.is_none() {
            return invalid(format!(
                "each query needs {} similar and {} dissimilar neighbours (the prompts quote {} and {}; retrieved_candidates = {}, similar_neighbors = {}) but there is no vector store",
                required.similar,
                required.dissimilar,
                prompts.similar,
                prompts.dissimilar,
                settings.retrieved_candidates,
                settings.similar_neighbors
            ));
        }
        if settings.gallery_candidates > 0 && self.gallery.is_none() {
            return invalid("gallery_candidates needs a GPS gallery".into());
        }
        if generation.is_none()
            && settings.retrieved_candidates == 0
            && settings.gallery_candidates == 0
        {
            return invalid(
                "nothing fills the candidate pool: configure generation, retrieved_candidates or gallery_candidates".into(),
            );
        }
        Ok(Pipeline {
            embedder,
            store: self.store,
            generation,
            gallery: self.gallery,
            verifier,
            settings,
        })
    }
}

#[cfg(test)]
mod tests;

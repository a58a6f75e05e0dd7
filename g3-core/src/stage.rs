//! The stage traits: one per replaceable part of G3.
//!
//! Every trait is object safe (a pipeline can hold `Box<dyn Verifier>`), `Send + Sync` (stages
//! are shared across worker threads), batch-first (slices in, one output per input, in input
//! order) and implemented for `&T`, `Box<T>` and `Arc<T>` whenever `T` implements it. Stages
//! report failures as [`Error::Stage`](crate::Error::Stage), wrapping their own error type.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::candidate::{
    Candidate, PromptRequest, RejectionReason, RetrievedNeighbor, SearchDirection,
};
use crate::embedding::Embeddings;
use crate::error::{Error, Result};
use crate::image::ImageInput;
use crate::lmm::{GeneratedAnswers, GeneratorDescription, LmmUsage};
use crate::point::GeoPoint;

/// Names a stage in errors and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StageKind {
    /// [`ImageEmbedder`].
    ImageEmbedder,
    /// [`GpsEmbedder`].
    GpsEmbedder,
    /// [`TextEmbedder`].
    TextEmbedder,
    /// [`VectorStore`].
    VectorStore,
    /// [`PromptEnsemble`].
    PromptEnsemble,
    /// [`LmmGenerator`].
    LmmGenerator,
    /// [`AnswerParser`].
    AnswerParser,
    /// [`Verifier`].
    Verifier,
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StageKind::ImageEmbedder => "image embedder",
            StageKind::GpsEmbedder => "GPS embedder",
            StageKind::TextEmbedder => "text embedder",
            StageKind::VectorStore => "vector store",
            StageKind::PromptEnsemble => "prompt ensemble",
            StageKind::LmmGenerator => "LMM generator",
            StageKind::AnswerParser => "answer parser",
            StageKind::Verifier => "verifier",
        })
    }
}

/// Turns photos into vectors: CLIP image features, G3's 2304-d database embedding, GeoCLIP's
/// image embedding...
pub trait ImageEmbedder: Send + Sync {
    /// Width of every embedding this stage returns.
    fn dimension(&self) -> usize;

    /// One row per image, in input order, each [`dimension`](Self::dimension) wide.
    fn embed_images(&self, images: &[ImageInput]) -> Result<Embeddings>;
}

/// Turns GPS coordinates into vectors (G3's and GeoCLIP's location encoders).
pub trait GpsEmbedder: Send + Sync {
    /// Width of every embedding this stage returns.
    fn dimension(&self) -> usize;

    /// One row per location, in input order, each [`dimension`](Self::dimension) wide.
    fn embed_locations(&self, locations: &[GeoPoint]) -> Result<Embeddings>;
}

/// Turns text into vectors (CLIP's text tower with G3's text head).
pub trait TextEmbedder: Send + Sync {
    /// Width of every embedding this stage returns.
    fn dimension(&self) -> usize;

    /// One row per text, in input order, each [`dimension`](Self::dimension) wide.
    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings>;
}

/// A database of geotagged image embeddings searched by inner product.
pub trait VectorStore: Send + Sync {
    /// Width of the stored vectors; queries must have it.
    fn dimension(&self) -> usize;

    /// Number of stored entries.
    fn len(&self) -> usize;

    /// Whether the store holds no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For each query row, in order, up to `k` entries ranked by inner product: highest first
    /// for [`SearchDirection::Similar`], lowest first for [`SearchDirection::Dissimilar`].
    /// Fewer than `k` come back only when the store holds fewer entries.
    fn search(
        &self,
        queries: &Embeddings,
        k: usize,
        direction: SearchDirection,
    ) -> Result<Vec<Vec<RetrievedNeighbor>>>;

    /// Both of G3's searches at once: for each query, its `k_similar` most similar entries
    /// and its `k_dissimilar` least similar ones, as two [`search`](Self::search)es give
    /// them (a `k` of 0 gives empty lists). The default makes the two searches; a store that
    /// reads every vector (an exact store) overrides it to serve both from one pass, half
    /// the memory traffic at the published size.
    fn search_both(
        &self,
        queries: &Embeddings,
        k_similar: usize,
        k_dissimilar: usize,
    ) -> Result<TwoWayNeighbors> {
        let search = |k: usize, direction| {
            if k == 0 {
                Ok(vec![Vec::new(); queries.len()])
            } else {
                self.search(queries, k, direction)
            }
        };
        Ok(TwoWayNeighbors {
            similar: search(k_similar, SearchDirection::Similar)?,
            dissimilar: search(k_dissimilar, SearchDirection::Dissimilar)?,
        })
    }
}

/// Each query's neighbours in both directions ([`VectorStore::search_both`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwoWayNeighbors {
    /// Per query, the most similar entries, best first.
    pub similar: Vec<Vec<RetrievedNeighbor>>,
    /// Per query, the least similar entries, least similar first.
    pub dissimilar: Vec<Vec<RetrievedNeighbor>>,
}

/// How many retrieved references an ensemble quotes at most, so the pipeline knows how
/// many neighbours to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReferenceCounts {
    /// Most similar-image coordinates any prompt quotes.
    pub similar: usize,
    /// Most dissimilar-image coordinates any prompt quotes.
    pub dissimilar: usize,
}

/// Geo-diversification: renders the prompts for one query from its retrieved neighbours.
pub trait PromptEnsemble: Send + Sync {
    /// How many neighbours of each kind [`prompts`](Self::prompts) needs.
    fn references_needed(&self) -> ReferenceCounts;

    /// The prompts for one query, given its neighbours ranked best first.
    fn prompts(
        &self,
        similar: &[RetrievedNeighbor],
        dissimilar: &[RetrievedNeighbor],
    ) -> Result<Vec<PromptRequest>>;
}

/// A large multimodal model (or anything standing in for one) answering prompts about an image.
pub trait LmmGenerator: Send + Sync {
    /// Up to [`PromptRequest::samples`] answers for each prompt, ordered by prompt then
    /// sample; each answer names its prompt and sample. Every sample that could not be
    /// obtained (a server that was down, refused the key or gave up) is reported in
    /// [`GeneratedAnswers::lost`] with its cause, never just left out: the pipeline decides
    /// whether a photo with lost answers still gets a prediction. Samples neither answered
    /// nor lost were declined (a stand-in with nothing to say for a prompt). Implementations
    /// may run the requests concurrently. `Err` is for failures that are not about the
    /// answers (a response cache that cannot be written).
    fn generate(&self, image: &ImageInput, prompts: &[PromptRequest]) -> Result<GeneratedAnswers>;

    /// What this generator is; the default says it asks a model named "custom generator".
    fn describe(&self) -> GeneratorDescription {
        GeneratorDescription::model("custom generator")
    }

    /// Requests, retries, tokens and cost since the generator was made; `None` (the default)
    /// for generators that keep no such account.
    fn usage(&self) -> Option<LmmUsage> {
        None
    }
}

/// Reads a location out of an LMM's answer.
pub trait AnswerParser: Send + Sync {
    /// The location the answer gives, or why none could be read. Never panics.
    fn parse(&self, answer: &str) -> std::result::Result<GeoPoint, RejectionReason>;
}

/// What a verifier knows about the query besides the candidates.
#[derive(Debug, Clone, Copy)]
pub struct VerificationQuery<'a> {
    /// The query photo.
    pub image: &'a ImageInput,
    /// The query's retrieval embedding, when the pipeline computed one (G3's verifier reads
    /// the image-GPS part of it instead of running the image encoder again).
    pub embedding: Option<&'a [f32]>,
    /// The query's similar neighbours, best first.
    pub similar: &'a [RetrievedNeighbor],
}

/// The verifier's decision: the pool with scores filled in and the index of the winner.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The candidates in their original order, each with `score` set.
    pub candidates: Vec<Candidate>,
    /// Index of the chosen candidate.
    pub chosen: usize,
}

impl Verification {
    /// Puts `scores` on `candidates` (same order) and chooses the highest: ties go to the
    /// earlier candidate and NaN scores never win. Fails on an empty pool or a score count
    /// that differs from the pool's size.
    pub fn from_scores(candidates: Vec<Candidate>, scores: Vec<f32>) -> Result<Self> {
        if candidates.is_empty() {
            return Err(Error::NoCandidates);
        }
        if scores.len() != candidates.len() {
            return Err(Error::OutputCountMismatch {
                stage: StageKind::Verifier,
                expected: candidates.len(),
                found: scores.len(),
            });
        }
        let chosen = argmax(&scores);
        let candidates = candidates
            .into_iter()
            .zip(scores)
            .map(|(candidate, score)| Candidate {
                score: Some(score),
                ..candidate
            })
            .collect();
        Ok(Verification { candidates, chosen })
    }
}

/// Geo-verification: scores candidate locations and picks one.
pub trait Verifier: Send + Sync {
    /// One score per candidate, in order; higher is better.
    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>>;

    /// Scores the pool and chooses the highest score ([`Verification::from_scores`]). Fails
    /// on an empty pool.
    fn verify(
        &self,
        query: &VerificationQuery<'_>,
        candidates: Vec<Candidate>,
    ) -> Result<Verification> {
        if candidates.is_empty() {
            return Err(Error::NoCandidates);
        }
        let scores = self.score(query, &candidates)?;
        Verification::from_scores(candidates, scores)
    }

    /// Verifies several queries' pools, in order. The default verifies one query at a
    /// time; verifiers whose cost is a model pass (G3's GPS encoder) override it to embed
    /// every pool's candidates in one batch, which streams the model's weights once instead
    /// of once per query. Any failing query fails the call.
    fn verify_batch(
        &self,
        queries: &[VerificationQuery<'_>],
        pools: Vec<Vec<Candidate>>,
    ) -> Result<Vec<Verification>> {
        if queries.len() != pools.len() {
            return Err(Error::OutputCountMismatch {
                stage: StageKind::Verifier,
                expected: queries.len(),
                found: pools.len(),
            });
        }
        queries
            .iter()
            .zip(pools)
            .map(|(query, pool)| self.verify(query, pool))
            .collect()
    }
}

/// Index of the largest score: the first on ties, NaN never chosen unless every score is NaN.
fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (index, score) in scores.iter().enumerate() {
        if score > &scores[best] || (scores[best].is_nan() && !score.is_nan()) {
            best = index;
        }
    }
    best
}

/// Implements a stage trait for `&T`, `Box<T>` and `Arc<T>` by forwarding every method, so
/// overridden defaults are kept.
macro_rules! forward_through_pointers {
    ($stage:ident { $($method:item)* }) => {
        impl<T: $stage + ?Sized> $stage for &T { $($method)* }
        impl<T: $stage + ?Sized> $stage for Box<T> { $($method)* }
        impl<T: $stage + ?Sized> $stage for Arc<T> { $($method)* }
    };
}

forward_through_pointers!(ImageEmbedder {
    fn dimension(&self) -> usize { (**self).dimension() }
    fn embed_images(&self, images: &[ImageInput]) -> Result<Embeddings> { (**self).embed_images(images) }
});

forward_through_pointers!(GpsEmbedder {
    fn dimension(&self) -> usize { (**self).dimension() }
    fn embed_locations(&self, locations: &[GeoPoint]) -> Result<Embeddings> { (**self).embed_locations(locations) }
});

forward_through_pointers!(TextEmbedder {
    fn dimension(&self) -> usize { (**self).dimension() }
    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings> { (**self).embed_texts(texts) }
});

forward_through_pointers!(VectorStore {
    fn dimension(&self) -> usize { (**self).dimension() }
    fn len(&self) -> usize { (**self).len() }
    fn is_empty(&self) -> bool { (**self).is_empty() }
    fn search(&self, queries: &Embeddings, k: usize, direction: SearchDirection) -> Result<Vec<Vec<RetrievedNeighbor>>> {
        (**self).search(queries, k, direction)
    }
    fn search_both(&self, queries: &Embeddings, k_similar: usize, k_dissimilar: usize) -> Result<TwoWayNeighbors> {
        (**self).search_both(queries, k_similar, k_dissimilar)
    }
});

forward_through_pointers!(PromptEnsemble {
    fn references_needed(&self) -> ReferenceCounts { (**self).references_needed() }
    fn prompts(&self, similar: &[RetrievedNeighbor], dissimilar: &[RetrievedNeighbor]) -> Result<Vec<PromptRequest>> {
        (**self).prompts(similar, dissimilar)
    }
});

forward_through_pointers!(LmmGenerator {
    fn generate(&self, image: &ImageInput, prompts: &[PromptRequest]) -> Result<GeneratedAnswers> {
        (**self).generate(image, prompts)
    }
    fn describe(&self) -> GeneratorDescription { (**self).describe() }
    fn usage(&self) -> Option<LmmUsage> { (**self).usage() }
});

forward_through_pointers!(AnswerParser {
    fn parse(&self, answer: &str) -> std::result::Result<GeoPoint, RejectionReason> { (**self).parse(answer) }
});

forward_through_pointers!(Verifier {
    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        (**self).score(query, candidates)
    }
    fn verify(&self, query: &VerificationQuery<'_>, candidates: Vec<Candidate>) -> Result<Verification> {
        (**self).verify(query, candidates)
    }
    fn verify_batch(&self, queries: &[VerificationQuery<'_>], pools: Vec<Vec<Candidate>>) -> Result<Vec<Verification>> {
        (**self).verify_batch(queries, pools)
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_the_first_of_equal_scores_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), 1);
        assert_eq!(argmax(&[0.1, f32::NAN, 0.2]), 2);
        assert_eq!(argmax(&[f32::NAN]), 0);
    }
}

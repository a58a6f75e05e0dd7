//! What flows between stages: retrieved neighbours, prompts, LMM answers, candidates with
//! provenance, and the final [`Prediction`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lmm::{LmmAnswer, LostAnswers};
use crate::point::GeoPoint;

/// Which end of the similarity ranking a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SearchDirection {
    /// Highest inner product first: G3's "similar images".
    Similar,
    /// Lowest inner product first: G3's "dissimilar images" (the reference searches with the
    /// negated query).
    Dissimilar,
}

/// A database entry returned by a [`VectorStore`](crate::VectorStore) search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievedNeighbor {
    /// The entry's stable key in the database (by default its row in the embeddings file).
    pub key: u64,
    /// Position in the result list, 0 = best match in the search direction.
    pub rank: usize,
    /// Inner product between query and entry (cosine for normalised vectors). For a
    /// dissimilar search this is still the plain similarity, so lower is "more dissimilar".
    pub similarity: f32,
    /// Where the database image was taken.
    pub location: GeoPoint,
}

/// The detail level at which an LMM looks at the image (OpenAI's `image_url.detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// 512 x 512 thumbnail; what G3 uses with GPT-4V.
    #[default]
    Low,
    /// Full-resolution tiles.
    High,
    /// Let the server decide.
    Auto,
}

/// One rendered prompt of a Geo-diversification ensemble, with how to sample it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRequest {
    /// Position of this prompt in its ensemble.
    pub prompt_index: usize,
    /// The full text sent with the image.
    pub text: String,
    /// How many answers to sample (G3's N).
    pub samples: u32,
    /// Sampling temperature (G3 with GPT-4V: 1.2).
    pub temperature: f32,
    /// Upper bound on generated tokens per answer (G3: 200).
    pub max_tokens: u32,
    /// How closely the model looks at the image.
    pub image_detail: ImageDetail,
    /// The similar-image coordinates quoted in the prompt, best match first (empty for a
    /// zero-shot prompt). Kept beside the text for reports and for generators that work
    /// from the references instead of reading the image.
    pub similar: Vec<GeoPoint>,
    /// The dissimilar-image coordinates quoted in the prompt.
    pub dissimilar: Vec<GeoPoint>,
}

/// Why an answer could not become a candidate, in words for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RejectionReason(pub String);

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An LMM answer dropped from the candidate pool, kept so reports can show what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedAnswer {
    /// The answer as the model wrote it.
    pub answer: LmmAnswer,
    /// Why the parser refused it.
    pub reason: RejectionReason,
}

/// Where a candidate location came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CandidateSource {
    /// Parsed from an LMM answer (Geo-diversification).
    Generated {
        /// The prompt in the ensemble.
        prompt_index: usize,
        /// The sample of that prompt.
        sample_index: u32,
    },
    /// The location of a retrieved database image (G3's top-S retrieved candidates).
    Retrieved {
        /// The database key of the image.
        key: u64,
        /// Its retrieval rank, 0 = most similar.
        rank: usize,
        /// Its similarity to the query.
        similarity: f32,
    },
    /// An entry of a fixed GPS gallery (GeoCLIP-style scoring).
    Gallery {
        /// Row of the gallery.
        index: usize,
    },
    /// Produced by a user-defined stage.
    Custom {
        /// A name for the stage, for reports.
        stage: String,
    },
}

/// A location the verifier chooses among, with its provenance and, once scored, its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The proposed location.
    pub location: GeoPoint,
    /// Which stage, prompt and sample (or retrieval rank) produced it.
    pub source: CandidateSource,
    /// The verifier's score (higher is better); `None` before verification.
    pub score: Option<f32>,
}

impl Candidate {
    /// An unscored candidate.
    pub fn new(location: GeoPoint, source: CandidateSource) -> Self {
        Candidate {
            location,
            source,
            score: None,
        }
    }
}

/// The outcome for one image: the chosen location and everything that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The [`ImageInput::id`](crate::ImageInput::id) of the query.
    pub image_id: String,
    /// The chosen location.
    pub location: GeoPoint,
    /// Index of the chosen candidate in `candidates`.
    pub chosen: usize,
    /// The scored candidate pool, in the order it was built.
    pub candidates: Vec<Candidate>,
    /// Answers that could not be parsed into a location.
    pub rejected: Vec<RejectedAnswer>,
    /// Samples the generator could not obtain. Empty unless the pipeline was told to accept
    /// partial pools (`min_answers`): by default a photo with lost answers gets no prediction.
    #[serde(default)]
    pub lost: Vec<LostAnswers>,
}

impl Prediction {
    /// The candidate that was chosen.
    pub fn chosen_candidate(&self) -> &Candidate {
        &self.candidates[self.chosen]
    }

    /// How many samples the generator could not obtain for this photo.
    pub fn lost_samples(&self) -> u64 {
        self.lost.iter().map(|lost| u64::from(lost.samples)).sum()
    }
}

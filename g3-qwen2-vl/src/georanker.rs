//! GeoRanker's re-ranker (Jia et al., NeurIPS 2025) as a G3 verifier: for each candidate
//! location, one conversation with the query photo is scored by the reward model, and the
//! highest reward wins.
//!
//! The conversations follow GeoRanker's `evaluate.py`:
//!
//! - a retrieved candidate (a database photo): the query photo, "How far is this place from
//!   latitude: {lat}, longitude: {lon}, {places}?", the candidate's own database photo, and
//!   "Negative examples: {negatives}";
//! - any other candidate (an LMM's answer, "zero-shot"): the query photo, "How far is this
//!   place from latitude: {lat}, longitude: {lon}?" and the same negatives, no second photo.
//!
//! `{places}` is the entry's city, state and country (MP16-Pro's levels 1, 3 and 5), blanks
//! dropped, joined by spaces; each negative is "latitude: {lat}, longitude: {lon}, {places}",
//! joined by "; ", built from the query's retrieval ranks 15 to 19 (the last 5 of the 20 that
//! GeoRanker's candidate files hold). Coordinates print as Python prints a float.

use std::sync::Arc;

use g3_core::{
    Candidate, CandidateSource, GeoPoint, RetrievedNeighbor, StageKind, VerificationQuery, Verifier,
};
use serde::{Deserialize, Serialize};

use crate::chat::left_padded_batch;
use crate::chat::{ChatMessage, ChatTemplate, ContentPart, PromptInputs, PromptTokenizer};
use crate::error::Qwen2VlError;
use crate::image_processor::{ImageProcessor, ImageProcessorConfig, ProcessedImage};
use crate::model::RewardModel;

/// The place names GeoRanker quotes for a database entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlaceNames {
    /// City.
    pub city: String,
    /// State (first-level administrative area).
    pub state: String,
    /// Country.
    pub country: String,
}

impl PlaceNames {
    /// "{city} {state} {country}" with blank names left out.
    pub fn text(&self) -> String {
        [&self.city, &self.state, &self.country]
            .into_iter()
            .filter(|name| !name.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A float as Python's `repr` (and so an f-string) writes it: the shortest digits that read
/// back to the same value, at least one decimal (`48.0`), and scientific notation below
/// 1e-4 or from 1e16 (`1e-05`, `1.5e+16`).
pub fn python_float(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    if (-4..16).contains(&exponent) {
        let plain = format!("{value}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// The question of a retrieved candidate.
pub fn retrieved_question(location: GeoPoint, places: &PlaceNames) -> String {
    format!(
        "How far is this place from latitude: {}, longitude: {}, {}?",
        python_float(location.lat_deg()),
        python_float(location.lon_deg()),
        places.text()
    )
}

/// The question of a zero-shot candidate.
pub fn zero_shot_question(location: GeoPoint) -> String {
    format!(
        "How far is this place from latitude: {}, longitude: {}?",
        python_float(location.lat_deg()),
        python_float(location.lon_deg())
    )
}

/// "Negative examples: …" from the negatives' locations and place names.
pub fn negatives_text(negatives: &[(GeoPoint, PlaceNames)]) -> String {
    let examples: Vec<String> = negatives
        .iter()
        .map(|(location, places)| {
            format!(
                "latitude: {}, longitude: {}, {}",
                python_float(location.lat_deg()),
                python_float(location.lon_deg()),
                places.text()
            )
        })
        .collect();
    format!("Negative examples: {}", examples.join("; "))
}

/// The conversation of a retrieved candidate: query photo, question, the candidate's photo,
/// negatives.
pub fn retrieved_message(location: GeoPoint, places: &PlaceNames, negatives: &str) -> ChatMessage {
    ChatMessage::user(vec![
        ContentPart::Image,
        ContentPart::Text(retrieved_question(location, places)),
        ContentPart::Image,
        ContentPart::Text(negatives.to_owned()),
    ])
}

/// The conversation of a zero-shot candidate: query photo, question, negatives.
pub fn zero_shot_message(location: GeoPoint, negatives: &str) -> ChatMessage {
    ChatMessage::user(vec![
        ContentPart::Image,
        ContentPart::Text(zero_shot_question(location)),
        ContentPart::Text(negatives.to_owned()),
    ])
}

/// What the verifier needs to know about database entries: their place names and photos.
/// The `g3` facade serves them from a database's metadata and MP16-Pro's archive.
pub trait ReferenceLookup: Send + Sync {
    /// The place names of the entry with database key `key`.
    fn places(&self, key: u64) -> g3_core::Result<PlaceNames>;

    /// The encoded photo of the entry with database key `key`.
    fn photo(&self, key: u64) -> g3_core::Result<g3_core::ImageInput>;
}

/// GeoRanker's settings; defaults are its code's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeoRankerConfig {
    /// The retrieval rank of the first negative example (15: ranks 15 to 19 of 20).
    pub negatives_from_rank: usize,
    /// Negative examples quoted in every prompt (5).
    pub negatives: usize,
    /// Conversations per forward pass (GeoRanker's `--batch_size`, 4).
    pub batch_size: usize,
    /// The JPEG quality at which database photos are re-encoded before the model sees them,
    /// as PIL writes them (GeoRanker re-encodes its reference photos at PIL's default, 75);
    /// `None` shows the photos as stored.
    pub reference_jpeg_quality: Option<u8>,
    /// Image preprocessing (qwen_vl_utils' defaults).
    pub image: ImageProcessorConfig,
}

impl Default for GeoRankerConfig {
    fn default() -> Self {
        GeoRankerConfig {
            negatives_from_rank: 15,
            negatives: 5,
            batch_size: 4,
            reference_jpeg_quality: Some(75),
            image: ImageProcessorConfig::default(),
        }
    }
}

impl GeoRankerConfig {
    /// Similar neighbours the pipeline must retrieve for the negatives.
    pub fn similar_needed(&self) -> usize {
        self.negatives_from_rank + self.negatives
    }
}

/// The reward model with its prompt machinery, as a [`Verifier`].
pub struct GeoRankerVerifier {
    model: RewardModel,
    template: ChatTemplate,
    tokenizer: PromptTokenizer,
    processor: ImageProcessor,
    references: Arc<dyn ReferenceLookup>,
    config: GeoRankerConfig,
}

impl std::fmt::Debug for GeoRankerVerifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GeoRankerVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn stage_error(error: Qwen2VlError) -> g3_core::Error {
    g3_core::Error::stage(StageKind::Verifier, error)
}

impl GeoRankerVerifier {
    /// A verifier from a loaded reward model, the model folder's chat template and tokenizer,
    /// and a source of database place names and photos.
    pub fn new(
        model: RewardModel,
        template: ChatTemplate,
        tokenizer: PromptTokenizer,
        references: Arc<dyn ReferenceLookup>,
        config: GeoRankerConfig,
    ) -> Self {
        GeoRankerVerifier {
            model,
            template,
            tokenizer,
            processor: ImageProcessor::new(config.image.clone()),
            references,
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GeoRankerConfig {
        &self.config
    }

    /// The negatives of a query: its similar neighbours at the configured ranks.
    fn negatives(&self, similar: &[RetrievedNeighbor]) -> g3_core::Result<String> {
        let mut negatives = Vec::with_capacity(self.config.negatives);
        for neighbour in similar
            .iter()
            .filter(|neighbour| neighbour.rank >= self.config.negatives_from_rank)
            .take(self.config.negatives)
        {
            negatives.push((neighbour.location, self.references.places(neighbour.key)?));
        }
        if negatives.len() < self.config.negatives {
            return Err(g3_core::Error::stage(
                StageKind::Verifier,
                format!(
                    "GeoRanker quotes {} negative examples from retrieval ranks {}..{}, but the query has only {} similar neighbours: retrieve at least {}",
                    self.config.negatives,
                    self.config.negatives_from_rank,
                    self.config.similar_needed(),
                    similar.len(),
                    self.config.similar_needed()
                ),
            ));
        }
        Ok(negatives_text(&negatives))
    }

    /// A database photo as the model sees it: re-encoded as configured, then preprocessed.
    fn reference_photo(&self, photo: &g3_core::ImageInput) -> g3_core::Result<ProcessedImage> {
        let reencoded;
        let bytes = match self.config.reference_jpeg_quality {
            Some(quality) => {
                reencoded = g3_align::clip::reencode_jpeg_like_pil(
                    photo.encoded(),
                    photo.id(),
                    self.processor.limits(),
                    quality,
                )
                .map_err(|error| g3_core::Error::stage(StageKind::Verifier, error))?;
                &reencoded[..]
            }
            None => photo.encoded(),
        };
        self.processor
            .process(bytes, photo.id())
            .map_err(stage_error)
    }

    /// The conversations of `candidates` for one query, tokenized, with their images.
    fn prompt_inputs(
        &self,
        query: &VerificationQuery<'_>,
        candidates: &[Candidate],
    ) -> g3_core::Result<Vec<PromptInputs>> {
        let negatives = self.negatives(query.similar)?;
        let query_photo = self
            .processor
            .process(query.image.encoded(), query.image.id())
            .map_err(stage_error)?;
        let merge = self.model.qwen2_vl.visual.config().spatial_merge_size;
        let mut inputs = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let (message, images): (ChatMessage, Vec<ProcessedImage>) = match candidate.source {
                CandidateSource::Retrieved { key, .. } => {
                    let places = self.references.places(key)?;
                    let photo = self.references.photo(key)?;
                    let reference = self.reference_photo(&photo)?;
                    (
                        retrieved_message(candidate.location, &places, &negatives),
                        vec![query_photo.clone(), reference],
                    )
                }
                _ => (
                    zero_shot_message(candidate.location, &negatives),
                    vec![query_photo.clone()],
                ),
            };
            let prompt = self
                .template
                .render(std::slice::from_ref(&message), true)
                .map_err(stage_error)?;
            let grids: Vec<_> = images.iter().map(|image| image.grid).collect();
            let input_ids = self
                .tokenizer
                .encode(&prompt, &grids, merge)
                .map_err(stage_error)?;
            inputs.push(PromptInputs { input_ids, images });
        }
        Ok(inputs)
    }
}

/// GeoRanker's choice among scored candidates: the first highest reward in its own order,
/// retrieved candidates by rank, then the others (`evaluate.py` takes `list.index(max)` over
/// retrieved-then-zero-shot rewards). Ties are real there: bf16 rewards are coarse. NaN
/// rewards never win unless all are NaN.
pub fn georanker_choice(candidates: &[Candidate]) -> usize {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&index| match candidates[index].source {
        CandidateSource::Retrieved { rank, .. } => (0, rank, index),
        _ => (1, 0, index),
    });
    let score = |index: usize| candidates[index].score.unwrap_or(f32::NAN);
    let mut best = order[0];
    for &index in &order[1..] {
        if score(index) > score(best) || (score(best).is_nan() && !score(index).is_nan()) {
            best = index;
        }
    }
    best
}

impl Verifier for GeoRankerVerifier {
    fn verify(
        &self,
        query: &VerificationQuery<'_>,
        candidates: Vec<Candidate>,
    ) -> g3_core::Result<g3_core::Verification> {
        if candidates.is_empty() {
            return Err(g3_core::Error::NoCandidates);
        }
        let scores = self.score(query, &candidates)?;
        let mut verification = g3_core::Verification::from_scores(candidates, scores)?;
        verification.chosen = georanker_choice(&verification.candidates);
        Ok(verification)
    }

    fn score(
        &self,
        query: &VerificationQuery<'_>,
        candidates: &[Candidate],
    ) -> g3_core::Result<Vec<f32>> {
        let inputs = self.prompt_inputs(query, candidates)?;
        let mut rewards = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(self.config.batch_size.max(1)) {
            let batch = left_padded_batch(chunk, self.tokenizer.pad_id());
            rewards.extend(self.model.rewards(&batch).map_err(stage_error)?);
        }
        Ok(rewards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(source: CandidateSource, score: f32) -> Candidate {
        Candidate {
            score: Some(score),
            ..Candidate::new(GeoPoint::new(0.0, 0.0).unwrap(), source)
        }
    }

    #[test]
    fn ties_go_to_retrieved_candidates_by_rank_then_the_others() {
        let generated = CandidateSource::Generated {
            prompt_index: 0,
            sample_index: 0,
        };
        let retrieved = |rank: usize| CandidateSource::Retrieved {
            key: rank as u64,
            rank,
            similarity: 0.5,
        };
        // The pipeline puts generated candidates first; GeoRanker's order puts them last.
        let pool = vec![
            candidate(generated.clone(), 2.0),
            candidate(retrieved(3), 2.0),
            candidate(retrieved(1), 2.0),
            candidate(retrieved(0), 1.0),
        ];
        assert_eq!(georanker_choice(&pool), 2);
        let pool = vec![
            candidate(generated.clone(), 3.0),
            candidate(retrieved(0), 2.0),
        ];
        assert_eq!(georanker_choice(&pool), 0);
        let pool = vec![candidate(retrieved(0), f32::NAN), candidate(generated, 1.0)];
        assert_eq!(georanker_choice(&pool), 1);
    }

    #[test]
    fn prompt_texts_follow_evaluate_py() {
        let point = GeoPoint::new(46.470601, 11.623621).unwrap();
        let places = PlaceNames {
            city: "Ortisei".into(),
            state: String::new(),
            country: "Italy".into(),
        };
        assert_eq!(
            retrieved_question(point, &places),
            "How far is this place from latitude: 46.470601, longitude: 11.623621, Ortisei Italy?"
        );
        assert_eq!(
            zero_shot_question(GeoPoint::new(48.0, 2.0).unwrap()),
            "How far is this place from latitude: 48.0, longitude: 2.0?"
        );
        // All place names blank: the comma before them stays, as in the reference.
        assert_eq!(
            negatives_text(&[(point, PlaceNames::default()), (point, places)]),
            "Negative examples: latitude: 46.470601, longitude: 11.623621, ; latitude: 46.470601, longitude: 11.623621, Ortisei Italy"
        );
    }
}

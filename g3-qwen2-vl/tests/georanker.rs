//! GeoRanker end to end against its reference (goldens: `tools/goldens/qwen2_vl.py`): the
//! conversations of `evaluate.py` rendered by the model's chat template, tokenized with image
//! pads expanded and padded on the left as `Qwen2VLProcessor` does, and the verifier's
//! rewards and choice.

mod common;

use common::{fixture, photo_path, read_npy};

use std::collections::HashMap;
use std::sync::Arc;

use g3_core::{
    Candidate, CandidateSource, GeoPoint, ImageInput, RetrievedNeighbor, VerificationQuery,
    Verifier,
};
use g3_qwen2_vl::{
    ChatTemplate, GeoRankerConfig, GeoRankerVerifier, ImageProcessor, ImageProcessorConfig,
    PlaceNames, PromptInputs, PromptTokenizer, ReferenceLookup, left_padded_batch,
    load_reward_model, negatives_text, python_float, retrieved_message, zero_shot_message,
};
use serde_json::Value;

/// The fixture's candidates: (location, places, photo) of the retrieved ones, the zero-shot
/// locations, and the negatives.
struct Candidates {
    query: String,
    retrieved: Vec<(GeoPoint, PlaceNames, String)>,
    zero_shot: Vec<GeoPoint>,
    negatives: Vec<(GeoPoint, PlaceNames)>,
}

fn point(entry: &Value) -> GeoPoint {
    GeoPoint::new(
        entry["latitude"].as_f64().unwrap(),
        entry["longitude"].as_f64().unwrap(),
    )
    .unwrap()
}

fn places(entry: &Value) -> PlaceNames {
    let level = |index: usize| entry["places"][index].as_str().unwrap().to_owned();
    PlaceNames {
        city: level(1),
        state: level(3),
        country: level(5),
    }
}

fn candidates() -> Candidates {
    let parsed: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("candidates.json")).unwrap())
            .unwrap();
    let list = |name: &str| parsed[name].as_array().unwrap().clone();
    Candidates {
        query: parsed["query"].as_str().unwrap().to_owned(),
        retrieved: list("retrieved")
            .iter()
            .map(|entry| {
                (
                    point(entry),
                    places(entry),
                    entry["photo"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        zero_shot: list("zero_shot").iter().map(point).collect(),
        negatives: list("negatives")
            .iter()
            .map(|entry| (point(entry), places(entry)))
            .collect(),
    }
}

fn image_config() -> ImageProcessorConfig {
    ImageProcessorConfig {
        min_pixels: 28 * 28,
        max_pixels: 28 * 28 * 6,
        ..ImageProcessorConfig::default()
    }
}

#[test]
fn python_floats_print_as_python_repr() {
    let cases = [
        (46.470601, "46.470601"),
        (48.0, "48.0"),
        (-74.006, "-74.006"),
        (0.0, "0.0"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1.5e16, "1.5e+16"),
        (123456789012345.6, "123456789012345.6"),
        (-0.5, "-0.5"),
    ];
    for (value, expected) in cases {
        assert_eq!(python_float(value), expected, "{value}");
    }
}

#[test]
fn conversations_render_as_the_reference_prompts() {
    let candidates = candidates();
    let template = ChatTemplate::from_model_folder(&fixture("model")).unwrap();
    let negatives = negatives_text(&candidates.negatives);
    let mut messages: Vec<_> = candidates
        .retrieved
        .iter()
        .map(|(location, places, _)| retrieved_message(*location, places, &negatives))
        .collect();
    messages.extend(
        candidates
            .zero_shot
            .iter()
            .map(|location| zero_shot_message(*location, &negatives)),
    );
    let expected: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("prompts.json")).unwrap()).unwrap();
    assert_eq!(messages.len(), expected.len());
    for (message, expected) in messages.iter().zip(&expected) {
        let rendered = template
            .render(std::slice::from_ref(message), true)
            .unwrap();
        assert_eq!(&rendered, expected);
    }
}

/// Each sequence's token ids and images, built as the verifier builds them.
fn sequences() -> Vec<PromptInputs> {
    let candidates = candidates();
    let tokenizer = PromptTokenizer::from_model_folder(&fixture("model")).unwrap();
    let processor = ImageProcessor::new(image_config());
    let process = |name: &str| {
        processor
            .process(&std::fs::read(photo_path(name)).unwrap(), name)
            .unwrap()
    };
    let prompts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("prompts.json")).unwrap()).unwrap();
    let mut photos: Vec<Vec<String>> = candidates
        .retrieved
        .iter()
        .map(|(_, _, photo)| vec![candidates.query.clone(), photo.clone()])
        .collect();
    photos.extend(
        candidates
            .zero_shot
            .iter()
            .map(|_| vec![candidates.query.clone()]),
    );
    prompts
        .iter()
        .zip(photos)
        .map(|(prompt, names)| {
            let images: Vec<_> = names.iter().map(|name| process(name)).collect();
            let grids: Vec<_> = images.iter().map(|image| image.grid).collect();
            PromptInputs {
                input_ids: tokenizer.encode(prompt, &grids, 2).unwrap(),
                images,
            }
        })
        .collect()
}

#[test]
fn token_ids_and_padding_match_the_processor() {
    let tokenizer = PromptTokenizer::from_model_folder(&fixture("model")).unwrap();
    let batch = left_padded_batch(&sequences(), tokenizer.pad_id());
    let (shape, ids) = read_npy::<i64>("input_ids.npy");
    let (_, mask) = read_npy::<i64>("attention_mask.npy");
    assert_eq!([batch.batch, batch.length()], shape[..]);
    let ids: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
    assert_eq!(batch.input_ids, ids);
    let mask: Vec<bool> = mask.iter().map(|&bit| bit == 1).collect();
    assert_eq!(batch.attention_mask, mask);
}

/// Place names and photos of the fixture's database entries: keys 0 and 1 are the retrieved
/// candidates, 15 to 19 the negatives.
struct FixtureReferences {
    places: HashMap<u64, PlaceNames>,
    photos: HashMap<u64, String>,
}

impl ReferenceLookup for FixtureReferences {
    fn places(&self, key: u64) -> g3_core::Result<PlaceNames> {
        self.places.get(&key).cloned().ok_or_else(|| {
            g3_core::Error::stage(g3_core::StageKind::Verifier, format!("no entry {key}"))
        })
    }

    fn photo(&self, key: u64) -> g3_core::Result<ImageInput> {
        let name = &self.photos[&key];
        Ok(ImageInput::from_path(photo_path(name)).unwrap())
    }
}

/// An error with its causes, as the CLI prints it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    chain
}

#[test]
fn the_verifier_scores_and_chooses_as_the_reference() {
    let candidates = candidates();
    let mut references = FixtureReferences {
        places: HashMap::new(),
        photos: HashMap::new(),
    };
    let mut similar = Vec::new();
    for rank in 0..20_u64 {
        let (location, places) = match rank {
            0 | 1 => {
                let (location, places, photo) = &candidates.retrieved[rank as usize];
                references.photos.insert(rank, photo.clone());
                (*location, places.clone())
            }
            15..=19 => candidates.negatives[rank as usize - 15].clone(),
            _ => (GeoPoint::new(0.0, 0.0).unwrap(), PlaceNames::default()),
        };
        references.places.insert(rank, places);
        similar.push(RetrievedNeighbor {
            key: rank,
            rank: rank as usize,
            similarity: 1.0 - rank as f32 / 100.0,
            location,
        });
    }
    let model = load_reward_model(&fixture("model"), &fixture("adapter"), &{
        #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
        burn::prelude::Device::ndarray()
    })
    .unwrap();
    let verifier = GeoRankerVerifier::new(
        model,
        ChatTemplate::from_model_folder(&fixture("model")).unwrap(),
        PromptTokenizer::from_model_folder(&fixture("model")).unwrap(),
        Arc::new(references),
        GeoRankerConfig {
            image: image_config(),
            batch_size: 2,
            // These goldens show the reference photos as stored; the re-encoded path is
            // compared end to end in g3-cli's tests/georanker.rs.
            reference_jpeg_quality: None,
            ..GeoRankerConfig::default()
        },
    );
    let mut pool: Vec<Candidate> = candidates
        .retrieved
        .iter()
        .enumerate()
        .map(|(rank, (location, _, _))| {
            Candidate::new(
                *location,
                CandidateSource::Retrieved {
                    key: rank as u64,
                    rank,
                    similarity: similar[rank].similarity,
                },
            )
        })
        .collect();
    pool.extend(candidates.zero_shot.iter().map(|location| {
        Candidate::new(
            *location,
            CandidateSource::Generated {
                prompt_index: 0,
                sample_index: 0,
            },
        )
    }));
    let image = ImageInput::from_path(photo_path(&candidates.query)).unwrap();
    let query = VerificationQuery {
        image: &image,
        embedding: None,
        similar: &similar,
    };
    let verification = verifier
        .verify(&query, pool)
        .unwrap_or_else(|error| panic!("{}", error_chain(&error)));
    let (_, expected) = read_npy::<f32>("rewards.npy");
    let scores: Vec<f32> = verification
        .candidates
        .iter()
        .map(|candidate| candidate.score.unwrap())
        .collect();
    for (score, expected) in scores.iter().zip(&expected) {
        assert!(
            (score - expected).abs() < 1e-4,
            "{scores:?} against {expected:?}"
        );
    }
    let best = expected
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(verification.chosen, best);

    // Too few similar neighbours for the negatives: said, not guessed.
    let short = VerificationQuery {
        similar: &similar[..10],
        ..query
    };
    let error = verifier
        .score(&short, &verification.candidates)
        .unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains("retrieve at least 20"), "{chain}");
}

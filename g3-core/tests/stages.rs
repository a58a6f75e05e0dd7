//! The stage traits as a user sees them: implementing one, boxing it, sharing it.

use std::sync::Arc;

use g3_core::{
    Candidate, CandidateSource, Embeddings, Error, GeoPoint, GpsEmbedder, ImageInput, StageKind,
    VerificationQuery, Verifier,
};

/// Scores a candidate by closeness to a fixed point: a user-defined verifier.
struct NearestTo(GeoPoint);

impl Verifier for NearestTo {
    fn score(
        &self,
        _query: &VerificationQuery<'_>,
        candidates: &[Candidate],
    ) -> g3_core::Result<Vec<f32>> {
        Ok(candidates
            .iter()
            .map(|candidate| -self.0.geodesic_distance_km(candidate.location) as f32)
            .collect())
    }
}

/// Returns one score too few: breaks the trait's contract.
struct ShortScores;

impl Verifier for ShortScores {
    fn score(
        &self,
        _query: &VerificationQuery<'_>,
        candidates: &[Candidate],
    ) -> g3_core::Result<Vec<f32>> {
        Ok(vec![0.0; candidates.len().saturating_sub(1)])
    }
}

/// A GPS embedder that fails, to check error wrapping.
struct Broken;

impl GpsEmbedder for Broken {
    fn dimension(&self) -> usize {
        2
    }

    fn embed_locations(&self, _locations: &[GeoPoint]) -> g3_core::Result<Embeddings> {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "weights.pth not found");
        Err(Error::stage(StageKind::GpsEmbedder, cause))
    }
}

fn point(lat_deg: f64, lon_deg: f64) -> GeoPoint {
    GeoPoint::new(lat_deg, lon_deg).unwrap()
}

fn pool() -> Vec<Candidate> {
    [(0.0, 0.0), (48.85, 2.35), (40.71, -74.0)]
        .into_iter()
        .enumerate()
        .map(|(sample, (lat, lon))| {
            Candidate::new(
                point(lat, lon),
                CandidateSource::Generated {
                    prompt_index: 0,
                    sample_index: sample as u32,
                },
            )
        })
        .collect()
}

#[test]
fn boxed_shared_and_borrowed_verifiers_agree() {
    let image = ImageInput::from_bytes("query", vec![0u8; 4]);
    let query = VerificationQuery {
        image: &image,
        embedding: None,
        similar: &[],
    };
    let verifier = NearestTo(point(48.0, 2.0));
    let boxed: Box<dyn Verifier> = Box::new(NearestTo(point(48.0, 2.0)));
    let shared: Arc<dyn Verifier> = Arc::new(NearestTo(point(48.0, 2.0)));
    let stages: [&dyn Verifier; 4] = [&verifier, &boxed, &shared, &&verifier];
    for stage in stages {
        let verification = stage.verify(&query, pool()).unwrap();
        assert_eq!(verification.chosen, 1, "Paris is nearest to (48, 2)");
        assert!(verification.candidates.iter().all(|c| c.score.is_some()));
        assert_eq!(verification.candidates[1].location, point(48.85, 2.35));
    }
}

#[test]
fn verification_enforces_the_contract() {
    let image = ImageInput::from_bytes("query", vec![]);
    let query = VerificationQuery {
        image: &image,
        embedding: None,
        similar: &[],
    };
    assert!(matches!(
        NearestTo(point(0.0, 0.0)).verify(&query, Vec::new()),
        Err(Error::NoCandidates)
    ));
    let error = ShortScores.verify(&query, pool()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::OutputCountMismatch {
                stage: StageKind::Verifier,
                expected: 3,
                found: 2
            }
        ),
        "{error}"
    );
}

#[test]
fn stage_errors_keep_their_cause() {
    let error = Broken.embed_locations(&[point(1.0, 1.0)]).unwrap_err();
    assert_eq!(error.to_string(), "the GPS embedder stage failed");
    let cause = std::error::Error::source(&error).expect("the cause is kept");
    assert_eq!(cause.to_string(), "weights.pth not found");
}

#[test]
fn predictions_serialise_with_provenance() {
    let candidate = Candidate {
        score: Some(0.5),
        ..Candidate::new(
            point(1.0, 2.0),
            CandidateSource::Retrieved {
                key: 7,
                rank: 0,
                similarity: 0.9,
            },
        )
    };
    let json = serde_json::to_value(&candidate).unwrap();
    assert_eq!(json["source"]["kind"], "retrieved");
    assert_eq!(json["source"]["key"], 7);
    assert_eq!(json["location"]["latitude"], 1.0);
    let back: Candidate = serde_json::from_value(json).unwrap();
    assert_eq!(back, candidate);
}

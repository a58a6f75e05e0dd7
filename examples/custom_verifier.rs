//! Plugging a user-defined Geo-verification stage into g3: implement `Verifier::score`, and
//! the trait's `verify` chooses the best candidate. Here the score prefers candidates close
//! to the most similar retrieved image, a simple retrieval-anchored rule to compare with
//! G3's image-GPS similarity.
//!
//! ```sh
//! cargo run --example custom_verifier
//! ```

use g3::core::{
    Candidate, CandidateSource, ImageInput, Result, RetrievedNeighbor, VerificationQuery, Verifier,
};
use g3::{DistanceMetric, GeoPoint};

/// Scores a candidate by minus its distance (km) to the top retrieved neighbour.
struct NearestToTopNeighbour {
    metric: DistanceMetric,
}

impl Verifier for NearestToTopNeighbour {
    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        let Some(top) = query.similar.first() else {
            // Nothing retrieved: every candidate is as good as any other.
            return Ok(vec![0.0; candidates.len()]);
        };
        Ok(candidates
            .iter()
            .map(|candidate| -self.metric.distance_km(top.location, candidate.location) as f32)
            .collect())
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // What earlier stages would have produced for one query photo.
    let image = ImageInput::from_bytes("query.jpg", Vec::new());
    let similar = [RetrievedNeighbor {
        key: 1234,
        rank: 0,
        similarity: 0.91,
        location: "41.8902, 12.4922".parse()?, // the Colosseum
    }];
    let answers = ["41.9028, 12.4964", "43.7696, 11.2558", "45.4642, 9.19"];
    let candidates: Vec<Candidate> = answers
        .iter()
        .enumerate()
        .map(|(sample, text)| {
            Ok(Candidate::new(
                text.parse::<GeoPoint>()?,
                CandidateSource::Generated {
                    prompt_index: 1,
                    sample_index: sample as u32,
                },
            ))
        })
        .collect::<std::result::Result<_, g3::core::Error>>()?;

    let verifier: Box<dyn Verifier> = Box::new(NearestToTopNeighbour {
        metric: DistanceMetric::Geodesic,
    });
    let query = VerificationQuery {
        image: &image,
        embedding: None,
        similar: &similar,
    };
    let verification = verifier.verify(&query, candidates)?;
    for (index, candidate) in verification.candidates.iter().enumerate() {
        let marker = if index == verification.chosen {
            "->"
        } else {
            "  "
        };
        println!(
            "{marker} {:.4}  score {:>8.1}",
            candidate.location,
            candidate.score.unwrap_or(f32::NAN)
        );
    }
    Ok(())
}

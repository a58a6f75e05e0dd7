//! No verification at all: the pool's first candidate wins.

use g3_core::{Candidate, Result, VerificationQuery, Verifier};

/// Scores the first candidate 1 and the rest 0, so the pipeline keeps the pool's first
/// entry: Img2Loc's setting, where the LMM answers once and its answer is the prediction
/// (with one generated candidate ahead of any retrieved ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FirstCandidateVerifier;

impl Verifier for FirstCandidateVerifier {
    fn score(&self, _query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        Ok((0..candidates.len())
            .map(|index| if index == 0 { 1.0 } else { 0.0 })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use g3_core::{CandidateSource, GeoPoint, ImageInput};

    use super::*;

    #[test]
    fn the_first_candidate_wins_whatever_follows() {
        let image = ImageInput::from_bytes("q", vec![0u8]);
        let query = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &[],
        };
        let pool: Vec<Candidate> = (0..3)
            .map(|i| {
                Candidate::new(
                    GeoPoint::new(10.0 * i as f64, 0.0).unwrap(),
                    CandidateSource::Custom {
                        stage: format!("test {i}"),
                    },
                )
            })
            .collect();
        let verification = FirstCandidateVerifier.verify(&query, pool).unwrap();
        assert_eq!(verification.chosen, 0);
        assert_eq!(verification.candidates[1].score, Some(0.0));
    }
}

//! The "w/o Geo-V" ablation: a random pick among the candidates.

use g3_core::{Candidate, Result, VerificationQuery, Verifier};

/// Scores candidates with random numbers, reproducibly: the generator is seeded from the
/// verifier's seed and the query image's id, so a rerun (or a resumed run) picks the same
/// candidates, and queries do not depend on the order they are processed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RandomVerifier {
    /// The run's seed.
    pub seed: u64,
}

impl RandomVerifier {
    /// A verifier drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        RandomVerifier { seed }
    }
}

impl Verifier for RandomVerifier {
    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(query.image.id().as_bytes());
        let digest = hasher.finalize();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest.as_bytes()[..8]);
        let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(seed));
        Ok(candidates.iter().map(|_| rng.f32()).collect())
    }
}

#[cfg(test)]
mod tests {
    use g3_core::{CandidateSource, GeoPoint, ImageInput};

    use super::*;

    fn pool(count: usize) -> Vec<Candidate> {
        (0..count)
            .map(|index| {
                Candidate::new(
                    GeoPoint::new(index as f64, 0.0).unwrap(),
                    CandidateSource::Gallery { index },
                )
            })
            .collect()
    }

    fn chosen(verifier: RandomVerifier, image: &str) -> usize {
        let image = ImageInput::from_bytes(image, vec![0u8; 1]);
        let query = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &[],
        };
        verifier.verify(&query, pool(20)).unwrap().chosen
    }

    #[test]
    fn picks_are_reproducible_and_spread_over_the_pool() {
        let verifier = RandomVerifier::new(3);
        assert_eq!(chosen(verifier, "a.jpg"), chosen(verifier, "a.jpg"));
        let picks: std::collections::BTreeSet<usize> = (0..200)
            .map(|index| chosen(verifier, &format!("{index}.jpg")))
            .collect();
        assert!(picks.len() >= 15, "{picks:?}");
        let other_seed: Vec<usize> = (0..50)
            .map(|index| chosen(RandomVerifier::new(4), &format!("{index}.jpg")))
            .collect();
        let this_seed: Vec<usize> = (0..50)
            .map(|index| chosen(verifier, &format!("{index}.jpg")))
            .collect();
        assert_ne!(other_seed, this_seed);
    }
}

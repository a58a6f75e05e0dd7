//! Baselines that score candidates against the retrieved neighbours' locations.

use g3_core::{Candidate, Result, VerificationQuery, Verifier};
use serde::{Deserialize, Serialize};

use crate::error::VerifyError;

/// Prefers the candidate closest to the most similar database image: score = minus the
/// geodesic distance in km. With the retrieved top-1 in the pool, it is the "retrieval top-1"
/// prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearestNeighborVerifier;

impl Verifier for NearestNeighborVerifier {
    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        let top = query.similar.first().ok_or(VerifyError::NoNeighbors)?;
        Ok(candidates
            .iter()
            .map(|candidate| -(candidate.location.geodesic_distance_km(top.location) as f32))
            .collect())
    }
}

/// The [L]kNN baseline as a verifier: the Gaussian kernel density of the `neighbors` most
/// similar database images' locations at each candidate,
/// `Σᵢ wᵢ · exp(-dᵢ² / (2 · bandwidth²))` with `dᵢ` the geodesic distance in km and `wᵢ` the
/// neighbour's similarity (clamped at 0) or 1. With the neighbours' own locations as
/// candidates it picks the densest cluster of retrieved photos.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelDensityVerifier {
    /// How many of the most similar neighbours vote.
    pub neighbors: usize,
    /// The kernel's standard deviation, in km.
    pub bandwidth_km: f64,
    /// Weight each vote by the neighbour's similarity instead of 1.
    pub weight_by_similarity: bool,
}

impl Default for KernelDensityVerifier {
    fn default() -> Self {
        KernelDensityVerifier {
            neighbors: 16,
            bandwidth_km: 25.0,
            weight_by_similarity: true,
        }
    }
}

impl Verifier for KernelDensityVerifier {
    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        if self.neighbors == 0 || !(self.bandwidth_km.is_finite() && self.bandwidth_km > 0.0) {
            return Err(VerifyError::InvalidSetting(format!(
                "kernel density needs neighbors >= 1 and a positive bandwidth (got {} and {} km)",
                self.neighbors, self.bandwidth_km
            ))
            .into());
        }
        if query.similar.is_empty() {
            return Err(VerifyError::NoNeighbors.into());
        }
        let voters = &query.similar[..self.neighbors.min(query.similar.len())];
        let two_h2 = 2.0 * self.bandwidth_km * self.bandwidth_km;
        Ok(candidates
            .iter()
            .map(|candidate| {
                voters
                    .iter()
                    .map(|neighbour| {
                        let distance = candidate.location.geodesic_distance_km(neighbour.location);
                        let weight = if self.weight_by_similarity {
                            f64::from(neighbour.similarity.max(0.0))
                        } else {
                            1.0
                        };
                        weight * (-distance * distance / two_h2).exp()
                    })
                    .sum::<f64>() as f32
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use g3_core::{CandidateSource, GeoPoint, ImageInput, RetrievedNeighbor};

    use super::*;

    /// The error and its causes, as one line.
    fn chain(error: &g3_core::Error) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    fn neighbour(rank: usize, similarity: f32, lat: f64, lon: f64) -> RetrievedNeighbor {
        RetrievedNeighbor {
            key: rank as u64,
            rank,
            similarity,
            location: GeoPoint::new(lat, lon).unwrap(),
        }
    }

    fn pool(points: &[(f64, f64)]) -> Vec<Candidate> {
        points
            .iter()
            .enumerate()
            .map(|(index, &(lat, lon))| {
                Candidate::new(
                    GeoPoint::new(lat, lon).unwrap(),
                    CandidateSource::Gallery { index },
                )
            })
            .collect()
    }

    #[test]
    fn nearest_neighbour_prefers_the_candidate_closest_to_the_top_match() {
        let image = ImageInput::from_bytes("q.jpg", vec![0u8; 1]);
        // Rome first, then Paris twice: the top match decides, not the majority.
        let similar = [
            neighbour(0, 0.9, 41.9, 12.5),
            neighbour(1, 0.8, 48.85, 2.35),
            neighbour(2, 0.8, 48.86, 2.34),
        ];
        let query = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &similar,
        };
        let candidates = pool(&[(48.85, 2.35), (41.89, 12.49)]);
        let chosen = NearestNeighborVerifier
            .verify(&query, candidates.clone())
            .unwrap();
        assert_eq!(chosen.chosen, 1);
        // Density over the neighbours prefers Paris, where two of the three lie.
        let density = KernelDensityVerifier::default();
        assert_eq!(density.verify(&query, candidates).unwrap().chosen, 0);
    }

    #[test]
    fn similarity_weights_can_outvote_numbers() {
        let image = ImageInput::from_bytes("q.jpg", vec![0u8; 1]);
        let similar = [
            neighbour(0, 0.95, 41.9, 12.5),
            neighbour(1, 0.2, 48.85, 2.35),
            neighbour(2, 0.2, 48.86, 2.34),
        ];
        let query = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &similar,
        };
        let candidates = pool(&[(48.85, 2.35), (41.89, 12.49)]);
        let weighted = KernelDensityVerifier::default();
        assert_eq!(
            weighted.verify(&query, candidates.clone()).unwrap().chosen,
            1
        );
        let counted = KernelDensityVerifier {
            weight_by_similarity: false,
            ..KernelDensityVerifier::default()
        };
        assert_eq!(counted.verify(&query, candidates).unwrap().chosen, 0);
    }

    #[test]
    fn no_neighbours_or_bad_settings_are_errors() {
        let image = ImageInput::from_bytes("q.jpg", vec![0u8; 1]);
        let query = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &[],
        };
        let candidates = pool(&[(1.0, 1.0)]);
        let error = NearestNeighborVerifier
            .score(&query, &candidates)
            .unwrap_err();
        assert!(chain(&error).contains("no retrieved neighbours"), "{error}");
        let bad = KernelDensityVerifier {
            bandwidth_km: 0.0,
            ..KernelDensityVerifier::default()
        };
        let error = bad.score(&query, &candidates).unwrap_err();
        assert!(chain(&error).contains("positive bandwidth"), "{error}");
    }
}

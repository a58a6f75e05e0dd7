//! GeoCLIP-style prediction: score every point of a fixed GPS gallery against the image.

use g3_core::{Candidate, CandidateSource, GeoPoint, GpsEmbedder, Result};

use crate::error::VerifyError;

/// A GPS gallery with its embeddings computed once (GeoCLIP's 100K MP16 coordinates in the
/// `geoclip` package, or any list of places): rows are L2-normalised, so scoring an image is
/// one matrix–vector product instead of a GPS-encoder pass per query.
#[derive(Debug, Clone)]
pub struct GpsGallery {
    points: Vec<GeoPoint>,
    dimension: usize,
    /// Row-major `[points, dimension]`, each row of unit length.
    embeddings: Vec<f32>,
}

impl GpsGallery {
    /// Embeds `points` with `gps` (in batches of 4,096) and normalises the rows.
    pub fn embed(points: Vec<GeoPoint>, gps: &dyn GpsEmbedder) -> Result<Self> {
        let dimension = gps.dimension();
        let mut embeddings = Vec::with_capacity(points.len() * dimension);
        for batch in points.chunks(4096) {
            let rows = gps.embed_locations(batch)?;
            if rows.dimension() != dimension {
                return Err(VerifyError::Width {
                    what: "the GPS embedder's output",
                    expected: dimension,
                    found: rows.dimension(),
                }
                .into());
            }
            let start = embeddings.len();
            embeddings.extend_from_slice(rows.as_slice());
            g3_core::l2_normalize_rows(&mut embeddings[start..], dimension);
        }
        Ok(GpsGallery {
            points,
            dimension,
            embeddings,
        })
    }

    /// Number of gallery points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the gallery is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Width of the gallery's embeddings (and of the image embeddings it scores).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The gallery's points, in row order.
    pub fn points(&self) -> &[GeoPoint] {
        &self.points
    }

    /// The L2-normalised embeddings, row-major `[len, dimension]` (for caching on disk).
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    /// A gallery from embeddings computed earlier (by [`GpsGallery::embed`], read back from a
    /// cache); rows are normalised again, so any scale is accepted.
    pub fn from_embeddings(
        points: Vec<GeoPoint>,
        dimension: usize,
        embeddings: Vec<f32>,
    ) -> Result<Self> {
        if dimension == 0 || embeddings.len() != points.len() * dimension {
            return Err(VerifyError::Width {
                what: "the cached gallery embeddings",
                expected: points.len() * dimension,
                found: embeddings.len(),
            }
            .into());
        }
        let mut embeddings = embeddings;
        g3_core::l2_normalize_rows(&mut embeddings, dimension);
        Ok(GpsGallery {
            points,
            dimension,
            embeddings,
        })
    }

    /// The `k` gallery points most similar to `image` (an image embedding in the gallery's
    /// space, such as GeoCLIP's), best first, as candidates carrying their cosine score.
    pub fn top_k(&self, image: &[f32], k: usize) -> Result<Vec<Candidate>> {
        if image.len() != self.dimension {
            return Err(VerifyError::Width {
                what: "the image embedding",
                expected: self.dimension,
                found: image.len(),
            }
            .into());
        }
        let norm = image.iter().map(|v| v * v).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let mut scored: Vec<(usize, f32)> = self
            .embeddings
            .chunks_exact(self.dimension)
            .enumerate()
            .map(|(index, row)| {
                let dot: f32 = row.iter().zip(image).map(|(a, b)| a * b).sum();
                (index, dot * scale)
            })
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        // Partial selection, then a sort of the k best only; NaN sorts last.
        let by_score = |a: &(usize, f32), b: &(usize, f32)| {
            b.1.partial_cmp(&a.1)
                .unwrap_or_else(|| a.1.is_nan().cmp(&b.1.is_nan()))
                .then(a.0.cmp(&b.0))
        };
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, by_score);
            scored.truncate(k);
        }
        scored.sort_by(by_score);
        Ok(scored
            .into_iter()
            .map(|(index, score)| Candidate {
                location: self.points[index],
                source: CandidateSource::Gallery { index },
                score: Some(score),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use g3_core::Embeddings;

    use super::*;

    /// Longitude as an angle on a circle: nearby longitudes have similar embeddings.
    struct CircleEmbedder;

    impl GpsEmbedder for CircleEmbedder {
        fn dimension(&self) -> usize {
            2
        }
        fn embed_locations(&self, locations: &[GeoPoint]) -> Result<Embeddings> {
            Embeddings::new(
                2,
                locations
                    .iter()
                    .flat_map(|p| {
                        let angle = p.lon_deg().to_radians();
                        [3.0 * angle.cos() as f32, 3.0 * angle.sin() as f32]
                    })
                    .collect(),
            )
        }
    }

    #[test]
    fn the_best_gallery_points_come_first_with_their_scores() {
        let points: Vec<GeoPoint> = (0..36)
            .map(|i| GeoPoint::new(0.0, -180.0 + 10.0 * i as f64).unwrap())
            .collect();
        let gallery = GpsGallery::embed(points, &CircleEmbedder).unwrap();
        assert_eq!(gallery.len(), 36);
        let angle = 42f64.to_radians();
        let image = [angle.cos() as f32 * 5.0, angle.sin() as f32 * 5.0];
        let top = gallery.top_k(&image, 3).unwrap();
        let longitudes: Vec<f64> = top.iter().map(|c| c.location.lon_deg()).collect();
        assert_eq!(longitudes, [40.0, 50.0, 30.0]);
        assert!(top[0].score.unwrap() > top[1].score.unwrap());
        assert!(matches!(
            top[0].source,
            CandidateSource::Gallery { index: 22 }
        ));
        assert_eq!(gallery.top_k(&image, 100).unwrap().len(), 36);
        assert!(gallery.top_k(&[1.0, 0.0, 0.0], 1).is_err());
    }
}

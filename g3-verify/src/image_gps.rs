//! G3's Geo-verification: the candidate whose GPS embedding best matches the photo.

use std::collections::HashMap;

use g3_core::{
    Candidate, Embeddings, GeoPoint, GpsEmbedder, ImageEmbedder, Result, StageKind, Verification,
    VerificationQuery, Verifier, cosine_similarity,
};

use crate::error::VerifyError;

/// Where the query's image–GPS embedding comes from.
pub enum QueryEmbedding {
    /// The last `gps.dimension()` values of the query's retrieval embedding: G3's database
    /// vector is `[clip, image_text, image_gps]`, so the pipeline's retrieval already computed
    /// it and the image encoder need not run again.
    RetrievalTail,
    /// An image embedder computing the image–GPS embedding itself (for pipelines whose
    /// retrieval embedding is something else, such as plain CLIP).
    Encoder(Box<dyn ImageEmbedder>),
}

impl std::fmt::Debug for QueryEmbedding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryEmbedding::RetrievalTail => formatter.write_str("RetrievalTail"),
            QueryEmbedding::Encoder(encoder) => formatter
                .debug_struct("Encoder")
                .field("dimension", &encoder.dimension())
                .finish(),
        }
    }
}

/// Scores each candidate by `cosine(image_gps(query), gps(candidate))`: G3's
/// Geo-verification, with `vision_projection_else_2` on the image side and
/// `location_projection_else` on the GPS side (the heads of G3's `utils/G3.py`). Any
/// [`GpsEmbedder`] works, so GeoCLIP's encoder with GeoCLIP's image embedding gives the
/// GeoCLIP-style score.
#[derive(Debug)]
pub struct ImageGpsVerifier<G> {
    gps: G,
    query: QueryEmbedding,
}

impl<G: GpsEmbedder> ImageGpsVerifier<G> {
    /// A verifier embedding candidates with `gps` and reading the query's embedding from
    /// `query`.
    pub fn new(gps: G, query: QueryEmbedding) -> Self {
        ImageGpsVerifier { gps, query }
    }

    /// G3's setting: the query's image–GPS embedding is the tail of its database vector.
    pub fn g3(gps: G) -> Self {
        ImageGpsVerifier::new(gps, QueryEmbedding::RetrievalTail)
    }

    fn query_embedding(&self, query: &VerificationQuery<'_>) -> Result<Vec<f32>> {
        let width = self.gps.dimension();
        match &self.query {
            QueryEmbedding::RetrievalTail => {
                let embedding = query.embedding.ok_or(VerifyError::NoQueryEmbedding)?;
                if embedding.len() < width {
                    return Err(VerifyError::Width {
                        what: "the query's retrieval embedding",
                        expected: width,
                        found: embedding.len(),
                    }
                    .into());
                }
                Ok(embedding[embedding.len() - width..].to_vec())
            }
            QueryEmbedding::Encoder(encoder) => {
                let embeddings = encoder.embed_images(std::slice::from_ref(query.image))?;
                if embeddings.dimension() != width {
                    return Err(VerifyError::Width {
                        what: "the image embedder's output",
                        expected: width,
                        found: embeddings.dimension(),
                    }
                    .into());
                }
                Ok(embeddings.row(0).to_vec())
            }
        }
    }
}

impl<G: GpsEmbedder> Verifier for ImageGpsVerifier<G> {
    /// Every pool's candidates go through the GPS encoder in one batch: at a pool of 21 the
    /// encoder's cost is streaming its 42 MB of weights, which a batch pays once.
    fn verify_batch(
        &self,
        queries: &[VerificationQuery<'_>],
        pools: Vec<Vec<Candidate>>,
    ) -> Result<Vec<Verification>> {
        if queries.len() != pools.len() || pools.iter().any(Vec::is_empty) {
            // The one-by-one path reports these with the right error.
            return queries
                .iter()
                .zip(pools)
                .map(|(query, pool)| self.verify(query, pool))
                .collect();
        }
        let images = queries
            .iter()
            .map(|query| self.query_embedding(query))
            .collect::<Result<Vec<_>>>()?;
        let locations: Vec<_> = pools
            .iter()
            .flatten()
            .map(|candidate| candidate.location)
            .collect();
        let (embeddings, rows) = self.embed_distinct(&locations)?;
        let mut next = 0;
        pools
            .into_iter()
            .zip(&images)
            .map(|(pool, image)| {
                let scores = rows[next..next + pool.len()]
                    .iter()
                    .map(|&row| cosine_similarity(image, embeddings.row(row)))
                    .collect::<Result<Vec<f32>>>()?;
                next += pool.len();
                Verification::from_scores(pool, scores)
            })
            .collect()
    }

    fn score(&self, query: &VerificationQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let image = self.query_embedding(query)?;
        let locations: Vec<_> = candidates
            .iter()
            .map(|candidate| candidate.location)
            .collect();
        let (embeddings, rows) = self.embed_distinct(&locations)?;
        rows.iter()
            .map(|&row| cosine_similarity(&image, embeddings.row(row)))
            .collect()
    }
}

impl<G: GpsEmbedder> ImageGpsVerifier<G> {
    /// Embeds each distinct location once (LMM samples often repeat a place, and the
    /// encoder is the verifier's whole cost); returns the embeddings and, per input
    /// location, its row among them.
    fn embed_distinct(&self, locations: &[GeoPoint]) -> Result<(Embeddings, Vec<usize>)> {
        let mut distinct = Vec::new();
        let mut row_of = HashMap::new();
        let rows: Vec<usize> = locations
            .iter()
            .map(|location| {
                let key = (location.lat_deg().to_bits(), location.lon_deg().to_bits());
                *row_of.entry(key).or_insert_with(|| {
                    distinct.push(*location);
                    distinct.len() - 1
                })
            })
            .collect();
        let embeddings = self.gps.embed_locations(&distinct)?;
        embeddings.expect_rows(distinct.len(), StageKind::GpsEmbedder)?;
        Ok((embeddings, rows))
    }
}

#[cfg(test)]
mod tests {
    use g3_core::{CandidateSource, Embeddings, GeoPoint, ImageInput, RetrievedNeighbor};

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

    /// Embeds a point as its unit vector on the sphere: cosine then decreases with distance.
    struct SphereEmbedder;

    impl GpsEmbedder for SphereEmbedder {
        fn dimension(&self) -> usize {
            3
        }

        fn embed_locations(&self, locations: &[GeoPoint]) -> Result<Embeddings> {
            let values = locations
                .iter()
                .flat_map(|point| {
                    let (lat, lon) = (point.lat_deg().to_radians(), point.lon_deg().to_radians());
                    [
                        (lat.cos() * lon.cos()) as f32,
                        (lat.cos() * lon.sin()) as f32,
                        lat.sin() as f32,
                    ]
                })
                .collect();
            Embeddings::new(3, values)
        }
    }

    fn candidates(points: &[(f64, f64)]) -> Vec<Candidate> {
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

    fn embedding_of(lat: f64, lon: f64) -> Vec<f32> {
        let row = SphereEmbedder
            .embed_locations(&[GeoPoint::new(lat, lon).unwrap()])
            .unwrap();
        row.row(0).to_vec()
    }

    #[test]
    fn the_candidate_most_similar_to_the_image_wins() {
        let image = ImageInput::from_bytes("query.jpg", vec![0u8; 4]);
        // A database vector [clip (2 values), image_gps (3 values)]: Paris in the tail.
        let mut database = vec![9.0, 9.0];
        database.extend(embedding_of(48.85, 2.35));
        let query = VerificationQuery {
            image: &image,
            embedding: Some(&database),
            similar: &[],
        };
        let pool = candidates(&[(40.71, -74.0), (48.0, 2.0), (35.68, 139.69)]);
        let verifier = ImageGpsVerifier::g3(SphereEmbedder);
        let verification = verifier.verify(&query, pool).unwrap();
        assert_eq!(verification.chosen, 1);
        let scores: Vec<f32> = verification
            .candidates
            .iter()
            .map(|candidate| candidate.score.unwrap())
            .collect();
        assert!(scores[1] > 0.99 && scores[0] < scores[1] && scores[2] < scores[1]);
    }

    #[test]
    fn repeated_locations_are_embedded_once_and_scored_alike() {
        struct Counting(std::sync::Mutex<usize>);
        impl GpsEmbedder for Counting {
            fn dimension(&self) -> usize {
                3
            }
            fn embed_locations(&self, locations: &[GeoPoint]) -> Result<Embeddings> {
                *self.0.lock().unwrap() += locations.len();
                SphereEmbedder.embed_locations(locations)
            }
        }
        let image = ImageInput::from_bytes("query.jpg", vec![0u8; 4]);
        let tail = embedding_of(48.85, 2.35);
        let query = VerificationQuery {
            image: &image,
            embedding: Some(&tail),
            similar: &[],
        };
        let verifier = ImageGpsVerifier::g3(Counting(std::sync::Mutex::new(0)));
        let pool = candidates(&[(40.71, -74.0), (48.0, 2.0), (40.71, -74.0), (48.0, 2.0)]);
        let scores = verifier.score(&query, &pool).unwrap();
        assert_eq!(*verifier.gps.0.lock().unwrap(), 2);
        assert_eq!((scores[0], scores[1]), (scores[2], scores[3]));
    }

    #[test]
    fn a_batch_verifies_like_one_query_at_a_time() {
        let image = ImageInput::from_bytes("query.jpg", vec![0u8; 4]);
        let tails = [embedding_of(48.85, 2.35), embedding_of(-33.9, 151.2)];
        let queries: Vec<VerificationQuery<'_>> = tails
            .iter()
            .map(|tail| VerificationQuery {
                image: &image,
                embedding: Some(tail),
                similar: &[],
            })
            .collect();
        let pools = vec![
            candidates(&[(40.71, -74.0), (48.0, 2.0), (35.68, 139.69)]),
            candidates(&[(-34.0, 151.0), (51.5, 0.0)]),
        ];
        let verifier = ImageGpsVerifier::g3(SphereEmbedder);
        let batched = verifier.verify_batch(&queries, pools.clone()).unwrap();
        let one_by_one: Vec<_> = queries
            .iter()
            .zip(pools.clone())
            .map(|(query, pool)| verifier.verify(query, pool).unwrap())
            .collect();
        assert_eq!(batched, one_by_one);
        assert_eq!((batched[0].chosen, batched[1].chosen), (1, 0));
        // An empty pool is still the trait's error.
        let error = verifier
            .verify_batch(&queries, vec![pools[0].clone(), Vec::new()])
            .unwrap_err();
        assert!(matches!(error, g3_core::Error::NoCandidates), "{error}");
    }

    #[test]
    fn a_missing_or_short_query_embedding_is_an_error() {
        let image = ImageInput::from_bytes("query.jpg", vec![0u8; 4]);
        let neighbours: [RetrievedNeighbor; 0] = [];
        let verifier = ImageGpsVerifier::g3(SphereEmbedder);
        let pool = candidates(&[(1.0, 2.0)]);
        let no_embedding = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &neighbours,
        };
        let error = verifier.score(&no_embedding, &pool).unwrap_err();
        assert!(chain(&error).contains("no retrieval embedding"), "{error}");
        let short = [1.0f32, 0.0];
        let short_embedding = VerificationQuery {
            embedding: Some(&short),
            ..no_embedding
        };
        let error = verifier.score(&short_embedding, &pool).unwrap_err();
        assert!(chain(&error).contains("2 values where 3"), "{error}");
    }

    #[test]
    fn an_image_encoder_can_supply_the_query_embedding() {
        struct FixedImage(Vec<f32>);
        impl ImageEmbedder for FixedImage {
            fn dimension(&self) -> usize {
                self.0.len()
            }
            fn embed_images(&self, images: &[ImageInput]) -> Result<Embeddings> {
                Embeddings::new(
                    self.0.len(),
                    images.iter().flat_map(|_| self.0.clone()).collect(),
                )
            }
        }
        let image = ImageInput::from_bytes("query.jpg", vec![0u8; 4]);
        let query = VerificationQuery {
            image: &image,
            embedding: None,
            similar: &[],
        };
        let verifier = ImageGpsVerifier::new(
            SphereEmbedder,
            QueryEmbedding::Encoder(Box::new(FixedImage(embedding_of(35.68, 139.69)))),
        );
        let pool = candidates(&[(40.71, -74.0), (48.0, 2.0), (35.0, 139.0)]);
        assert_eq!(verifier.verify(&query, pool).unwrap().chosen, 2);
    }
}

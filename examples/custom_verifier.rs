//! Plugging a user-defined Geo-verification stage into g3: implement `Verifier::score`, and
//! the trait's `verify` chooses the best candidate. Here the score prefers candidates close
//! to the most similar retrieved image, a simple retrieval-anchored rule to compare with
//! G3's image-GPS similarity.
//!
//! ```sh
//! cargo run --example custom_verifier
//! # and in the full G3 pipeline, replacing its image-GPS verifier:
//! cargo run --release --example custom_verifier -- --db mp16-g3.db photo.jpg
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

fn main() -> std::process::ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match arguments.as_slice() {
        [] => on_one_pool(),
        [flag, database, photos @ ..] if flag == "--db" && !photos.is_empty() => {
            in_the_pipeline(database, photos)
        }
        _ => Err("usage: custom_verifier [--db DATABASE PHOTO...]".into()),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The G3 preset with its verifier swapped for ours: every other stage as configured.
fn in_the_pipeline(
    database: &str,
    photos: &[String],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut config = g3::Preset::G3.config();
    config.database = Some(database.into());
    let pipeline = config
        .builder(&mut |step| eprintln!("{step}"))?
        .verifier(NearestToTopNeighbour {
            metric: DistanceMetric::Geodesic,
        })
        .build()?;
    let photos: Vec<ImageInput> = photos
        .iter()
        .map(ImageInput::from_path)
        .collect::<std::io::Result<_>>()?;
    for prediction in pipeline.locate(&photos)? {
        println!(
            "{}: {:.5}, {:.5} (chosen among {} candidates)",
            prediction.image_id,
            prediction.location.lat_deg(),
            prediction.location.lon_deg(),
            prediction.candidates.len()
        );
    }
    Ok(())
}

/// The verifier on one hand-made pool: what earlier stages would have produced for one photo.
fn on_one_pool() -> std::result::Result<(), Box<dyn std::error::Error>> {
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

//! The verifiers with the real GPS encoder: G3's tiny fixture checkpoint
//! (`g3-align/tests/fixtures/gps_encoder/tiny_g3.pth`, from `tools/goldens/gps_encoder.py`).

use std::path::Path;

use g3_align::GpsEncoder;
use g3_core::{
    Candidate, CandidateSource, GeoPoint, GpsEmbedder, ImageInput, RetrievedNeighbor,
    VerificationQuery, Verifier,
};
use g3_verify::{ImageGpsVerifier, KernelDensityVerifier, RandomVerifier};

fn encoder() -> GpsEncoder {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../g3-align/tests/fixtures/gps_encoder/tiny_g3.pth");
    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    let device = g3_align::Device::ndarray();
    GpsEncoder::load_g3(&path, &device).unwrap()
}

fn pool() -> Vec<Candidate> {
    [
        (48.85, 2.35),
        (40.71, -74.0),
        (35.68, 139.69),
        (-33.87, 151.21),
    ]
    .iter()
    .enumerate()
    .map(|(prompt_index, &(lat, lon))| {
        Candidate::new(
            GeoPoint::new(lat, lon).unwrap(),
            CandidateSource::Generated {
                prompt_index,
                sample_index: 0,
            },
        )
    })
    .collect()
}

#[test]
fn g3_verification_picks_the_candidate_whose_gps_embedding_matches_the_image() {
    let gps: Box<dyn GpsEmbedder> = Box::new(encoder());
    let candidates = pool();
    // A query whose image-GPS embedding is Tokyo's GPS embedding, behind 5 other values.
    let tokyo = gps.embed_locations(&[candidates[2].location]).unwrap();
    let mut database = vec![0.1; 5];
    database.extend_from_slice(tokyo.row(0));
    let image = ImageInput::from_bytes("query.jpg", vec![0u8; 1]);
    let query = VerificationQuery {
        image: &image,
        embedding: Some(&database),
        similar: &[],
    };
    let verification = ImageGpsVerifier::g3(gps)
        .verify(&query, candidates)
        .unwrap();
    assert_eq!(verification.chosen, 2);
    let best = verification.candidates[2].score.unwrap();
    assert!((best - 1.0).abs() < 1e-5, "{best}");
    assert!(
        verification
            .candidates
            .iter()
            .all(|candidate| candidate.score.unwrap() <= best)
    );
}

#[test]
fn every_verifier_fills_every_score_and_keeps_the_pool_order() {
    let image = ImageInput::from_bytes("query.jpg", vec![0u8; 1]);
    let similar = [RetrievedNeighbor {
        key: 7,
        rank: 0,
        similarity: 0.9,
        location: GeoPoint::new(-33.9, 151.2).unwrap(),
    }];
    let query = VerificationQuery {
        image: &image,
        embedding: None,
        similar: &similar,
    };
    let verifiers: Vec<Box<dyn Verifier>> = vec![
        Box::new(RandomVerifier::new(1)),
        Box::new(KernelDensityVerifier::default()),
    ];
    for verifier in verifiers {
        let verification = verifier.verify(&query, pool()).unwrap();
        assert_eq!(verification.candidates.len(), 4);
        assert!(verification.candidates.iter().all(|c| c.score.is_some()));
        let locations: Vec<GeoPoint> = verification.candidates.iter().map(|c| c.location).collect();
        let expected: Vec<GeoPoint> = pool().iter().map(|c| c.location).collect();
        assert_eq!(locations, expected);
    }
    // Density around the single neighbour in Sydney picks Sydney.
    let density = KernelDensityVerifier::default()
        .verify(&query, pool())
        .unwrap();
    assert_eq!(density.chosen, 3);
}

/// GeoCLIP's own prediction over its real gallery and encoder (fetched by
/// `scripts/fetch-assets.sh`; missing assets fail the test): an image embedding equal to a
/// gallery point's GPS embedding finds that point first.
#[test]
fn the_geoclip_gallery_finds_the_matching_place() {
    use g3_align::GpsEncoderConfig;
    use g3_core::assets::Asset;
    use g3_verify::GpsGallery;

    let csv = Asset::GEOCLIP_GPS_GALLERY
        .require()
        .unwrap_or_else(|error| panic!("{error}"));
    let points: Vec<GeoPoint> = std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .take(400)
        .map(|line| {
            let (lat, lon) = line.split_once(',').unwrap();
            GeoPoint::new(lat.trim().parse().unwrap(), lon.trim().parse().unwrap()).unwrap()
        })
        .collect();
    let weights = Asset::GEOCLIP_LOCATION_ENCODER
        .require()
        .unwrap_or_else(|error| panic!("{error}"));
    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    let device = g3_align::Device::ndarray();
    let encoder = GpsEncoder::load(&weights, GpsEncoderConfig::geoclip(), &device).unwrap();
    let gallery = GpsGallery::embed(points.clone(), &encoder).unwrap();
    let target = points[234];
    let image = encoder.embed_locations(&[target]).unwrap();
    let top = gallery.top_k(image.row(0), 5).unwrap();
    assert_eq!(top.len(), 5);
    assert_eq!(top[0].location, target);
    assert!((top[0].score.unwrap() - 1.0).abs() < 1e-4);
    assert!(top.windows(2).all(|pair| pair[0].score >= pair[1].score));
}

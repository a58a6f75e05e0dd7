//! The whole pipeline, every preset, on tiny random-weight models (the CLIP/G3 fixtures of
//! g3-align), small databases built from the fixture photos, the loopback mock LMM, and
//! GeoCLIP's real location encoder and gallery (fetched by scripts/fetch-assets.sh; missing
//! assets fail these tests loudly).

mod support;

use g3::align::{ComputeDevice, GpsEncoder, ImageEmbeddingKind};
use g3::core::{GpsEmbedder, ImageEmbedder, cosine_similarity};
use g3::pipeline::{GeneratorConfig, PipelineConfig, Preset, QueryEmbeddingKind, VerifierConfig};
use g3::prompt::OpenAiConfig;
use g3::prompt::mock::{MockBehaviour, MockChatServer};
use g3::{CandidateSource, GeoPoint, Prediction};
use support::{
    DATABASE_IMAGES, QUERY_IMAGES, build_database, build_database_with_places, database_locations,
    fixture, g3_encoder, georanker_fixture_settings, images, write_small_gallery,
    write_tiny_geoclip_mlp,
};

struct Setup {
    directory: tempfile::TempDir,
    server: MockChatServer,
}

impl Setup {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        build_database(
            ImageEmbeddingKind::Database,
            &directory.path().join("g3.db"),
        );
        build_database(ImageEmbeddingKind::Clip, &directory.path().join("clip.db"));
        build_database_with_places(
            ImageEmbeddingKind::Database,
            &directory.path().join("places.db"),
        );
        write_tiny_geoclip_mlp(&directory.path().join("geoclip_mlp.safetensors"));
        write_small_gallery(&directory.path().join("gallery.csv"));
        let server = MockChatServer::start(MockBehaviour::default()).unwrap();
        Setup { directory, server }
    }

    /// `preset` pointed at the fixtures, the databases and the mock LMM.
    fn config(&self, preset: Preset) -> PipelineConfig {
        let path = |name: &str| self.directory.path().join(name);
        let mut config = preset.config();
        config.models.clip = fixture("model").to_string_lossy().into_owned();
        config.models.g3_checkpoint = fixture("g3.pth").to_string_lossy().into_owned();
        config.models.geoclip_image_mlp = Some(path("geoclip_mlp.safetensors"));
        config.models.geoclip_gallery = Some(path("gallery.csv"));
        config.models.gallery_cache_dir = Some(path("galleries"));
        config.database = Some(match config.query_embedding {
            QueryEmbeddingKind::G3Database => path("g3.db"),
            _ => path("clip.db"),
        });
        config.generation.generator =
            GeneratorConfig::OpenAi(OpenAiConfig::local(self.server.base_url(), "mock-lmm"));
        if let VerifierConfig::GeoRanker(settings) = &mut config.verifier {
            **settings = georanker_fixture_settings();
            config.pool.similar_neighbors = settings.ranker.similar_needed();
            config.database = Some(path("places.db"));
        }
        config
    }

    fn locate(&self, preset: Preset) -> Vec<Prediction> {
        let pipeline = self.config(preset).build(&mut |_| {}).unwrap();
        pipeline.locate(&images(&QUERY_IMAGES)).unwrap()
    }
}

#[test]
fn g3_verifies_generated_and_retrieved_candidates_by_image_gps_similarity() {
    let setup = Setup::new();
    let predictions = setup.locate(Preset::G3);
    assert_eq!(predictions.len(), QUERY_IMAGES.len());

    // The scores, recomputed from the encoders directly.
    let image_gps = g3_encoder(ImageEmbeddingKind::Gps)
        .embed_images(&images(&QUERY_IMAGES))
        .unwrap();
    let device = ComputeDevice::Cpu.to_device().unwrap();
    let gps = GpsEncoder::load_g3(&fixture("g3.pth"), &device).unwrap();
    for (query, prediction) in predictions.iter().enumerate() {
        assert_eq!(prediction.image_id, images(&QUERY_IMAGES)[query].id());
        // Four prompts x five samples from the mock LMM, then the retrieved top 1.
        let generated = prediction
            .candidates
            .iter()
            .filter(|c| matches!(c.source, CandidateSource::Generated { .. }))
            .count();
        assert_eq!(generated, 20, "{prediction:#?}");
        assert!(matches!(
            prediction.candidates.last().unwrap().source,
            CandidateSource::Retrieved { rank: 0, .. }
        ));
        let locations: Vec<GeoPoint> = prediction.candidates.iter().map(|c| c.location).collect();
        let embedded = gps.embed_locations(&locations).unwrap();
        let expected: Vec<f32> = (0..locations.len())
            .map(|row| cosine_similarity(image_gps.row(query), embedded.row(row)).unwrap())
            .collect();
        for (candidate, expected) in prediction.candidates.iter().zip(&expected) {
            let score = candidate.score.unwrap();
            assert!((score - expected).abs() < 1e-5, "{score} vs {expected}");
        }
        let best =
            expected.iter().enumerate().fold(
                0,
                |best, (index, score)| if *score > expected[best] { index } else { best },
            );
        assert_eq!(prediction.chosen, best);
        assert_eq!(prediction.location, locations[best]);
    }
    // The query that is also a database image retrieves itself first.
    let top = predictions[0].candidates.last().unwrap();
    assert_eq!(top.location, database_locations()[2]);
}

#[test]
fn the_pipeline_is_deterministic() {
    let setup = Setup::new();
    for preset in [Preset::G3, Preset::G3NoVerification] {
        let first = serde_json::to_string(&setup.locate(preset)).unwrap();
        let second = serde_json::to_string(&setup.locate(preset)).unwrap();
        assert_eq!(first, second, "{preset}");
    }
}

#[test]
fn every_preset_runs_end_to_end() {
    let setup = Setup::new();
    for preset in Preset::ALL {
        let predictions = setup.locate(preset);
        assert_eq!(predictions.len(), QUERY_IMAGES.len(), "{preset}");
        for prediction in &predictions {
            assert!(prediction.chosen < prediction.candidates.len(), "{preset}");
            assert_eq!(prediction.chosen_candidate().location, prediction.location);
            let sources = |kind: fn(&CandidateSource) -> bool| {
                prediction
                    .candidates
                    .iter()
                    .filter(|c| kind(&c.source))
                    .count()
            };
            let generated = sources(|s| matches!(s, CandidateSource::Generated { .. }));
            let retrieved = sources(|s| matches!(s, CandidateSource::Retrieved { .. }));
            let gallery = sources(|s| matches!(s, CandidateSource::Gallery { .. }));
            let expected = match preset {
                Preset::G3 | Preset::G3NoAlign | Preset::G3NoVerification => (20, 1, 0),
                Preset::G3NoDiversification => (5, 1, 0),
                Preset::Img2Loc => (1, 0, 0),
                Preset::GeoClip => (0, 0, 16),
                Preset::Knn => (0, 16.min(DATABASE_IMAGES.len()), 0),
                Preset::GeoRanker => (5, 10, 0),
            };
            assert_eq!((generated, retrieved, gallery), expected, "{preset}");
        }
        if preset == Preset::Img2Loc {
            // No verification: the single answer is the prediction.
            assert!(predictions.iter().all(|p| p.chosen == 0));
        }
    }
    // GeoCLIP's gallery was embedded once and cached.
    let cached: Vec<_> = std::fs::read_dir(setup.directory.path().join("galleries"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 1);
}

#[test]
fn the_geoclip_preset_picks_the_best_gallery_point() {
    let setup = Setup::new();
    for prediction in setup.locate(Preset::GeoClip) {
        let scores: Vec<f32> = prediction
            .candidates
            .iter()
            .map(|c| c.score.unwrap())
            .collect();
        assert!(scores.iter().all(|s| *s <= scores[prediction.chosen]));
        assert_eq!(
            prediction.chosen, 0,
            "the gallery's best point comes first and wins"
        );
    }
}

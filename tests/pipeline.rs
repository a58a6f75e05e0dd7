//! The whole pipeline, every preset, on tiny random-weight models (the CLIP/G3 fixtures of
//! g3-align), small databases built from the fixture photos, the loopback mock LMM, and
//! GeoCLIP's real location encoder and gallery (fetched by scripts/fetch-assets.sh; missing
//! assets fail these tests loudly).

use std::path::{Path, PathBuf};

use g3::align::pretrained::HfClipDirectory;
use g3::align::{ComputeDevice, G3Model, GpsEncoder, ImageEmbeddingKind, ImageEncoder, ImageModel};
use g3::core::assets::Asset;
use g3::core::{GpsEmbedder, ImageEmbedder, cosine_similarity};
use g3::index::{Database, EntryMetadata, Metric, StoreConfig};
use g3::pipeline::{GeneratorConfig, PipelineConfig, Preset, QueryEmbeddingKind};
use g3::prompt::OpenAiConfig;
use g3::prompt::mock::{MockBehaviour, MockChatServer};
use g3::{CandidateSource, GeoPoint, ImageInput, Prediction};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("g3-align/tests/fixtures/clip")
        .join(name)
}

const DATABASE_IMAGES: [&str; 10] = [
    "exact.png",
    "gray.png",
    "landscape.jpg",
    "lossless.webp",
    "narrow.png",
    "palette.gif",
    "palette.png",
    "portrait.png",
    "rgba.png",
    "upscale.jpg",
];
const QUERY_IMAGES: [&str; 3] = ["landscape.jpg", "rgb16.png", "cmyk.jpg"];

fn images(names: &[&str]) -> Vec<ImageInput> {
    names
        .iter()
        .map(|name| ImageInput::from_path(fixture("images").join(name)).unwrap())
        .collect()
}

/// Cities on four continents, one per database image.
fn database_locations() -> Vec<GeoPoint> {
    [
        (48.8566, 2.3522),
        (40.7128, -74.006),
        (35.6762, 139.6503),
        (-33.8688, 151.2093),
        (51.5074, -0.1278),
        (-22.9068, -43.1729),
        (55.7558, 37.6173),
        (1.3521, 103.8198),
        (30.0444, 31.2357),
        (34.0522, -118.2437),
    ]
    .into_iter()
    .map(|(lat, lon)| GeoPoint::new(lat, lon).unwrap())
    .collect()
}

fn g3_encoder(kind: ImageEmbeddingKind) -> ImageEncoder {
    let device = ComputeDevice::Cpu.to_device().unwrap();
    let clip = HfClipDirectory::open(&fixture("model")).unwrap();
    let model = G3Model::load(&fixture("g3.pth"), clip.config(), &device).unwrap();
    ImageEncoder::new(
        ImageModel::G3(model),
        kind,
        clip.image_processor().unwrap(),
        device,
        4,
    )
    .unwrap()
}

/// An exact database of the fixture photos' `kind` embeddings at known cities.
fn build_database(kind: ImageEmbeddingKind, path: &Path) {
    let vectors = g3_encoder(kind)
        .embed_images(&images(&DATABASE_IMAGES))
        .unwrap();
    let metadata = EntryMetadata::from_locations(&database_locations());
    Database::build(
        vectors,
        metadata,
        &StoreConfig::exact(Metric::InnerProduct),
        &|_| {},
    )
    .unwrap()
    .save(path)
    .unwrap();
}

/// A safetensors file of a GeoCLIP-shaped image MLP sized for the tiny CLIP: 24 → 32 → 512.
fn write_tiny_geoclip_mlp(path: &Path) {
    let mut rng = fastrand::Rng::with_seed(11);
    let tensors: Vec<(&str, Vec<usize>)> = vec![
        ("0.weight", vec![32, 24]),
        ("0.bias", vec![32]),
        ("2.weight", vec![512, 32]),
        ("2.bias", vec![512]),
    ];
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape) in &tensors {
        let count: usize = shape.iter().product();
        let start = data.len();
        for _ in 0..count {
            data.extend_from_slice(&(rng.f32() - 0.5).to_le_bytes());
        }
        header.insert(
            (*name).into(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

/// The first 300 points of GeoCLIP's gallery.
fn write_small_gallery(path: &Path) {
    let full = std::fs::read_to_string(Asset::GEOCLIP_GPS_GALLERY.require().unwrap()).unwrap();
    let lines: Vec<&str> = full.lines().take(301).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

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
                _ => unreachable!(),
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

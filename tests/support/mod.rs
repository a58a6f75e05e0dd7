//! Fixtures shared by the pipeline tests: tiny G3/CLIP models from g3-align's fixtures,
//! small databases of the fixture photos, a GeoCLIP-shaped MLP for the tiny CLIP, and a
//! slice of GeoCLIP's gallery.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use g3::align::pretrained::HfClipDirectory;
use g3::align::{ComputeDevice, G3Model, ImageEmbeddingKind, ImageEncoder, ImageModel};
use g3::core::ImageEmbedder;
use g3::core::assets::Asset;
use g3::index::{Database, EntryMetadata, Metric, StoreConfig};
use g3::{GeoPoint, ImageInput};

/// The workspace's root: this file is shared by the facade's tests and the CLI's.
pub fn workspace_root() -> PathBuf {
    let mut directory = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !directory.join("Cargo.lock").is_file() {
        assert!(
            directory.pop(),
            "no Cargo.lock above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    directory
}

pub fn fixture(name: &str) -> PathBuf {
    workspace_root()
        .join("g3-align/tests/fixtures/clip")
        .join(name)
}

pub const DATABASE_IMAGES: [&str; 10] = [
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
pub const QUERY_IMAGES: [&str; 3] = ["landscape.jpg", "rgb16.png", "cmyk.jpg"];

pub fn images(names: &[&str]) -> Vec<ImageInput> {
    names
        .iter()
        .map(|name| ImageInput::from_path(fixture("images").join(name)).unwrap())
        .collect()
}

/// Cities on four continents, one per database image.
pub fn database_locations() -> Vec<GeoPoint> {
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

pub fn g3_encoder(kind: ImageEmbeddingKind) -> ImageEncoder {
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
pub fn build_database(kind: ImageEmbeddingKind, path: &Path) {
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

/// The fixture photos of `names` in a tar archive, under `aa/bb/IMG_ID` names (as MP16-Pro's
/// archives nest them).
pub fn write_archive(path: &Path, names: &[&str]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for name in names {
        let bytes = std::fs::read(fixture("images").join(name)).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("aa/bb/{name}"), &bytes[..])
            .unwrap();
    }
    builder.finish().unwrap();
}

/// Place names of the database images, for GeoRanker's prompts: (city, state, country).
pub const DATABASE_PLACES: [(&str, &str, &str); 10] = [
    ("Paris", "Ile-de-France", "France"),
    ("New York", "New York", "United States"),
    ("Tokyo", "Tokyo", "Japan"),
    ("Sydney", "New South Wales", "Australia"),
    ("London", "England", "United Kingdom"),
    ("Rio de Janeiro", "", "Brazil"),
    ("Moscow", "", "Russia"),
    ("Singapore", "", "Singapore"),
    ("Cairo", "Cairo", "Egypt"),
    ("", "California", "United States"),
];

/// The database of [`build_database`] with MP16-Pro's metadata columns: `IMG_ID` (the photo's
/// file name), `city`, `state` and `country`.
pub fn build_database_with_places(kind: ImageEmbeddingKind, path: &Path) {
    let vectors = g3_encoder(kind)
        .embed_images(&images(&DATABASE_IMAGES))
        .unwrap();
    let columns = ["IMG_ID", "city", "state", "country"].map(String::from);
    let mut metadata = g3::index::EntryMetadataBuilder::new(columns.to_vec());
    for (row, location) in database_locations().into_iter().enumerate() {
        let (city, state, country) = DATABASE_PLACES[row];
        metadata
            .push(
                row as u64,
                location,
                &[DATABASE_IMAGES[row], city, state, country],
            )
            .unwrap();
    }
    Database::build(
        vectors,
        metadata.build().unwrap(),
        &StoreConfig::exact(Metric::InnerProduct),
        &|_| {},
    )
    .unwrap()
    .save(path)
    .unwrap();
}

/// The tiny random Qwen2-VL model and GeoRanker-shaped adapter of g3-qwen2-vl's goldens.
pub fn tiny_georanker(name: &str) -> PathBuf {
    workspace_root()
        .join("g3-qwen2-vl/tests/fixtures/tiny")
        .join(name)
}

/// GeoRanker's settings for the fixtures: the tiny model, the fixture photos (small, to
/// keep prompts short), negatives from ranks 5 to 9 of the 10-image database.
pub fn georanker_fixture_settings() -> g3::pipeline::GeoRankerSettings {
    let mut settings = g3::pipeline::GeoRankerSettings {
        model: tiny_georanker("model").to_string_lossy().into_owned(),
        adapter: Some(tiny_georanker("adapter")),
        photos: vec![fixture("images")],
        ..Default::default()
    };
    settings.ranker.negatives_from_rank = 5;
    settings.ranker.image.min_pixels = 28 * 28;
    // narrow.png (3 × 500) needs 28 × 504 pixels: a smaller budget leaves it no row.
    settings.ranker.image.max_pixels = 28 * 28 * 20;
    settings
}

/// A safetensors file of a GeoCLIP-shaped image MLP sized for the tiny CLIP: 24 → 32 → 512.
pub fn write_tiny_geoclip_mlp(path: &Path) {
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
pub fn write_small_gallery(path: &Path) {
    let full = std::fs::read_to_string(Asset::GEOCLIP_GPS_GALLERY.require().unwrap()).unwrap();
    let lines: Vec<&str> = full.lines().take(301).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

//! CLIP towers and G3 heads against HF transformers and G3's reference computations.
//!
//! Fixtures in `tests/fixtures/clip/` come from `tools/goldens/clip.py` (torch 2.15.0,
//! transformers 5.24.0): a small random CLIPModel saved by `save_pretrained`, a G3-structured
//! state dict around it saved by `torch.save`, and float64 outputs of both on the fixture
//! images' pixels and on token ids.

mod clip_fixtures;

use burn::prelude::{Device, Tensor, TensorData};
use g3_align::clip::{
    AttentionKernel, ClipConfig, ClipImageProcessor, ClipImageProcessorConfig, ClipModel,
    CpuVisionTower,
};
use g3_align::{G3Model, GpsEncoder, l2_normalize, loader};
use g3_core::GeoPoint;

use clip_fixtures::{fixture, fixture_images};

/// Acceptance bar: every value within 1e-4 of the float64 reference.
const MAX_ABS_DIFF: f64 = 1e-4;

#[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
fn device() -> Device {
    Device::ndarray()
}

/// The CPU backend, plus the ones this build enables (`--features flex,wgpu`).
fn every_device() -> Vec<(&'static str, Device)> {
    let mut devices = vec![("ndarray", device())];
    if cfg!(feature = "flex") {
        devices.push(("flex", g3_align::ComputeDevice::Flex.to_device().unwrap()));
    }
    if cfg!(feature = "wgpu") {
        devices.push(("wgpu", g3_align::ComputeDevice::Wgpu.to_device().unwrap()));
    }
    devices
}

fn read_npy(name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&n| n as usize).collect();
    (shape, npy.into_vec::<f64>().unwrap())
}

fn read_ids(name: &str) -> Vec<u32> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    npy.into_vec::<i64>()
        .unwrap()
        .into_iter()
        .map(|id| u32::try_from(id).unwrap())
        .collect()
}

fn config() -> ClipConfig {
    ClipConfig::from_json_file(&fixture("model/config.json")).unwrap()
}

/// The fixture images' CLIP input, rebuilt from the reference processor's bytes.
fn pixels(device: &Device) -> Tensor<4> {
    let bytes = std::fs::read(fixture("pixels_u8.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let count = npy.shape()[0] as usize;
    let raw = npy.into_vec::<u8>().unwrap();
    let processor = ClipImageProcessor::new(
        ClipImageProcessorConfig::from_json_file(&fixture("model/preprocessor_config.json"))
            .unwrap(),
    );
    let per_image = 224 * 224 * 3;
    let values: Vec<f32> = raw
        .chunks_exact(per_image)
        .flat_map(|image| {
            processor.normalize(&image::RgbImage::from_raw(224, 224, image.to_vec()).unwrap())
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [count, 3, 224, 224]), device)
}

fn assert_close(label: &str, actual: Tensor<2>, golden: &str) {
    let (shape, expected) = read_npy(golden);
    assert_eq!(actual.dims().to_vec(), shape, "{label}: shape");
    let data = actual.into_data().convert::<f32>();
    let values = data.as_slice::<f32>().unwrap();
    let worst = values
        .iter()
        .zip(&expected)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{label}: max |diff| {worst:.3e} over {} values",
        values.len()
    );
    assert!(
        worst <= MAX_ABS_DIFF,
        "{label}: max |diff| {worst} > {MAX_ABS_DIFF}"
    );
}

fn clip_model(device: &Device) -> ClipModel {
    let mut model = ClipModel::new(&config(), device);
    loader::load_clip_model(&mut model, &fixture("model/model.safetensors")).unwrap();
    model
}

/// Every device of this build, with each attention kernel.
fn every_setup() -> Vec<(String, Device, AttentionKernel)> {
    every_device()
        .into_iter()
        .flat_map(|(name, device)| {
            [
                AttentionKernel::Fused,
                AttentionKernel::FusedPadded,
                AttentionKernel::Explicit,
            ]
            .map(|kernel| (format!("{name}, {kernel:?}"), device.clone(), kernel))
        })
        .collect()
}

#[test]
fn vision_tower_matches_transformers() {
    for (name, device, kernel) in every_setup() {
        let mut model = clip_model(&device);
        model.set_attention_kernel(kernel);
        let output = model.vision_model.forward(pixels(&device)).unwrap();
        assert_close(
            &format!("{name}: vision pooled"),
            output.pooled.clone(),
            "vision_pooled.npy",
        );
        assert_close(
            &format!("{name}: image features"),
            model.visual_projection.forward(output.pooled),
            "image_embeds.npy",
        );
    }
}

#[test]
fn the_native_cpu_vision_tower_matches_transformers() {
    let device = device();
    let model = clip_model(&device);
    let tower = CpuVisionTower::from_tower(&model.vision_model).unwrap();
    let input = pixels(&device);
    let count = input.dims()[0];
    let values = input
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let pooled = Tensor::<2>::from_data(
        TensorData::new(
            tower.pooled(&values, count).unwrap(),
            [count, tower.width()],
        ),
        &device,
    );
    assert_close("native: vision pooled", pooled.clone(), "vision_pooled.npy");
    assert_close(
        "native: image features",
        model.visual_projection.forward(pooled),
        "image_embeds.npy",
    );
}

#[test]
fn text_tower_matches_transformers() {
    for (name, device, kernel) in every_setup() {
        let mut model = clip_model(&device);
        model.set_attention_kernel(kernel);
        let ids = read_ids("text_ids.npy");
        let output = model.text_model.forward(&ids, 77).unwrap();
        assert_close(
            &format!("{name}: text pooled"),
            output.pooled,
            "text_pooled.npy",
        );
        assert_close(
            &format!("{name}: text features"),
            model.text_features(&ids, 77).unwrap(),
            "text_embeds.npy",
        );
    }
}

#[test]
fn g3_heads_and_database_embedding_match_the_reference() {
    for (name, device, kernel) in every_setup() {
        eprintln!("{name}:");
        g3_matches_the_reference(&device, kernel);
    }
}

fn g3_matches_the_reference(device: &Device, kernel: AttentionKernel) {
    let device = device.clone();
    let mut model = G3Model::load(&fixture("g3.pth"), &config(), &device).unwrap();
    model.set_attention_kernel(kernel);
    assert_eq!(model.logit_scales, [3.99, 4.25, 2.5]);
    let embeddings = model.image_embeddings(pixels(&device)).unwrap();
    assert_close(
        "g3 image-text",
        embeddings.image_text.clone(),
        "g3_image_text.npy",
    );
    assert_close(
        "g3 image-gps",
        embeddings.image_gps.clone(),
        "g3_image_gps.npy",
    );
    assert_close("g3 database", embeddings.database(), "g3_database.npy");
    let ids = read_ids("text_ids.npy");
    assert_close(
        "g3 text",
        model.text_embeddings(&ids, 77).unwrap(),
        "g3_text.npy",
    );

    // Geo-verification's score: image-GPS embedding against candidate GPS embeddings.
    let gps = GpsEncoder::load_g3(&fixture("g3.pth"), &device).unwrap();
    let points: Vec<GeoPoint> = std::fs::read_to_string(fixture("g3_coordinates.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.parse().unwrap())
        .collect();
    let embedded = gps.embed(&points).unwrap();
    let locations = l2_normalize(Tensor::from_data(
        TensorData::new(
            embedded.as_slice().to_vec(),
            [points.len(), embedded.dimension()],
        ),
        &device,
    ));
    assert_close("g3 location", locations.clone(), "g3_location.npy");
    assert_close(
        "g3 image-gps similarity",
        embeddings.image_gps.matmul(locations.transpose()),
        "g3_image_gps_similarity.npy",
    );
}

#[test]
fn a_checkpoint_for_another_architecture_is_a_clear_error() {
    let device = device();
    let mut other = config();
    other.vision.num_hidden_layers = 3;
    other.text.hidden_size = 48;
    let mut model = ClipModel::new(&other, &device);
    let error = loader::load_clip_model(&mut model, &fixture("model/model.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("vision_model.encoder.layers.2.self_attn.q_proj.weight"),
        "{error}"
    );
    assert!(error.contains("mis-shaped"), "{error}");
    let error = G3Model::load(&fixture("model/model.safetensors"), &config(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("vision_projection_else_1.0.weight"),
        "{error}"
    );
}

fn embeddings_tensor(embeddings: &g3_core::Embeddings, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(
            embeddings.as_slice().to_vec(),
            [embeddings.len(), embeddings.dimension()],
        ),
        device,
    )
}

#[test]
fn image_encoder_embeds_image_files_like_the_reference() {
    use g3_align::pretrained::HfClipDirectory;
    use g3_align::{ImageEmbeddingKind, ImageEncoder, ImageModel};

    let device = device();
    let images = fixture_images();
    let directory = HfClipDirectory::open(&fixture("model")).unwrap();
    let processor = directory.image_processor().unwrap();
    // Batches of 5 over 16 images: the last batch is short.
    let g3 = |kind| {
        let model = G3Model::load(&fixture("g3.pth"), directory.config(), &device).unwrap();
        ImageEncoder::new(
            ImageModel::G3(model),
            kind,
            processor.clone(),
            device.clone(),
            5,
        )
        .unwrap()
    };
    let database = g3(ImageEmbeddingKind::Database).embed(&images).unwrap();
    assert_eq!(database.dimension(), 72);
    assert_close(
        "encoder database",
        embeddings_tensor(&database, &device),
        "g3_database.npy",
    );
    let gps = g3(ImageEmbeddingKind::Gps).embed(&images).unwrap();
    assert_close(
        "encoder image-gps",
        embeddings_tensor(&gps, &device),
        "g3_image_gps.npy",
    );

    let clip = ImageEncoder::new(
        ImageModel::Clip(directory.load_model(&device).unwrap()),
        ImageEmbeddingKind::Clip,
        processor,
        device.clone(),
        16,
    )
    .unwrap();
    let (shape, golden) = read_npy("image_embeds.npy");
    let golden = l2_normalize(Tensor::<2>::from_data(
        TensorData::new(
            golden.iter().map(|&v| v as f32).collect(),
            [shape[0], shape[1]],
        ),
        &device,
    ));
    let ours = embeddings_tensor(&clip.embed(&images).unwrap(), &device);
    let worst: f32 = (ours - golden).abs().max().into_scalar();
    assert!(
        worst <= MAX_ABS_DIFF as f32,
        "clip image embeddings: {worst}"
    );

    // A plain CLIP has no G3 heads.
    let error = ImageEncoder::new(
        ImageModel::Clip(directory.load_model(&device).unwrap()),
        ImageEmbeddingKind::Database,
        directory.image_processor().unwrap(),
        device.clone(),
        4,
    )
    .unwrap_err();
    assert!(error.to_string().contains("Database"), "{error}");
    // An undecodable file is an error naming it.
    let mut broken = images[..2].to_vec();
    broken.push(g3_core::ImageInput::from_bytes(
        "not-an-image.jpg",
        b"nope".to_vec(),
    ));
    let error = clip.embed(&broken).unwrap_err();
    assert!(error.to_string().contains("not-an-image.jpg"), "{error}");
}

#[test]
fn geoclip_image_mlp_loads_from_the_wheel() {
    let path = g3_core::assets::Asset::GEOCLIP_IMAGE_MLP
        .require()
        .unwrap_or_else(|error| panic!("{error}"));
    let head = loader::load_geoclip_image_mlp(&path, &device()).unwrap();
    assert_eq!(head.input.weight.dims(), [768, 768]);
    assert_eq!(head.output_size(), 512);
    // A G3 checkpoint is not GeoCLIP's MLP: the error names the missing key.
    let error = loader::load_geoclip_image_mlp(&fixture("g3.pth"), &device())
        .unwrap_err()
        .to_string();
    assert!(error.contains("0.weight"), "{error}");
}

#[test]
fn text_encoder_tokenizes_in_batches_and_normalises() {
    use g3_align::clip::{CONTEXT_LENGTH, ClipTokenizer};
    use g3_align::{TextEncoder, TextModel};

    let device = device();
    // The fixture's architecture with CLIP's real vocabulary and end-of-text rule.
    let mut architecture = config();
    architecture.text.vocab_size = 49_408;
    architecture.text.eos_token_id = 2;
    device.seed(3);
    let model = ClipModel::new(&architecture, &device);
    let vocabulary = g3_core::assets::Asset::CLIP_BPE_VOCABULARY
        .require()
        .unwrap_or_else(|error| panic!("{error}"));
    let tokenizer = ClipTokenizer::from_bpe_vocabulary(&vocabulary).unwrap();
    let texts = [
        "A street view photo taken in Paris, Île-de-France, France",
        "A street view photo taken in Tokyo, Japan",
        "Nuuk",
    ];
    let tokens = tokenizer.encode(&texts).unwrap();
    let raw = model.text_features(&tokens.ids, CONTEXT_LENGTH).unwrap();
    let expected = l2_normalize(raw.clone());
    // Batches of two: the last batch holds one text.
    let encoder = TextEncoder::new(TextModel::Clip(model), tokenizer, 2).unwrap();
    let embedded = encoder.embed(&texts).unwrap();
    assert_eq!(embedded.dimension(), 24);
    let worst: f32 = (embeddings_tensor(&embedded, &device) - expected)
        .abs()
        .max()
        .into_scalar();
    assert!(worst < 1e-6, "{worst}");
    // What Geo-alignment training caches: the same features before normalisation.
    let features = encoder.features(&texts).unwrap();
    let worst: f32 = (embeddings_tensor(&features, &device) - raw)
        .abs()
        .max()
        .into_scalar();
    assert!(worst < 1e-6, "{worst}");
}

/// Half precision, on flex (the CPU backend with f16 and bf16; GPUs run the same code). The
/// tolerance: f16 keeps 11 significant bits (relative rounding 4.9e-4 per value) and bf16 8
/// (3.9e-3); through a transformer those errors partly cancel, and a cosine of at least 0.999
/// with the float64 reference keeps every retrieval and verification ranking that is not a
/// near-tie (an angle of 2.6°). Measured: printed below.
#[test]
fn half_precision_embeddings_stay_within_cosine_0_999_of_the_reference() {
    use g3_align::pretrained::HfClipDirectory;
    use g3_align::{ImageEmbeddingKind, ImageEncoder, ImageModel, Precision};

    let device = Device::flex();
    let images = fixture_images();
    let directory = HfClipDirectory::open(&fixture("model")).unwrap();
    for precision in [Precision::F16, Precision::Bf16] {
        for (kind, golden) in [
            (ImageEmbeddingKind::Database, "g3_database.npy"),
            (ImageEmbeddingKind::Gps, "g3_image_gps.npy"),
        ] {
            let model = G3Model::load(&fixture("g3.pth"), directory.config(), &device).unwrap();
            let encoder = ImageEncoder::new(
                ImageModel::G3(model),
                kind,
                directory.image_processor().unwrap(),
                device.clone(),
                8,
            )
            .unwrap()
            .with_precision(precision)
            .unwrap();
            let ours = encoder.embed(&images).unwrap();
            let (shape, expected) = read_npy(golden);
            assert_eq!([ours.len(), ours.dimension()], [shape[0], shape[1]]);
            let worst = ours
                .rows()
                .zip(expected.chunks_exact(shape[1]))
                .map(|(ours, expected)| {
                    let dot: f64 = ours.iter().zip(expected).map(|(a, b)| *a as f64 * b).sum();
                    let norm =
                        |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
                    dot / (norm(&mut ours.iter().map(|&x| x as f64))
                        * norm(&mut expected.iter().copied()))
                })
                .fold(1.0, f64::min);
            eprintln!("{precision} {kind:?}: smallest cosine {worst:.6}");
            assert!(worst >= 0.999, "{precision} {kind:?}: cosine {worst}");
        }
    }
}

#[test]
fn the_cpu_device_refuses_half_precision() {
    use g3_align::pretrained::HfClipDirectory;
    use g3_align::{ImageEmbeddingKind, ImageEncoder, ImageModel, Precision};

    let device = device();
    let directory = HfClipDirectory::open(&fixture("model")).unwrap();
    let error = ImageEncoder::new(
        ImageModel::Clip(directory.load_model(&device).unwrap()),
        ImageEmbeddingKind::Clip,
        directory.image_processor().unwrap(),
        device,
        4,
    )
    .unwrap()
    .with_precision(Precision::F16)
    .unwrap_err()
    .to_string();
    assert!(error.contains("float32"), "{error}");
}

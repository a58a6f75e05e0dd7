//! GPS encoder parity against the reference PyTorch code.
//!
//! Fixtures in `tests/fixtures/gps_encoder/` come from `tools/goldens/gps_encoder.py`
//! (torch 2.15.0, geoclip 1.3.0, pyproj 3.7.2). The real pretrained weights come from the
//! asset cache filled by `scripts/fetch-assets.sh`; without them these tests fail, they never
//! skip.

use std::path::{Path, PathBuf};

use burn::prelude::{Device, Tensor, TensorData};
use g3_align::{
    AlignError, ComputeDevice, EqualEarthProjection, GpsEncoder, GpsEncoderConfig,
    LocationEncoderConfig, MercatorProjection, Projection, ProjectionHeadConfig, ProjectionKind,
};
use g3_core::GeoPoint;
use g3_core::assets::Asset;

/// Acceptance bar against the float64 reference: per value and per row.
const MAX_ABS_DIFF_VS_F64: f64 = 1e-4;
const MIN_COSINE_VS_F64: f64 = 0.99999;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gps_encoder")
        .join(name)
}

#[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
fn device() -> Device {
    Device::ndarray()
}

/// The CPU backend, plus the ones this build enables (`--features flex,wgpu`).
fn every_device() -> Vec<(&'static str, Device)> {
    let mut devices = vec![("ndarray", device())];
    if cfg!(feature = "flex") {
        devices.push(("flex", ComputeDevice::Flex.to_device().unwrap()));
    }
    if cfg!(feature = "wgpu") {
        devices.push(("wgpu", ComputeDevice::Wgpu.to_device().unwrap()));
    }
    devices
}

fn coordinates() -> Vec<GeoPoint> {
    let text = std::fs::read_to_string(fixture("coordinates.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| line.parse::<GeoPoint>().unwrap())
        .collect()
}

/// A `.npy` file as (shape, values in f64).
fn read_npy(name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&n| n as usize).collect();
    let values = match npy.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 8 => npy.into_vec::<f64>().unwrap(),
        _ => npy
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    (shape, values)
}

/// Largest absolute difference and smallest row cosine between our rows and the reference.
fn compare(ours: &[f32], reference: &[f64], width: usize) -> (f64, f64) {
    assert_eq!(ours.len(), reference.len(), "different number of values");
    let mut max_abs = 0.0f64;
    let mut min_cosine = 1.0f64;
    for (row, expected) in ours.chunks(width).zip(reference.chunks(width)) {
        let (mut dot, mut norm_a, mut norm_b) = (0.0, 0.0, 0.0);
        for (a, b) in row
            .iter()
            .map(|v| f64::from(*v))
            .zip(expected.iter().copied())
        {
            max_abs = max_abs.max((a - b).abs());
            dot += a * b;
            norm_a += a * a;
            norm_b += b * b;
        }
        min_cosine = min_cosine.min(dot / (norm_a.sqrt() * norm_b.sqrt()));
    }
    (max_abs, min_cosine)
}

fn geoclip_weights() -> PathBuf {
    Asset::GEOCLIP_LOCATION_ENCODER
        .require()
        .unwrap_or_else(|error| panic!("the GeoCLIP weights are needed for this test: {error}"))
}

#[test]
fn projections_match_the_reference_inputs() {
    let points = coordinates();
    assert!(points.len() >= 64);
    for (projection, name, tolerance) in [
        (
            ProjectionKind::EqualEarth,
            "equal_earth_input_f32.npy",
            2e-7,
        ),
        (ProjectionKind::Mercator, "mercator_input_f32.npy", 0.0),
    ] {
        let (shape, reference) = read_npy(name);
        assert_eq!(shape, [points.len(), 2]);
        let ours = projection.project_all(&points);
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        println!("{projection:?} projection: max |ours - reference| = {worst:e}");
        assert!(
            worst <= tolerance,
            "{projection:?}: {worst:e} > {tolerance:e}"
        );
    }
    // Direct use of the projection types gives the same numbers as the enum.
    assert_eq!(
        MercatorProjection.project(points[5]),
        ProjectionKind::Mercator.project(points[5])
    );
    assert_eq!(
        EqualEarthProjection.project(points[5]),
        ProjectionKind::EqualEarth.project(points[5])
    );
}

#[test]
fn pretrained_geoclip_encoder_matches_pytorch_with_both_projections() {
    let points = coordinates();
    let projections = [
        (ProjectionKind::EqualEarth, "equal_earth"),
        (ProjectionKind::Mercator, "mercator"),
    ];
    for (backend, device) in every_device() {
        for (projection, golden) in projections {
            let config = GpsEncoderConfig {
                projection,
                batch_size: 25, // several batches, one of them partial
                ..GpsEncoderConfig::geoclip()
            };
            let encoder = GpsEncoder::load(&geoclip_weights(), config, &device).unwrap();
            let embedded = encoder.embed(&points).unwrap();
            assert_eq!((embedded.len(), embedded.dimension()), (points.len(), 512));
            // On ndarray `embed` runs the CPU copy of the weights; check the burn module too.
            let mut paths = vec![(backend.to_owned(), embedded.as_slice().to_vec())];
            if backend == "ndarray" {
                let module = burn_module_forward(&encoder, &points, &device);
                paths.push(("ndarray burn module".to_owned(), module));
            }

            let (shape, reference_f64) = read_npy(&format!("{golden}_f64.npy"));
            assert_eq!(shape, [points.len(), 512]);
            let (_, reference_f32) = read_npy(&format!("{golden}_f32.npy"));
            for (path, ours) in paths {
                let (max_abs, min_cosine) = compare(&ours, &reference_f64, 512);
                let (max_abs_f32, min_cosine_f32) = compare(&ours, &reference_f32, 512);
                println!(
                    "{path} {golden}: vs float64 max |diff| {max_abs:.2e}, min cosine {min_cosine:.9}; \
                     vs PyTorch float32 max |diff| {max_abs_f32:.2e}, min cosine {min_cosine_f32:.9}"
                );
                assert!(
                    max_abs <= MAX_ABS_DIFF_VS_F64,
                    "{path} {golden}: max |diff| {max_abs:e}"
                );
                assert!(
                    min_cosine >= MIN_COSINE_VS_F64,
                    "{path} {golden}: min cosine {min_cosine}"
                );
            }
        }
    }
}

/// The encoder's burn module evaluated directly, whatever path `embed` takes.
fn burn_module_forward(encoder: &GpsEncoder, points: &[GeoPoint], device: &Device) -> Vec<f32> {
    let projected = encoder.config().projection.project_all(points);
    let input = Tensor::<2>::from_data(TensorData::new(projected, [points.len(), 2]), device);
    encoder
        .branch()
        .forward(input)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

fn tiny_g3_config() -> GpsEncoderConfig {
    GpsEncoderConfig {
        projection: ProjectionKind::Mercator,
        location_encoder: LocationEncoderConfig {
            sigmas: vec![1.0, 16.0, 256.0],
            encoded_size: 8,
            hidden_width: 16,
            hidden_layers: 3,
            output_size: 12,
        },
        head: Some(ProjectionHeadConfig {
            input_size: 12,
            hidden_size: 12,
            output_size: 20,
        }),
        batch_size: 64,
    }
}

#[test]
fn g3_checkpoints_load_with_the_head_from_pytorch_and_safetensors() {
    let points = coordinates();
    let (shape, reference) = read_npy("tiny_g3_mercator_f64.npy");
    assert_eq!(shape, [points.len(), 20]);
    for file in ["tiny_g3.pth", "tiny_g3.safetensors"] {
        let encoder = GpsEncoder::load(&fixture(file), tiny_g3_config(), &device()).unwrap();
        let ours = encoder.embed(&points).unwrap();
        assert_eq!(ours.dimension(), 20);
        let (max_abs, min_cosine) = compare(ours.as_slice(), &reference, 20);
        println!("{file}: max |diff| {max_abs:.2e}, min cosine {min_cosine:.9}");
        assert!(
            max_abs <= 1e-4 && min_cosine >= 0.99999,
            "{file}: {max_abs:e} {min_cosine}"
        );
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_lists_every_bad_key() {
    let error =
        GpsEncoder::load(&fixture("tiny_g3_broken.pth"), tiny_g3_config(), &device()).unwrap_err();
    let message = error.to_string();
    match &error {
        AlignError::KeyMismatch {
            missing,
            unexpected,
            mis_shaped,
            ..
        } => {
            assert_eq!(
                missing,
                &["location_encoder.LocEnc1.head.0.bias"],
                "{message}"
            );
            assert_eq!(
                unexpected,
                &["location_encoder.LocEnc0.capsule.7.weight"],
                "{message}"
            );
            assert_eq!(mis_shaped.len(), 1, "{message}");
            assert!(
                mis_shaped[0].starts_with("location_projection_else.2.weight"),
                "{message}"
            );
        }
        other => panic!("expected a key mismatch, got {other}"),
    }
    // A GeoCLIP file has no head: asking for G3's head names the missing keys.
    let no_head =
        GpsEncoder::load(&geoclip_weights(), GpsEncoderConfig::g3(), &device()).unwrap_err();
    assert!(
        no_head
            .to_string()
            .contains("location_projection_else.0.weight"),
        "{no_head}"
    );
}

#[test]
fn missing_and_unreadable_files_are_clear_errors() {
    let missing = GpsEncoder::load(
        Path::new("/no/such/weights.pth"),
        GpsEncoderConfig::geoclip(),
        &device(),
    )
    .unwrap_err();
    assert!(matches!(missing, AlignError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("/no/such/weights.pth"));

    let directory = tempfile::tempdir().unwrap();
    let garbage = directory.path().join("garbage.pth");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    let unreadable =
        GpsEncoder::load(&garbage, GpsEncoderConfig::geoclip(), &device()).unwrap_err();
    assert!(
        matches!(unreadable, AlignError::Checkpoint { .. }),
        "{unreadable}"
    );
}

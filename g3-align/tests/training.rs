//! Geo-alignment training end to end on synthetic data: it learns, it resumes exactly, and
//! bad input is refused.

use burn::prelude::{Device, Tensor, TensorData};
use g3_align::training::{
    AlignmentData, AlignmentModel, AlignmentModelConfig, AlignmentVariant, FeatureTable,
    StepControl, Trainer, TrainingConfig,
};
use g3_align::{LocationEncoderConfig, MercatorProjection, Projection, l2_normalize};
use g3_core::GeoPoint;

#[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
fn device() -> Device {
    Device::ndarray().autodiff()
}

const FEATURES: usize = 32;

fn small_model_config() -> AlignmentModelConfig {
    AlignmentModelConfig {
        feature_size: FEATURES,
        location_encoder: LocationEncoderConfig {
            sigmas: vec![1.0, 4.0],
            encoded_size: 32,
            hidden_width: 64,
            hidden_layers: 2,
            output_size: 32,
        },
        initial_logit_scale: 3.99,
    }
}

/// Points spread over the inhabited latitudes, from a seeded generator.
fn random_points(rng: &mut fastrand::Rng, count: usize) -> Vec<GeoPoint> {
    (0..count)
        .map(|_| {
            let lat = (rng.f64() * 2.0 - 1.0)
                .asin()
                .to_degrees()
                .clamp(-70.0, 70.0);
            let lon = rng.f64() * 360.0 - 180.0;
            GeoPoint::new(lat, lon).unwrap()
        })
        .collect()
}

/// "Image features" that are a smooth, fixed random function of where the photo was taken,
/// plus noise: sums of waves over the unit sphere, as CLIP features of a place vary with
/// climate, vegetation and architecture.
fn synthetic_features(points: &[GeoPoint], noise: f64, rng: &mut fastrand::Rng) -> Vec<f32> {
    let mut waves_rng = fastrand::Rng::with_seed(99);
    let waves: Vec<([f64; 3], f64)> = (0..FEATURES * 4)
        .map(|_| {
            let direction = [
                waves_rng.f64() - 0.5,
                waves_rng.f64() - 0.5,
                waves_rng.f64() - 0.5,
            ];
            let phase = waves_rng.f64() * std::f64::consts::TAU;
            (direction.map(|d| d * 12.0), phase)
        })
        .collect();
    let mut values = Vec::with_capacity(points.len() * FEATURES);
    for point in points {
        let (lat, lon) = (point.lat_deg().to_radians(), point.lon_deg().to_radians());
        let xyz = [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()];
        for feature in 0..FEATURES {
            let mut value = 0.0;
            for (direction, phase) in &waves[feature * 4..feature * 4 + 4] {
                let dot: f64 = direction.iter().zip(&xyz).map(|(a, b)| a * b).sum();
                value += (dot + phase).cos();
            }
            value += noise * (rng.f64() * 2.0 - 1.0);
            values.push(value as f32);
        }
    }
    values
}

/// Share of images whose best-matching location among `points` (image–GPS cosine, as
/// geo-verification scores candidates) lies within 25 km of where they were taken.
fn image_to_gps_top1_within_25km(
    model: &AlignmentModel,
    features: &[f32],
    points: &[GeoPoint],
) -> f64 {
    let device = device();
    let rows = points.len();
    let images = l2_normalize(
        model
            .vision_projection_else_2
            .forward(Tensor::<2>::from_data(
                TensorData::new(features.to_vec(), [rows, FEATURES]),
                &device,
            )),
    );
    let projected = MercatorProjection.project_all(points);
    let locations = l2_normalize(model.location_projection_else.forward(
        model.location_encoder.forward(Tensor::<2>::from_data(
            TensorData::new(projected, [rows, 2]),
            &device,
        )),
    ));
    let scores = images.matmul(locations.transpose()).into_data();
    let scores = scores.as_slice::<f32>().unwrap();
    let correct = (0..rows)
        .filter(|&row| {
            let best = (0..rows)
                .max_by(|&a, &b| scores[row * rows + a].total_cmp(&scores[row * rows + b]))
                .unwrap();
            points[row].geodesic_distance_km(points[best]) <= 25.0
        })
        .count();
    correct as f64 / rows as f64
}

#[test]
fn training_aligns_images_with_where_they_were_taken() {
    let device = device();
    let mut rng = fastrand::Rng::with_seed(1);
    let train_points = random_points(&mut rng, 512);
    let test_points = random_points(&mut rng, 64);
    let train = FeatureTable::new(
        FEATURES,
        synthetic_features(&train_points, 0.3, &mut rng),
        None,
        train_points,
    )
    .unwrap();
    let test_features = synthetic_features(&test_points, 0.3, &mut rng);

    let model = small_model_config().init(&device, 3).unwrap();
    let before = image_to_gps_top1_within_25km(&model, &test_features, &test_points);
    let config = TrainingConfig {
        variant: AlignmentVariant::ImageGps,
        epochs: 40,
        batch_size: 64,
        learning_rate: 2e-3,
        weight_decay: 1e-6,
        learning_rate_decay: 0.97,
        shuffle: true,
        seed: 5,
        ..TrainingConfig::default()
    };
    let mut trainer = Trainer::new(config, model, &device).unwrap();
    let mut first_loss = None;
    let mut last_loss = 0.0;
    while !trainer.is_finished() {
        trainer
            .train_epoch(&train, &mut |report| {
                first_loss.get_or_insert(report.loss);
                last_loss = report.loss;
                StepControl::Continue
            })
            .unwrap();
    }
    let after = image_to_gps_top1_within_25km(trainer.model(), &test_features, &test_points);
    println!(
        "image->GPS top-1 within 25 km on 64 held-out images: {before:.3} untrained, \
         {after:.3} trained; loss {:.3} -> {last_loss:.3}",
        first_loss.unwrap()
    );
    assert!(before <= 0.1, "untrained accuracy {before}");
    assert!(
        after >= 0.5,
        "trained accuracy {after} (untrained {before})"
    );
    assert!(last_loss < first_loss.unwrap() * 0.5);
}

fn resumable_config() -> TrainingConfig {
    TrainingConfig {
        variant: AlignmentVariant::ImageGpsText,
        epochs: 3,
        batch_size: 16,
        learning_rate: 1e-3,
        shuffle: true,
        seed: 11,
        ..TrainingConfig::default()
    }
}

fn resumable_data() -> FeatureTable {
    let mut rng = fastrand::Rng::with_seed(4);
    let points = random_points(&mut rng, 72);
    let images = synthetic_features(&points, 0.2, &mut rng);
    let texts = synthetic_features(&points, 0.5, &mut rng);
    FeatureTable::new(FEATURES, images, Some(texts), points).unwrap()
}

/// The tensor data of the model's checkpoint file: every weight, in key order. (The JSON
/// header before it lists the same keys, but its `__metadata__` entries come in any order.)
fn weights(model: &AlignmentModel) -> Vec<u8> {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("weights.safetensors");
    model.save_checkpoint(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

#[test]
fn a_stopped_run_resumes_to_the_same_weights() {
    let device = device();
    let data = resumable_data();
    // One starting model for all three trainers: the device's random generator is shared
    // with tests running in parallel, so separate draws could differ.
    let initial = small_model_config().init(&device, 8).unwrap();
    let start = || initial.clone();

    let mut straight = Trainer::new(resumable_config(), start(), &device).unwrap();
    let mut straight_losses = Vec::new();
    while !straight.is_finished() {
        straight
            .train_epoch(&data, &mut |report| {
                straight_losses.push(report.loss);
                StepControl::Continue
            })
            .unwrap();
    }

    // Stop in the middle of the second epoch, save, resume in a fresh trainer.
    let state = tempfile::tempdir().unwrap();
    let mut first = Trainer::new(resumable_config(), start(), &device).unwrap();
    let mut losses = Vec::new();
    let mut steps = 0;
    let mut finished_epoch = true;
    while finished_epoch && !first.is_finished() {
        finished_epoch = first
            .train_epoch(&data, &mut |report| {
                losses.push(report.loss);
                steps += 1;
                if steps == 7 {
                    StepControl::Stop
                } else {
                    StepControl::Continue
                }
            })
            .unwrap();
    }
    assert!(!finished_epoch, "the run stopped inside an epoch");
    assert_eq!(first.progress().epoch, 1);
    assert_eq!(first.progress().batch, 2);
    first.save_state(state.path()).unwrap();
    drop(first);

    let mut resumed = Trainer::resume(state.path(), start(), None, &device).unwrap();
    assert_eq!(resumed.progress().steps, 7);
    // Other data, too small to hold the saved position, is refused without harm.
    let mut rng = fastrand::Rng::with_seed(6);
    let few_points = random_points(&mut rng, 16);
    let few = FeatureTable::new(
        FEATURES,
        synthetic_features(&few_points, 0.2, &mut rng),
        Some(synthetic_features(&few_points, 0.2, &mut rng)),
        few_points,
    )
    .unwrap();
    let error = resumed
        .train_epoch(&few, &mut |_| StepControl::Continue)
        .unwrap_err();
    assert!(error.to_string().contains("stopped at batch 2"), "{error}");
    while !resumed.is_finished() {
        resumed
            .train_epoch(&data, &mut |report| {
                losses.push(report.loss);
                StepControl::Continue
            })
            .unwrap();
    }
    assert_eq!(losses, straight_losses);
    assert_eq!(weights(resumed.model()), weights(straight.model()));
    assert_eq!(
        Trainer::saved_progress(state.path()).unwrap().steps,
        7,
        "the saved state is the one written at the stop"
    );
}

#[test]
fn bad_training_input_is_refused_with_a_reason() {
    let device = device();
    let model = small_model_config().init(&device, 0).unwrap();
    let point = GeoPoint::new(1.0, 2.0).unwrap();

    let wrong_length = FeatureTable::new(FEATURES, vec![0.0; FEATURES - 1], None, vec![point]);
    assert!(
        wrong_length
            .unwrap_err()
            .to_string()
            .contains("values for 1 rows")
    );
    let mut with_nan = vec![0.0; FEATURES * 2];
    with_nan[FEATURES + 3] = f32::NAN;
    let not_finite = FeatureTable::new(FEATURES, with_nan, None, vec![point, point]);
    assert!(not_finite.unwrap_err().to_string().contains("row 1"));

    let no_text =
        FeatureTable::new(FEATURES, vec![0.5; FEATURES * 2], None, vec![point, point]).unwrap();
    let mut trainer = Trainer::new(TrainingConfig::default(), model, &device).unwrap();
    let error = trainer
        .train_epoch(&no_text, &mut |_| StepControl::Continue)
        .unwrap_err();
    assert!(error.to_string().contains("needs text features"), "{error}");

    let narrow = FeatureTable::new(8, vec![0.5; 16], None, vec![point, point]).unwrap();
    assert_eq!(narrow.feature_size(), 8);
    let error = trainer
        .train_epoch(&narrow, &mut |_| StepControl::Continue)
        .unwrap_err();
    assert!(error.to_string().contains("width 8"), "{error}");

    #[allow(deprecated)]
    let inference = Device::ndarray();
    let model = small_model_config().init(&inference, 0).unwrap();
    let error = Trainer::new(TrainingConfig::default(), model, &inference).unwrap_err();
    assert!(error.to_string().contains("autodiff"), "{error}");

    let config = TrainingConfig {
        batch_size: 0,
        ..TrainingConfig::default()
    };
    let model = small_model_config().init(&device, 0).unwrap();
    let error = Trainer::new(config, model, &device).unwrap_err();
    assert!(error.to_string().contains("batch_size"), "{error}");
}

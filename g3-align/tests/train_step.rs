//! Training parity against PyTorch: G3's loss, AdamW and StepLR on a tiny G3-shaped model.
//!
//! Fixtures in `tests/fixtures/train_step/` come from `tools/goldens/train_step.py`
//! (torch 2.15.0, geoclip 1.3.0, pyproj 3.7.2): the starting weights, two batches of cached
//! features and, per scenario, the loss before each step and every weight after each step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::{Device, Tensor, TensorData};
use burn::store::{ModuleStore, SafetensorsStore};
use g3_align::training::{
    AlignmentBatch, AlignmentModel, AlignmentVariant, Trainer, TrainingConfig,
};
use g3_align::{MercatorProjection, Projection};
use g3_core::GeoPoint;

/// The bars: loss and every weight after a step within 1e-5 of PyTorch's.
const LOSS_TOLERANCE: f64 = 1e-5;
const WEIGHT_TOLERANCE: f64 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/train_step")
        .join(name)
}

#[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
fn device() -> Device {
    Device::ndarray().autodiff()
}

/// Every tensor of a safetensors file: name → (shape, values as f64).
fn read_safetensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
    let tensors = store.get_all_tensors().unwrap();
    tensors
        .iter()
        .map(|(name, tensor)| {
            let bytes = tensor.to_bytes().unwrap();
            let values = match tensor.dtype {
                burn::tensor::DType::F32 => bytes
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
                burn::tensor::DType::F64 => bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name.clone(), (tensor.shape.as_slice().to_vec(), values))
        })
        .collect()
}

struct Scenario {
    config: TrainingConfig,
    golden: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
}

fn scenario(name: &str) -> Scenario {
    let described: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("scenarios.json")).unwrap()).unwrap();
    let settings = &described[name];
    let variant: AlignmentVariant = serde_json::from_value(settings["variant"].clone()).unwrap();
    let config = TrainingConfig {
        variant,
        learning_rate: settings["learning_rate"].as_f64().unwrap(),
        weight_decay: settings["weight_decay"].as_f64().unwrap(),
        learning_rate_decay: settings["gamma"].as_f64().unwrap(),
        adam_beta1: settings["betas"][0].as_f64().unwrap(),
        adam_beta2: settings["betas"][1].as_f64().unwrap(),
        adam_epsilon: settings["epsilon"].as_f64().unwrap(),
        batch_size: 8,
        epochs: 2,
        ..TrainingConfig::default()
    };
    Scenario {
        config,
        golden: read_safetensors(&fixture(&format!("{name}.safetensors"))),
    }
}

fn batch(index: usize, device: &Device) -> AlignmentBatch {
    let batches = read_safetensors(&fixture("batches.safetensors"));
    let tensor = |field: &str| {
        let (shape, values) = &batches[&format!("batch{index}.{field}")];
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        Tensor::<2>::from_data(TensorData::new(values, [shape[0], shape[1]]), device)
    };
    let (shape, coordinates) = &batches[&format!("batch{index}.coordinates")];
    let points: Vec<GeoPoint> = coordinates
        .chunks_exact(2)
        .map(|pair| GeoPoint::new(pair[0], pair[1]).unwrap())
        .collect();
    // G3 projects with pyproj; ours must give the golden's encoder input exactly.
    let projected = MercatorProjection.project_all(&points);
    let (_, expected) = &batches[&format!("batch{index}.mercator_input")];
    for (ours, theirs) in projected.iter().zip(expected) {
        assert_eq!(f64::from(*ours), *theirs, "Mercator input of batch {index}");
    }
    AlignmentBatch {
        image_features: tensor("image_features"),
        text_features: Some(tensor("text_features")),
        projected_locations: Tensor::from_data(TensorData::new(projected, [shape[0], 2]), device),
    }
}

/// Compares the model's weights, read back through its checkpoint writer (G3's keys and
/// PyTorch layouts), with the golden's `{prefix}.{key}` tensors.
fn assert_weights_match(model: &AlignmentModel, scenario: &Scenario, prefix: &str) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("model.safetensors");
    model.save_checkpoint(&path).unwrap();
    let ours = read_safetensors(&path);
    let mut compared = 0;
    let mut worst = (0.0f64, String::new());
    for (key, (shape, theirs)) in &scenario.golden {
        let Some(name) = key.strip_prefix(&format!("{prefix}.")) else {
            continue;
        };
        let (our_shape, values) = ours
            .get(name)
            .unwrap_or_else(|| panic!("the checkpoint lacks {name}"));
        assert_eq!(
            our_shape.iter().product::<usize>(),
            shape.iter().product::<usize>(),
            "{name}: shape {our_shape:?} vs PyTorch {shape:?}"
        );
        for (a, b) in values.iter().zip(theirs) {
            let difference = (a - b).abs();
            if difference > worst.0 {
                worst = (difference, name.to_owned());
            }
        }
        compared += 1;
    }
    assert_eq!(compared, ours.len(), "every weight has a golden");
    println!(
        "{prefix}: {compared} tensors, largest difference {:e} ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= WEIGHT_TOLERANCE,
        "{prefix}: largest difference {:e} in {}",
        worst.0,
        worst.1
    );
}

fn run_scenario(name: &str) {
    let device = device();
    let scenario = scenario(name);
    let model = AlignmentModel::load(&fixture("initial.safetensors"), &device).unwrap();
    let mut trainer = Trainer::new(scenario.config.clone(), model, &device).unwrap();
    let (_, losses) = &scenario.golden["losses"];
    let (_, terms) = &scenario.golden["loss_terms"];
    for step in 0..2 {
        let report = trainer.step(&batch(step, &device)).unwrap();
        println!(
            "{name} step {step}: loss {} (PyTorch {}, difference {:e})",
            report.loss,
            losses[step],
            (report.loss - losses[step]).abs()
        );
        assert!(
            (report.loss - losses[step]).abs() <= LOSS_TOLERANCE,
            "{name} step {step}: loss {} vs PyTorch {}",
            report.loss,
            losses[step]
        );
        assert!((report.image_gps_loss - terms[2 * step + 1]).abs() <= LOSS_TOLERANCE);
        match report.image_text_loss {
            Some(loss) => assert!((loss - terms[2 * step]).abs() <= LOSS_TOLERANCE),
            None => assert_eq!(terms[2 * step], 0.0),
        }
        assert_weights_match(trainer.model(), &scenario, &format!("step{}", step + 1));
        // StepLR between the two steps, as an epoch boundary does.
        if step == 0 {
            let lr = trainer.learning_rate();
            assert!((lr - scenario.config.learning_rate).abs() < 1e-15);
            trainer = advance_epoch(trainer);
        }
    }
}

/// Moves a trainer to the next epoch through its saved state, which is also how a run
/// resumes after an epoch.
fn advance_epoch(trainer: Trainer) -> Trainer {
    let directory = tempfile::tempdir().unwrap();
    trainer.save_state(directory.path()).unwrap();
    let progress_path = directory.path().join("progress.json");
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&progress_path).unwrap()).unwrap();
    saved["progress"]["epoch"] = serde_json::json!(1);
    saved["progress"]["batch"] = serde_json::json!(0);
    std::fs::write(&progress_path, saved.to_string()).unwrap();
    let device = device();
    let skeleton = AlignmentModel::load(&fixture("initial.safetensors"), &device).unwrap();
    Trainer::resume(directory.path(), skeleton, None, &device).unwrap()
}

#[test]
fn one_step_matches_pytorch_on_g3s_objective() {
    run_scenario("paper_image_gps_text");
}

#[test]
fn the_image_gps_variant_leaves_the_text_side_untouched() {
    run_scenario("paper_image_gps");
}

#[test]
fn weight_decay_and_the_schedule_match_pytorch_with_large_steps() {
    run_scenario("strong_image_gps_text");
}

#[test]
fn a_g3_checkpoint_round_trips_through_safetensors() {
    let device = device();
    let model = AlignmentModel::load(&fixture("initial.safetensors"), &device).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("copy.safetensors");
    model.save_checkpoint(&path).unwrap();
    let original = read_safetensors(&fixture("initial.safetensors"));
    let copy = read_safetensors(&path);
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        copy.keys().collect::<Vec<_>>()
    );
    for (key, (_, values)) in &original {
        assert_eq!(&copy[key].1, values, "{key}");
    }
    assert_eq!(model.logit_scales().unwrap(), [3.99; 3]);
    // The GPS branch of a trained checkpoint is what the pipeline's GPS encoder loads.
    #[allow(deprecated)]
    let inference = g3_align::GpsEncoder::load_g3(&path, &Device::ndarray()).unwrap();
    assert_eq!(inference.branch().output_size(), 16);
}

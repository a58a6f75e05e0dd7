//! `g3 train` end to end on a tiny feature cache: checkpoints per epoch, a metrics log, a run
//! that resumes where the previous one stopped, and clear errors for bad settings.

use std::path::Path;
use std::process::{Command, Output};

use npyz::WriterBuilder;

fn g3(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(arguments)
        .output()
        .expect("the g3 binary runs")
}

fn write_npy(path: &Path, rows: usize, columns: usize, values: &[f32]) {
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[rows as u64, columns as u64])
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    writer.extend(values.iter().copied()).unwrap();
    writer.finish().unwrap();
}

const ROWS: usize = 24;
const FEATURES: usize = 8;

/// A cache of 24 rows (image and text features) and their locations.
fn write_cache(directory: &Path) {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut values = || -> Vec<f32> {
        (0..ROWS * FEATURES)
            .map(|_| rng.f32() * 2.0 - 1.0)
            .collect()
    };
    write_npy(
        &directory.join("image_features.npy"),
        ROWS,
        FEATURES,
        &values(),
    );
    write_npy(
        &directory.join("text_features.npy"),
        ROWS,
        FEATURES,
        &values(),
    );
    let mut csv = String::from("IMG_ID,LAT,LON\n");
    for row in 0..ROWS {
        csv.push_str(&format!(
            "{row}.jpg,{},{}\n",
            -60.0 + 5.0 * row as f64,
            -170.0 + 14.0 * row as f64
        ));
    }
    std::fs::write(directory.join("metadata.csv"), csv).unwrap();
}

fn write_config(directory: &Path, epochs: usize) -> std::path::PathBuf {
    let path = directory.join("train.toml");
    std::fs::write(
        &path,
        format!(
            r#"
image_features = "image_features.npy"
text_features = "text_features.npy"
locations = "metadata.csv"
output = "run"
location_encoder = "fresh"
model_seed = 4

[model]
feature_size = {FEATURES}

[model.location_encoder]
sigmas = [1.0, 16.0]
encoded_size = 4
hidden_width = 8
hidden_layers = 1
output_size = 6

[training]
epochs = {epochs}
batch_size = 10
learning_rate = 1e-3
shuffle = true
seed = 2
"#
        ),
    )
    .unwrap();
    path
}

fn metrics_lines(directory: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(directory.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn training_writes_checkpoints_and_resumes_a_finished_run_for_more_epochs() {
    let directory = tempfile::tempdir().unwrap();
    write_cache(directory.path());
    let config = write_config(directory.path(), 2);
    let output = g3(&["train", "--config", config.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run = directory.path().join("run");
    for epoch in ["01", "02"] {
        assert!(
            run.join(format!("checkpoints/g3-epoch{epoch}.safetensors"))
                .is_file()
        );
    }
    assert!(run.join("g3-aligned.safetensors").is_file());
    // 24 rows in batches of 10: 3 steps per epoch.
    let lines = metrics_lines(directory.path());
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5]["step"], 6);
    assert!(
        lines
            .iter()
            .all(|line| line["loss"].as_f64().unwrap().is_finite())
    );
    assert!(
        lines[3]["learning_rate"].as_f64().unwrap() < lines[0]["learning_rate"].as_f64().unwrap()
    );

    // The same run asked for a third epoch picks up from its saved state.
    let config = write_config(directory.path(), 3);
    let output = g3(&["train", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming at epoch 3 batch 0 (step 6)"),
        "{stderr}"
    );
    assert_eq!(metrics_lines(directory.path()).len(), 9);
    assert!(run.join("checkpoints/g3-epoch03.safetensors").is_file());

    // The trained model is a G3 checkpoint: the pipeline's GPS encoder loads it.
    #[allow(deprecated)]
    let device = burn::prelude::Device::ndarray();
    let encoder =
        g3::align::GpsEncoder::load_g3(&run.join("g3-aligned.safetensors"), &device).unwrap();
    assert_eq!(encoder.branch().output_size(), FEATURES);

    // --restart starts over.
    let output = g3(&["train", "--config", config.to_str().unwrap(), "--restart"]);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("resuming"));
}

#[test]
fn the_printed_defaults_are_the_papers_and_parse_back() {
    let output = g3(&["train", "--print-config"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    let training = parsed["training"].as_table().unwrap();
    assert_eq!(training["learning_rate"].as_float(), Some(3e-5));
    assert_eq!(training["batch_size"].as_integer(), Some(256));
    assert_eq!(training["epochs"].as_integer(), Some(10));
    assert_eq!(training["learning_rate_decay"].as_float(), Some(0.87));
    assert_eq!(training["variant"].as_str(), Some("image-gps-text"));
    assert_eq!(parsed["location_encoder"].as_str(), Some("geoclip"));
}

#[test]
fn bad_settings_and_caches_are_clear_errors() {
    let directory = tempfile::tempdir().unwrap();
    write_cache(directory.path());
    let config = write_config(directory.path(), 1);

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("batch_size = 10", "batch_sise = 10")).unwrap();
    let output = g3(&["train", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("batch_sise"), "{stderr}");

    let config = write_config(directory.path(), 1);
    std::fs::write(
        directory.path().join("metadata.csv"),
        "IMG_ID,LAT,LON\na.jpg,1,2\n",
    )
    .unwrap();
    let output = g3(&["train", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("image_features.npy: 24 rows, but"),
        "{stderr}"
    );
}

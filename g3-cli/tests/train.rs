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

/// From photos to a database: `g3 cache-features` on the CLIP fixture model, `g3 train` on
/// the cache, then `g3 embed-images --kind database` with the trained heads on that CLIP.
#[test]
fn cached_features_train_heads_that_embed_a_database() {
    let directory = tempfile::tempdir().unwrap();
    let clip =
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("g3-align/tests/fixtures/clip");
    let images = [
        "landscape.jpg",
        "portrait.png",
        "gray.png",
        "rgba.png",
        "cmyk.jpg",
    ];
    let mut metadata = String::from("IMG_ID,LAT,LON,city,state,country\n");
    for (index, image) in images.iter().enumerate() {
        metadata.push_str(&format!(
            "{image},{},{},City,State,Country\n",
            40.0 + 3.0 * index as f64,
            -3.0 * index as f64
        ));
    }
    std::fs::write(directory.path().join("metadata.csv"), metadata).unwrap();
    let features = directory.path().join("features");
    let output = g3(&[
        "cache-features",
        "--model",
        clip.join("model").to_str().unwrap(),
        "--metadata",
        directory.path().join("metadata.csv").to_str().unwrap(),
        "--images",
        clip.join("images").to_str().unwrap(),
        "--output",
        features.to_str().unwrap(),
        "--no-text",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The fixture CLIP projects to 24 values; the image-gps variant needs no text.
    let config = directory.path().join("train.toml");
    std::fs::write(
        &config,
        r#"
image_features = "features/image_features.npy"
locations = "features/metadata.csv"
output = "run"
location_encoder = "fresh"

[model]
feature_size = 24

[model.location_encoder]
sigmas = [1.0]
encoded_size = 4
hidden_width = 8
hidden_layers = 1
output_size = 6

[training]
variant = "image-gps"
epochs = 2
batch_size = 4
learning_rate = 1e-3
"#,
    )
    .unwrap();
    let output = g3(&["train", "--config", config.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let list = directory.path().join("list.csv");
    std::fs::write(&list, format!("file\n{}\n", images.join("\n"))).unwrap();
    let embed = |kind: &str, extra: &[&str]| {
        let path = directory.path().join(format!("{kind}.npy"));
        let mut arguments = vec![
            "embed-images".to_owned(),
            "--input".to_owned(),
            list.display().to_string(),
            "--root".to_owned(),
            clip.join("images").display().to_string(),
            "--output".to_owned(),
            path.display().to_string(),
            "--kind".to_owned(),
            kind.to_owned(),
        ];
        arguments.extend(extra.iter().map(|value| value.to_string()));
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        let output = g3(&arguments);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bytes = std::fs::read(&path).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        (npy.shape().to_vec(), npy.into_vec::<f32>().unwrap())
    };
    let trained = directory.path().join("run/g3-aligned.safetensors");
    let clip_model = clip.join("model");
    let (shape, database) = embed(
        "database",
        &[
            "--model",
            trained.to_str().unwrap(),
            "--clip-model",
            clip_model.to_str().unwrap(),
        ],
    );
    assert_eq!(shape, [5, 72]);
    let (_, plain) = embed("clip", &["--model", clip_model.to_str().unwrap()]);
    // The database vector starts with the plain CLIP embedding; the trained heads follow.
    for (row, expected) in database.chunks(72).zip(plain.chunks(24)) {
        for (value, want) in row[..24].iter().zip(expected) {
            assert!((value - want).abs() < 1e-5);
        }
        let gps_norm: f32 = row[48..].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((gps_norm - 1.0).abs() < 1e-4);
    }
}

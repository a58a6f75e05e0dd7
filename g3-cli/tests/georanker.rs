//! GeoRanker from the command line: `g3 fetch georanker` against a loopback HF hub serving
//! the tiny Qwen2-VL of g3-qwen2-vl's goldens under Qwen2-VL-7B-Instruct's repository id,
//! the adapter's place named when it is missing, then `g3 locate --preset georanker` on the
//! fixture database, its photos in a tar archive and the mock LMM: the rewards are the
//! reference's (transformers + PEFT on the same conversations, tools/goldens/qwen2_vl.py) and
//! the prediction their argmax. `g3 run` with G3 and GeoRanker then makes one ablation table.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use g3::align::ImageEmbeddingKind;
use g3::hub::Repo;
use g3::hub::mock::MockHub;
use g3::pipeline::GEORANKER_BASE_MODEL;
use g3::prompt::mock::{MockBehaviour, MockChatServer};
use support::{
    DATABASE_IMAGES, DATABASE_PLACES, build_database_with_places, fixture, tiny_georanker,
    write_archive,
};

/// The conversations of the end-to-end pool, which the reference scores.
fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/georanker")
        .join(name)
}

/// `g3` with an HF cache and a g3 asset cache of its own, the hub at `endpoint`.
fn g3(home: &Path, endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_g3"));
    command
        .env("HF_HOME", home.join("hf"))
        .env("HF_ENDPOINT", endpoint)
        .env("G3_CACHE_DIR", home.join("g3-cache"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    command
}

fn output(command: &mut Command) -> (bool, String, String) {
    let output: Output = command.output().expect("the g3 binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The tiny model's files under Qwen2-VL-7B-Instruct's repository id.
fn serve_tiny_qwen2_vl() -> MockHub {
    let hub = MockHub::start().unwrap();
    let repo = Repo::model(GEORANKER_BASE_MODEL).unwrap();
    let model = tiny_georanker("model");
    for entry in std::fs::read_dir(&model).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let large = name.ends_with(".safetensors");
        hub.add_file(&repo, &name, std::fs::read(&path).unwrap(), large);
    }
    hub.add_file(&repo, "README.md", b"# Qwen2-VL".to_vec(), false);
    hub
}

/// A config file: GeoRanker on the fixtures (the model and adapter found in the caches),
/// the mock LMM, the database with place names, the photos in `archive`.
fn write_config(directory: &Path, server: &MockChatServer, archive: &Path) -> PathBuf {
    write_preset_config(directory, server, archive, "georanker", "")
}

/// A config file of `preset` on the fixtures, `extra` appended to its `[verifier]` table.
fn write_preset_config(
    directory: &Path,
    server: &MockChatServer,
    archive: &Path,
    preset: &str,
    extra: &str,
) -> PathBuf {
    let database = directory.join("places.db");
    if !database.exists() {
        build_database_with_places(ImageEmbeddingKind::Database, &database);
    }
    let config = format!(
        r#"
preset = "{preset}"
database = "places.db"

[models]
clip = "{clip}"
g3_checkpoint = "{g3}"

[generation.generator]
kind = "openai"
base_url = "{base_url}"
model = "mock-lmm"
api_key_env = ""

{georanker}
"#,
        clip = fixture("model").display(),
        g3 = fixture("g3.pth").display(),
        base_url = server.base_url(),
        georanker = if preset == "georanker" {
            format!(
                r#"
[pool]
similar_neighbors = 10

[verifier]
kind = "georanker"
photos = ["{archive}"]
{extra}

[verifier.ranker]
negatives_from_rank = 5

[verifier.ranker.image]
min_pixels = 784
max_pixels = 15680
"#,
                archive = archive.display()
            )
        } else {
            String::new()
        },
    );
    let path = directory.join(format!("{preset}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

/// The pool of one prediction as the reference's inputs, in the pool's order: each
/// retrieved candidate's photo, location and place levels, each zero-shot location; and the
/// negatives, the retrieved candidates of ranks 5 to 9.
fn conversations(prediction: &serde_json::Value, query: &str) -> serde_json::Value {
    let places = |key: usize| {
        let (city, state, country) = DATABASE_PLACES[key];
        serde_json::json!(["", city, "", state, "", country])
    };
    let mut candidates = Vec::new();
    let mut negatives = Vec::new();
    for candidate in prediction["candidates"].as_array().unwrap() {
        let location = &candidate["location"];
        let source = &candidate["source"];
        match source["kind"].as_str().unwrap() {
            "retrieved" => {
                let key = source["key"].as_u64().unwrap() as usize;
                let entry = serde_json::json!({
                    "kind": "retrieved",
                    "latitude": location["latitude"], "longitude": location["longitude"],
                    "photo": DATABASE_IMAGES[key], "places": places(key),
                });
                if (5..10).contains(&source["rank"].as_u64().unwrap()) {
                    negatives.push(entry.clone());
                }
                candidates.push(entry);
            }
            _ => candidates.push(serde_json::json!({
                "kind": "zero_shot",
                "latitude": location["latitude"], "longitude": location["longitude"],
            })),
        }
    }
    serde_json::json!({"query": query, "candidates": candidates, "negatives": negatives})
}

#[test]
fn fetched_georanker_scores_as_the_reference_and_picks_its_argmax() {
    let home = tempfile::tempdir().unwrap();
    let hub = serve_tiny_qwen2_vl();

    // Without the adapter: the base model is fetched, and the adapter's place is named.
    let (ok, _, stderr) = output(g3(home.path(), &hub.endpoint()).args(["fetch", "georanker"]));
    assert!(!ok, "{stderr}");
    for expected in [
        "Applied-Machine-Learning-Lab/GeoRanker",
        "checkpoints/adapter_model.safetensors",
        "c9d48d93bce2cb5b5edb4543efb350c51c8d7c43",
        "g3-cache/georanker",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let adapter = home.path().join("g3-cache/georanker");
    std::fs::create_dir_all(&adapter).unwrap();
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(tiny_georanker("adapter").join(file), adapter.join(file)).unwrap();
    }
    let (ok, _, stderr) = output(g3(home.path(), &hub.endpoint()).args(["fetch", "georanker"]));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("not GeoRanker's published one"),
        "the tiny adapter is told apart from the published one: {stderr}"
    );

    // Located from the caches alone (the hub is not asked again).
    drop(hub);
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let archive = home.path().join("mp16.tar");
    write_archive(&archive, &DATABASE_IMAGES);
    let config = write_config(home.path(), &server, &archive);
    let query = "landscape.jpg";
    let (ok, stdout, stderr) = output(
        g3(home.path(), "http://127.0.0.1:9")
            .args(["locate", "--json", "--no-place-names", "--config"])
            .arg(&config)
            .arg(fixture("images").join(query)),
    );
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let prediction = &report["predictions"][0];
    let pool = conversations(prediction, query);

    let spec_path = golden("e2e_conversations.json");
    if std::env::var_os("G3_WRITE_GEORANKER_SPEC").is_some() {
        // Regenerating the goldens: write the pool, then run tools/goldens/qwen2_vl.py.
        std::fs::create_dir_all(spec_path.parent().unwrap()).unwrap();
        std::fs::write(
            &spec_path,
            serde_json::to_string_pretty(&pool).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    assert_eq!(pool, spec, "the pool the reference scored");

    let bytes = std::fs::read(golden("e2e_rewards.npy")).unwrap();
    let expected = npyz::NpyFile::new(&bytes[..])
        .unwrap()
        .into_vec::<f32>()
        .unwrap();
    let candidates = prediction["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), expected.len());
    assert_eq!(candidates.len(), 15, "10 retrieved and 5 zero-shot");
    let scores: Vec<f32> = candidates
        .iter()
        .map(|candidate| candidate["score"].as_f64().unwrap() as f32)
        .collect();
    for (score, expected_reward) in scores.iter().zip(&expected) {
        assert!(
            (score - expected_reward).abs() < 1e-4,
            "rewards {scores:?} against the reference's {expected:?}"
        );
    }
    let best = expected
        .iter()
        .enumerate()
        .fold(0, |best, (index, reward)| {
            if *reward > expected[best] {
                index
            } else {
                best
            }
        });
    assert_eq!(prediction["chosen"].as_u64().unwrap() as usize, best);
}

#[test]
fn runs_of_g3_and_georanker_make_one_ablation_table() {
    let home = tempfile::tempdir().unwrap();
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let archive = home.path().join("mp16.tar");
    write_archive(&archive, &DATABASE_IMAGES);
    // The tiny model and adapter named in the config instead of found in the caches.
    let files = format!(
        "model = \"{}\"\nadapter = \"{}\"",
        tiny_georanker("model").display(),
        tiny_georanker("adapter").display()
    );
    let metadata = home.path().join("metadata.csv");
    std::fs::write(
        &metadata,
        "IMG_ID,LAT,LON\nlandscape.jpg,35.68,139.65\ncmyk.jpg,48.85,2.35\nrgb16.png,40.71,-74.0\n",
    )
    .unwrap();
    let mut results = Vec::new();
    for preset in ["g3", "georanker"] {
        let config = write_preset_config(home.path(), &server, &archive, preset, &files);
        let output_path = home.path().join(format!("results-{preset}.csv"));
        let (ok, _, stderr) = output(
            g3(home.path(), "http://127.0.0.1:9")
                .args(["run", "--dataset", "csv", "--config"])
                .arg(&config)
                .arg("--metadata")
                .arg(&metadata)
                .arg("--images")
                .arg(fixture("images"))
                .arg("--output")
                .arg(&output_path),
        );
        assert!(ok, "{preset}: {stderr}");
        let rows = std::fs::read_to_string(&output_path).unwrap();
        assert_eq!(rows.lines().count(), 4, "{preset}: {rows}");
        results.push(output_path);
    }
    let report = home.path().join("ablation.html");
    let (ok, _, stderr) = output(
        g3(home.path(), "http://127.0.0.1:9")
            .arg("report")
            .args(&results)
            .args([
                "--label",
                "G3",
                "--label",
                "GeoRanker",
                "--no-places",
                "--output",
            ])
            .arg(&report),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("2 runs: G3, GeoRanker"), "{stderr}");
    let html = std::fs::read_to_string(&report).unwrap();
    for expected in ["G3", "GeoRanker", "2500 km"] {
        assert!(html.contains(expected), "{expected} in the report");
    }
}

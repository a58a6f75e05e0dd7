//! `g3 locate` and `g3 run` on the tiny fixture models, a fixture database and the loopback
//! mock LMM: predictions with place names, a run that resumes after a kill without redoing
//! finished photos, and the messages for missing files.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use g3::align::ImageEmbeddingKind;
use g3::prompt::mock::{MockBehaviour, MockChatServer};
use support::{build_database, fixture};

fn g3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_g3"))
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the g3 binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A G3 pipeline over the tiny models and a database of the fixture photos, asking the
/// mock LMM.
fn write_config(directory: &Path, server: &MockChatServer) -> PathBuf {
    build_database(ImageEmbeddingKind::Database, &directory.join("g3.db"));
    let path = directory.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"
preset = "g3"
database = "g3.db"

[models]
clip = "{clip}"
g3_checkpoint = "{g3}"

[generation.generator]
kind = "openai"
base_url = "{url}"
model = "mock-lmm"
api_key_env = ""
"#,
            clip = fixture("model").display(),
            g3 = fixture("g3.pth").display(),
            url = server.base_url()
        ),
    )
    .unwrap();
    path
}

/// Seven photos in the fixture folder and one that is not there.
fn write_metadata(directory: &Path) -> PathBuf {
    let rows = [
        ("landscape.jpg", 48.85, 2.35),
        ("rgb16.png", 40.71, -74.0),
        ("cmyk.jpg", 35.68, 139.65),
        ("exact.png", -33.87, 151.21),
        ("missing.jpg", 0.0, 0.0),
        ("gray.png", 51.51, -0.13),
        ("portrait.png", 1.35, 103.82),
        ("upscale.jpg", 30.04, 31.24),
    ];
    let mut csv = String::from("IMG_ID,LAT,LON,scene\n");
    for (name, lat, lon) in rows {
        csv.push_str(&format!("{name},{lat},{lon},outdoor\n"));
    }
    let path = directory.join("metadata.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn run_command(config: &Path, metadata: &Path, output: &Path, batch: usize) -> Command {
    let mut command = g3();
    command
        .args([
            "run",
            "--dataset",
            "csv",
            "--batch",
            &batch.to_string(),
            "--config",
        ])
        .arg(config)
        .arg("--metadata")
        .arg(metadata)
        .arg("--images")
        .arg(fixture("images"))
        .arg("--output")
        .arg(output);
    command
}

/// The image ids of the results file, in order.
fn finished_ids(output: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(output).unwrap();
    reader
        .records()
        .map(|record| record.unwrap()[0].to_owned())
        .collect()
}

#[test]
fn locate_prints_predictions_with_place_names() {
    let directory = tempfile::tempdir().unwrap();
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let config = write_config(directory.path(), &server);
    let photos = [fixture("images/landscape.jpg"), fixture("images/cmyk.jpg")];
    let output = run(g3()
        .arg("locate")
        .arg("--config")
        .arg(&config)
        .args(&photos)
        .arg("--json"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let located: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let located = located.as_array().unwrap();
    assert_eq!(located.len(), 2);
    for entry in located {
        assert!(
            !entry["place"]["country"].as_str().unwrap().is_empty(),
            "{entry}"
        );
        let candidates = entry["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 21, "20 generated and the retrieved top 1");
        let chosen = entry["chosen"].as_u64().unwrap() as usize;
        assert_eq!(entry["location"], candidates[chosen]["location"]);
    }

    // The offline generator, with settings from the command line instead of a file.
    let output = run(g3()
        .args(["locate", "--preset", "g3", "--set"])
        .arg(format!("models.clip={}", fixture("model").display()))
        .arg("--set")
        .arg(format!(
            "models.g3_checkpoint={}",
            fixture("g3.pth").display()
        ))
        .arg("--db")
        .arg(directory.path().join("g3.db"))
        .arg(&photos[0]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("landscape.jpg: ") && stdout.contains("chosen: "),
        "{stdout}"
    );
}

#[test]
fn missing_models_and_database_are_named_with_how_to_get_them() {
    let empty = tempfile::tempdir().unwrap();
    let output = run(g3()
        .args(["locate", "--no-place-names", "--preset", "g3"])
        .arg(fixture("images/landscape.jpg"))
        .env("HF_HUB_CACHE", empty.path())
        .env("G3_CACHE_DIR", empty.path()));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("g3.pth") && stderr.contains("Jia-py/G3-checkpoint"),
        "{stderr}"
    );
    assert!(
        stderr.contains("database") && stderr.contains("g3 index build"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no prediction without the models");
}

#[test]
fn run_resumes_without_redoing_finished_photos() {
    let directory = tempfile::tempdir().unwrap();
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let config = write_config(directory.path(), &server);
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("results.csv");

    let first = run(run_command(&config, &metadata, &output, 2).args(["--limit", "3"]));
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(
        finished_ids(&output),
        ["landscape.jpg", "rgb16.png", "cmyk.jpg"]
    );
    let requests_per_photo = server.log().requests_received / 3;
    assert!(requests_per_photo > 0);

    let second = run(&mut run_command(&config, &metadata, &output, 2));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("3 of 8 photos already done"));
    let ids = finished_ids(&output);
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert_eq!(
        server.log().requests_received,
        7 * requests_per_photo,
        "finished photos are not asked again"
    );
    let errors = std::fs::read_to_string(directory.path().join("results.errors.csv")).unwrap();
    assert!(errors.contains("missing.jpg"), "{errors}");
    // The report of the whole file ends the run, and g3 eval reads the file as well.
    assert!(
        text(&second.stdout).contains("2500 km"),
        "{}",
        text(&second.stdout)
    );
    let plot = directory.path().join("errors.svg");
    let eval = run(g3()
        .args(["eval", "--predictions"])
        .arg(&output)
        .arg("--plot")
        .arg(&plot));
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("results.csv: 7 images") && svg.contains("2500 km: "));
}

#[test]
fn a_killed_run_resumes_where_it_stopped() {
    let directory = tempfile::tempdir().unwrap();
    let server = MockChatServer::start(MockBehaviour {
        latency: Duration::from_millis(150),
        ..MockBehaviour::default()
    })
    .unwrap();
    let config = write_config(directory.path(), &server);
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("results.csv");

    let mut child = run_command(&config, &metadata, &output, 1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let rows = std::fs::read_to_string(&output)
            .map(|text| text.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if rows >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never wrote two rows"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = finished_ids(&output);
    assert!(
        (2..7).contains(&done.len()),
        "killed too late to test anything: {done:?}"
    );
    let requests_before = server.log().requests_received;
    let per_photo = {
        // Every photo asks the same number of questions; measure it on one more photo.
        let probe = directory.path().join("probe.csv");
        let probe_run = run(run_command(&config, &metadata, &probe, 2).args(["--limit", "1"]));
        assert!(probe_run.status.success(), "{}", text(&probe_run.stderr));
        server.log().requests_received - requests_before
    };

    let resumed = run(&mut run_command(&config, &metadata, &output, 2));
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let ids = finished_ids(&output);
    assert_eq!(
        &ids[..done.len()],
        &done[..],
        "finished rows are kept as they were"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7, "every photo exactly once: {ids:?}");
    assert_eq!(
        server.log().requests_received - requests_before - per_photo,
        (7 - done.len()) * per_photo,
        "only the unfinished photos were asked about"
    );
}

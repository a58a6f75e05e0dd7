//! `g3 locate` and `g3 run` on the tiny fixture models, a fixture database and the loopback
//! mock LMM: predictions with place names, a run that resumes after a kill without redoing
//! finished photos, and the messages for missing files.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use g3::align::ImageEmbeddingKind;
use g3::prompt::mock::{InjectedFailure, MockBehaviour, MockChatServer};
use support::{build_database, fixture, write_archive};

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
    write_lmm_config(directory, &server.base_url(), "", "")
}

/// The same pipeline asking the LMM at `base_url`, with `generation` lines added to the
/// `[generation]` table and `generator` lines to `[generation.generator]`; retries are quick.
fn write_lmm_config(
    directory: &Path,
    base_url: &str,
    generation: &str,
    generator: &str,
) -> PathBuf {
    if !directory.join("g3.db").exists() {
        build_database(ImageEmbeddingKind::Database, &directory.join("g3.db"));
    }
    let generator = if generator.contains("api_key_env") {
        generator.to_owned()
    } else {
        format!("api_key_env = \"\"\n{generator}")
    };
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

[generation]
{generation}

[generation.generator]
kind = "openai"
base_url = "{base_url}"
model = "mock-lmm"
{generator}

[generation.generator.retry]
max_retries = 1
initial_backoff_ms = 1
max_backoff_ms = 2
"#,
            clip = fixture("model").display(),
            g3 = fixture("g3.pth").display(),
        ),
    )
    .unwrap();
    path
}

/// A loopback address where nothing listens: connections are refused.
fn dead_base_url() -> String {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{address}/v1")
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
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["generator"]["asks_model"], true, "{report}");
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    let usage = &report["generation"]["usage"];
    let log = server.log();
    assert_eq!(usage["prompt_tokens"], log.prompt_tokens, "{usage}");
    assert_eq!(usage["completion_tokens"], log.completion_tokens, "{usage}");
    assert_eq!(report["generation"]["answers_obtained"], 40);
    assert_eq!(report["generation"]["answers_lost"], 0);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("LMM usage:")
            && stderr.contains(&format!(
                "tokens:   {} prompt + {} completion",
                log.prompt_tokens, log.completion_tokens
            )),
        "the summary shows the server's token counts: {stderr}"
    );
    let located = report["predictions"].as_array().unwrap();
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
    let mut command = g3();
    command.arg("locate");
    offline_fixture_g3(&mut command, &directory.path().join("g3.db"));
    let output = run(command.arg(&photos[0]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("landscape.jpg: ") && stdout.contains("chosen: "),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.matches("no LMM was asked").count(),
        1,
        "one notice that the offline generator stood in: {stderr}"
    );
    assert!(!stderr.contains("LMM usage"), "{stderr}");
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
    let stderr = text(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(1),
        "missing.jpg has no prediction: {stderr}"
    );
    assert!(stderr.contains("3 of 8 photos already done"), "{stderr}");
    assert!(
        stderr.contains("1 photos failed") && stderr.contains("the photo could not be read"),
        "{stderr}"
    );
    let ids = finished_ids(&output);
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert_eq!(
        server.log().requests_received,
        7 * requests_per_photo,
        "finished photos are not asked again"
    );
    let errors = std::fs::read_to_string(directory.path().join("results.errors.csv")).unwrap();
    assert!(
        errors.starts_with("IMG_ID,reason,error\nmissing.jpg,"),
        "{errors}"
    );
    assert_eq!(errors.lines().count(), 2, "{errors}");
    // Both runs' LMM usage adds up to what the server served.
    let usage: serde_json::Value = serde_json::from_slice(
        &std::fs::read(directory.path().join("results.usage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(usage["runs"].as_array().unwrap().len(), 2);
    assert_eq!(
        usage["total"]["usage"]["prompt_tokens"],
        server.log().prompt_tokens
    );
    assert_eq!(
        usage["total"]["usage"]["completion_tokens"],
        server.log().completion_tokens
    );
    assert_eq!(usage["total"]["answers_obtained"], 7 * 20);
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
    assert_eq!(
        resumed.status.code(),
        Some(1),
        "only missing.jpg fails: {}",
        text(&resumed.stderr)
    );
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

/// The `IMG_ID, reason` pairs of an errors file.
fn error_rows(path: &Path) -> Vec<(String, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["IMG_ID", "reason", "error"]
    );
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            (record[0].to_owned(), record[1].to_owned())
        })
        .collect()
}

#[test]
fn a_server_that_is_down_fails_the_photos_and_stops_the_run() {
    let directory = tempfile::tempdir().unwrap();
    let config = write_lmm_config(directory.path(), &dead_base_url(), "", "");
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("results.csv");

    let first = run(&mut run_command(&config, &metadata, &output, 1));
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "stopped asking the LMM after 3 photos in a row failed because the LMM server is unreachable"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("5 photos were not sent"), "{stderr}");
    assert!(
        finished_ids(&output).is_empty(),
        "no row for a failed photo"
    );
    let errors = error_rows(&directory.path().join("results.errors.csv"));
    assert_eq!(
        errors,
        ["landscape.jpg", "rgb16.png", "cmyk.jpg"].map(|id| (
            id.to_owned(),
            "LMM answers lost: the LMM server is unreachable".to_owned()
        ))
    );
    assert!(
        !text(&first.stdout).contains("2500 km"),
        "no accuracy table without predictions"
    );

    // g3 locate: an error for each photo, no prediction, a non-zero exit.
    let located = run(g3()
        .args(["locate", "--no-place-names", "--config"])
        .arg(&config)
        .arg(fixture("images/landscape.jpg"))
        .arg(fixture("images/cmyk.jpg")));
    let stderr = text(&located.stderr);
    assert_eq!(located.status.code(), Some(1), "{stderr}");
    assert!(located.stdout.is_empty(), "{}", text(&located.stdout));
    for photo in ["landscape.jpg: error: ", "cmyk.jpg: error: "] {
        assert!(stderr.contains(photo), "{stderr}");
    }
    assert!(
        stderr.contains("0 of 20 LMM answers obtained, 20 needed: the LMM server is unreachable"),
        "{stderr}"
    );
}

#[test]
fn refused_credentials_stop_the_run_and_the_next_run_retries_those_photos() {
    let directory = tempfile::tempdir().unwrap();
    let server = MockChatServer::start(MockBehaviour {
        required_api_key: Some("sk-right".into()),
        ..MockBehaviour::default()
    })
    .unwrap();
    let config = write_lmm_config(
        directory.path(),
        &server.base_url(),
        "",
        "api_key_env = \"G3_TEST_MOCK_KEY\"",
    );
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("results.csv");

    let first =
        run(run_command(&config, &metadata, &output, 2).env("G3_TEST_MOCK_KEY", "sk-wrong"));
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the API key"), "{stderr}");
    assert!(!stderr.contains("sk-wrong"), "the key is never printed");
    assert!(finished_ids(&output).is_empty());
    let failed = error_rows(&directory.path().join("results.errors.csv"));
    assert_eq!(
        failed.len(),
        4,
        "two batches of two before the stop: {failed:?}"
    );
    assert_eq!(server.log().requests_answered, 0);

    let second =
        run(run_command(&config, &metadata, &output, 2).env("G3_TEST_MOCK_KEY", "sk-right"));
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert_eq!(finished_ids(&output).len(), 7);
    assert_eq!(
        server.log().requests_answered,
        7 * 4,
        "the seven readable photos, four prompts each, asked once"
    );
    assert_eq!(
        error_rows(&directory.path().join("results.errors.csv")),
        [(
            "missing.jpg".to_owned(),
            "the photo could not be read".to_owned()
        )],
        "the errors file lists the latest run's failures"
    );
}

#[test]
fn an_unknown_model_is_named_and_a_key_over_plain_http_is_warned_about() {
    let directory = tempfile::tempdir().unwrap();
    let server = MockChatServer::start(MockBehaviour {
        known_models: Some(vec!["llava".into()]),
        ..MockBehaviour::default()
    })
    .unwrap();
    // 0.0.0.0 reaches this machine on Linux, but is not a loopback name or address.
    let base_url = server.base_url().replace("127.0.0.1", "0.0.0.0");
    let config = write_lmm_config(
        directory.path(),
        &base_url,
        "",
        "api_key_env = \"G3_TEST_MOCK_KEY\"",
    );
    let located = run(g3()
        .args(["locate", "--no-place-names", "--config"])
        .arg(&config)
        .arg(fixture("images/landscape.jpg"))
        .arg(fixture("images/cmyk.jpg"))
        .env("G3_TEST_MOCK_KEY", "sk-test"));
    let stderr = text(&located.stderr);
    assert_eq!(located.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the LMM server does not know the endpoint or model")
            && stderr.contains("The model `mock-lmm` does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unencrypted to 0.0.0.0"),
        "the plain-http warning is shown: {stderr}"
    );
    assert_eq!(
        server.log().unknown_model,
        2 * 4,
        "a 404 is not retried: one request per prompt"
    );

    // With -q, no warning (errors still show).
    let quiet = run(g3()
        .args(["locate", "-q", "--no-place-names", "--config"])
        .arg(&config)
        .arg(fixture("images/landscape.jpg"))
        .env("G3_TEST_MOCK_KEY", "sk-test"));
    let stderr = text(&quiet.stderr);
    assert!(!stderr.contains("unencrypted"), "{stderr}");
    assert!(
        stderr.contains("error: 1 of 1 photos could not be located"),
        "{stderr}"
    );
}

#[test]
fn min_answers_accepts_partial_pools_and_records_what_was_lost() {
    let directory = tempfile::tempdir().unwrap();
    // Two of the five samples, then HTTP 500 for every later request.
    let failing = MockChatServer::start(MockBehaviour {
        max_choices: Some(2),
        stop_answering_after: Some(1),
        then_fail_with: Some(InjectedFailure::ServerError),
        ..MockBehaviour::default()
    })
    .unwrap();
    let one_prompt = "min_answers = 2\n\n[[generation.ensemble.prompts]]\nsimilar = 2\ndissimilar = 2\nsamples = 5";
    let config = write_lmm_config(directory.path(), &failing.base_url(), one_prompt, "");
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("results.csv");

    let first = run(run_command(&config, &metadata, &output, 1).args(["--limit", "3"]));
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    let mut reader = csv::Reader::from_path(&output).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "only the photo with two answers has a row");
    assert_eq!(&rows[0][0], "landscape.jpg");
    assert_eq!(&rows[0][9], "3", "three samples lost");
    let candidates: Vec<serde_json::Value> = serde_json::from_str(&rows[0][10]).unwrap();
    assert_eq!(candidates.len(), 3, "two generated and the retrieved top 1");
    assert_eq!(
        error_rows(&directory.path().join("results.errors.csv")),
        ["rgb16.png", "cmyk.jpg"].map(|id| (
            id.to_owned(),
            "LMM answers lost: the LMM server kept failing after every retry".to_owned()
        ))
    );
    assert!(
        !stderr.contains("stopped asking"),
        "failures that retries may fix never stop the run: {stderr}"
    );

    // The next run, against a server that works, asks exactly about the two failed photos.
    let healthy = MockChatServer::start(MockBehaviour::default()).unwrap();
    let config = write_lmm_config(directory.path(), &healthy.base_url(), one_prompt, "");
    let second = run(run_command(&config, &metadata, &output, 1).args(["--limit", "3"]));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(healthy.log().requests_received, 2);
    assert_eq!(
        finished_ids(&output),
        ["landscape.jpg", "rgb16.png", "cmyk.jpg"]
    );
    assert!(
        !directory.path().join("results.errors.csv").exists(),
        "a run without failures leaves no errors file"
    );
    let usage: serde_json::Value = serde_json::from_slice(
        &std::fs::read(directory.path().join("results.usage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(usage["total"]["answers_lost"], 3 + 5 + 5);
    assert_eq!(usage["total"]["lost_by_cause"]["retries-exhausted"], 13);
    assert_eq!(
        usage["total"]["usage"]["prompt_tokens"],
        failing.log().prompt_tokens + healthy.log().prompt_tokens
    );
}

#[test]
fn user_errors_print_as_messages_without_a_backtrace() {
    let empty = tempfile::tempdir().unwrap();
    let locate = |verbose: bool| {
        let mut command = g3();
        command
            .args(["locate", "--no-place-names", "--preset", "g3"])
            .arg(fixture("images/landscape.jpg"))
            .env("HF_HUB_CACHE", empty.path())
            .env("G3_CACHE_DIR", empty.path())
            .env("RUST_BACKTRACE", "1");
        if verbose {
            command.arg("-v");
        }
        run(&mut command)
    };
    let plain = locate(false);
    let stderr = text(&plain.stderr);
    assert_eq!(plain.status.code(), Some(1));
    assert!(
        stderr.starts_with("error: files the pipeline needs are missing"),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    let verbose = locate(true);
    assert!(
        text(&verbose.stderr).contains("backtrace:"),
        "-v shows where the error came from"
    );
}

/// G3 on the fixture models and `database`, with the offline generator, from the command
/// line instead of a file.
fn offline_fixture_g3(command: &mut Command, database: &Path) {
    command
        .args(["--preset", "g3", "--set"])
        .arg(format!("models.clip={}", fixture("model").display()))
        .arg("--set")
        .arg(format!(
            "models.g3_checkpoint={}",
            fixture("g3.pth").display()
        ))
        .arg("--db")
        .arg(database);
}

#[test]
fn locate_and_run_read_photos_from_an_archive_as_from_the_folder() {
    let directory = tempfile::tempdir().unwrap();
    let archive = directory.path().join("photos.tar");
    let names = [
        "landscape.jpg",
        "rgb16.png",
        "cmyk.jpg",
        "exact.png",
        "gray.png",
        "portrait.png",
        "upscale.jpg",
    ];
    write_archive(&archive, &names);
    let database = directory.path().join("g3.db");
    let offline = |command: &mut Command| offline_fixture_g3(command, &database);
    build_database(ImageEmbeddingKind::Database, &database);

    let mut from_folder = g3();
    from_folder
        .args(["locate", "--json", "--no-place-names"])
        .arg(fixture("images/landscape.jpg"));
    offline(&mut from_folder);
    let mut from_archive = g3();
    from_archive
        .args(["locate", "--json", "--no-place-names", "--archive"])
        .arg(&archive)
        .arg("landscape.jpg");
    offline(&mut from_archive);
    let (folder, archived) = (run(&mut from_folder), run(&mut from_archive));
    assert!(archived.status.success(), "{}", text(&archived.stderr));
    let prediction = |output: &Output| {
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut prediction = report["predictions"][0].clone();
        // Named by the path or by the archive id; everything else must agree.
        let fields = prediction.as_object_mut().unwrap();
        fields.remove("image");
        fields.remove("image_id");
        prediction
    };
    assert_eq!(prediction(&folder), prediction(&archived));

    // `g3 run` over the same metadata: the same rows from the archive as from the folder;
    // the photo absent from both fails the same way.
    let metadata = write_metadata(directory.path());
    let results = |source: &[&std::ffi::OsStr], output: &Path| {
        let mut command = g3();
        command
            .args(["run", "--dataset", "csv", "--metadata"])
            .arg(&metadata)
            .args(source)
            .arg("--output")
            .arg(output);
        offline(&mut command);
        // missing.jpg fails the run's status; every other photo has its row.
        let outcome = run(&mut command);
        assert!(
            text(&outcome.stderr).contains("1 of 8 photos have no prediction"),
            "{}",
            text(&outcome.stderr)
        );
        let mut reader = csv::Reader::from_path(output).unwrap();
        reader
            .records()
            .map(|record| {
                let record = record.unwrap();
                (
                    record[0].to_owned(),
                    record[1].to_owned(),
                    record[2].to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let images = fixture("images");
    let folder_rows = results(
        &["--images".as_ref(), images.as_os_str()],
        &directory.path().join("folder.csv"),
    );
    let archive_rows = results(
        &["--archive".as_ref(), archive.as_os_str()],
        &directory.path().join("archive.csv"),
    );
    assert_eq!(folder_rows.len(), 7);
    assert_eq!(folder_rows, archive_rows);
    let errors = std::fs::read_to_string(directory.path().join("archive.errors.csv")).unwrap();
    assert!(errors.contains("missing.jpg"), "{errors}");
}

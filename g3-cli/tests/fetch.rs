//! `g3 fetch g3` against a loopback HF hub serving tiny stand-ins under the real repository
//! ids (a G3-shaped `g3.pth`, a faiss `IndexFlatIP` written by faiss, an MP16-Pro-shaped CSV,
//! CLIP's settings), then a bare `g3 locate`: it finds everything in the HF cache and predicts
//! what the same pipeline configured by hand predicts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use g3::hub::Repo;
use g3::hub::mock::MockHub;
use g3::published;
use support::fixture;

fn hub_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hub")
        .join(name)
}

/// `g3` with an environment of its own: the HF cache under `hf_home`, the hub at `endpoint`.
fn g3(hf_home: &Path, endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_g3"));
    command
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    command
}

fn succeed(command: &mut Command) -> String {
    let output: Output = command.output().expect("the g3 binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr + &String::from_utf8_lossy(&output.stdout)
}

fn serve_published_files() -> MockHub {
    serve_published_files_with_index_at(&["index/g3.index"])
}

/// The published files, the index at each of `index_paths` in the checkpoint repository.
fn serve_published_files_with_index_at(index_paths: &[&str]) -> MockHub {
    let hub = MockHub::start().unwrap();
    let read = |path: PathBuf| std::fs::read(path).unwrap();
    let checkpoint = Repo::model(published::G3_CHECKPOINT_REPO).unwrap();
    hub.add_file(&checkpoint, "g3.pth", read(fixture("g3.pth")), true);
    hub.add_file(&checkpoint, "README.md", b"# G3".to_vec(), false);
    for path in index_paths {
        hub.add_file(&checkpoint, path, read(hub_fixture("g3.index")), true);
    }
    let dataset = Repo::dataset(published::MP16_PRO_REPO).unwrap();
    hub.add_file(
        &dataset,
        "MP16_Pro_filtered.csv",
        read(hub_fixture("MP16_Pro_filtered.csv")),
        false,
    );
    let clip = Repo::model(published::CLIP_REPO).unwrap();
    for file in published::CLIP_SETTINGS_FILES {
        hub.add_file(&clip, file, read(fixture("model").join(file)), false);
    }
    hub
}

/// The predictions of `g3 locate --json` (without the generator's description, which names
/// no file).
fn predictions(output: &str) -> serde_json::Value {
    let start = output.find('{').expect("JSON on stdout");
    let report: serde_json::Value = serde_json::from_str(&output[start..]).unwrap();
    report["predictions"].clone()
}

#[test]
fn fetched_g3_locates_like_the_same_pipeline_configured_by_hand() {
    let hub = serve_published_files();
    let directory = tempfile::tempdir().unwrap();
    let hf_home = directory.path().join("hf");
    let endpoint = hub.endpoint();

    let stderr = succeed(g3(&hf_home, &endpoint).args(["fetch", "g3"]));
    assert!(stderr.contains("G3 is ready"), "{stderr}");
    assert!(stderr.contains("index/g3.index downloaded"), "{stderr}");
    let commit = hub
        .commit(&Repo::model(published::G3_CHECKPOINT_REPO).unwrap())
        .unwrap();
    let snapshot = hf_home
        .join("hub/models--Jia-py--G3-checkpoint/snapshots")
        .join(&commit);
    assert!(snapshot.join("g3.pth").is_file());
    assert!(snapshot.join("index/g3-database/manifest.json").is_file());
    // The commit is shown and recorded.
    assert!(
        stderr.contains(&format!("main is commit {commit}")),
        "{stderr}"
    );
    let record = fetch_record(&snapshot);
    assert_eq!(record.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(record.index, "index/g3.index");
    assert!(
        hf_home
            .join("hub/datasets--Jia-py--MP16-Pro/refs/main")
            .is_file()
    );

    // Again: nothing downloaded, nothing imported.
    hub.clear_log();
    let stderr = succeed(g3(&hf_home, &endpoint).args(["fetch", "g3"]));
    assert!(stderr.contains("up to date"), "{stderr}");
    assert!(!stderr.contains("downloaded"), "{stderr}");
    // The listings (GET /api/…) and a HEAD per file: no body fetched.
    assert!(
        hub.log()
            .iter()
            .all(|request| request.method == "HEAD" || request.path.starts_with("/api/")),
        "{:?}",
        hub.log()
    );

    // A bare `g3 locate`, the hub gone: everything comes from the cache.
    let photo = fixture("images").join("landscape.jpg");
    let photo = photo.to_str().unwrap();
    drop(hub);
    let fetched = succeed(g3(&hf_home, "http://127.0.0.1:9").args(["locate", photo, "--json"]));
    // A fetch that cannot reach the hub keeps the cached files and says so.
    let stderr = succeed(g3(&hf_home, "http://127.0.0.1:9").args(["fetch", "g3"]));
    assert!(
        stderr.contains("cannot be reached") && stderr.contains("using the cached"),
        "{stderr}"
    );

    // By hand: the fixture files, and a database imported from the same index and CSV.
    let by_hand_db = directory.path().join("by-hand-db");
    succeed(
        g3(&directory.path().join("empty"), "http://127.0.0.1:9").args([
            "index",
            "import-faiss",
            "--faiss",
            hub_fixture("g3.index").to_str().unwrap(),
            "--metadata",
            hub_fixture("MP16_Pro_filtered.csv").to_str().unwrap(),
            "--output",
            by_hand_db.to_str().unwrap(),
            "--kind",
            "exact",
            "--dtype",
            "f16",
        ]),
    );
    let by_hand = succeed(
        g3(&directory.path().join("empty"), "http://127.0.0.1:9").args([
            "locate",
            photo,
            "--json",
            "--db",
            by_hand_db.to_str().unwrap(),
            "--set",
            &format!(
                "models.g3_checkpoint={:?}",
                fixture("g3.pth").to_str().unwrap()
            ),
            "--set",
            &format!("models.clip={:?}", fixture("model").to_str().unwrap()),
        ]),
    );
    let (fetched, by_hand) = (predictions(&fetched), predictions(&by_hand));
    assert_eq!(fetched, by_hand);
    assert_eq!(fetched.as_array().unwrap().len(), 1);
}

fn fetch_record(snapshot: &Path) -> published::FetchRecord {
    let text = std::fs::read(snapshot.join(published::FETCH_RECORD_FILE)).unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[test]
fn the_index_is_found_at_the_repositorys_root_and_two_indexes_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let checkpoint = Repo::model(published::G3_CHECKPOINT_REPO).unwrap();

    // At the root.
    let hub = serve_published_files_with_index_at(&["g3.index"]);
    let commit = hub.commit(&checkpoint).unwrap();
    let hf_home = directory.path().join("root");
    let stderr = succeed(g3(&hf_home, &hub.endpoint()).args(["fetch", "g3"]));
    assert!(stderr.contains("G3 is ready"), "{stderr}");
    let snapshot = hf_home
        .join("hub/models--Jia-py--G3-checkpoint/snapshots")
        .join(&commit);
    assert_eq!(fetch_record(&snapshot).index, "g3.index");
    assert!(snapshot.join("g3.index").is_file());
    assert!(snapshot.join("index/g3-database/manifest.json").is_file());
    // Pinned to the commit, from the cache: nothing downloaded.
    let stderr =
        succeed(g3(&hf_home, &hub.endpoint()).args(["fetch", "g3", "--revision", &commit]));
    assert!(stderr.contains("up to date"), "{stderr}");
    assert!(!stderr.contains("downloaded"), "{stderr}");
    drop(hub);

    // Two candidates: a refusal listing both, before any download.
    let hub = serve_published_files_with_index_at(&["index/g3.index", "old/g3-v0.index"]);
    let hf_home = directory.path().join("two");
    let output = g3(&hf_home, &hub.endpoint())
        .args(["fetch", "g3"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 files that could be the retrieval index")
            && stderr.contains("index/g3.index")
            && stderr.contains("old/g3-v0.index")
            && stderr.contains("--index-file"),
        "{stderr}"
    );
    assert!(
        hub.log()
            .iter()
            .all(|request| request.method != "GET" || request.path.starts_with("/api/"))
    );
    // Naming one settles it.
    let stderr = succeed(g3(&hf_home, &hub.endpoint()).args([
        "fetch",
        "g3",
        "--index-file",
        "old/g3-v0.index",
        "--no-database",
    ]));
    assert!(stderr.contains("old/g3-v0.index downloaded"), "{stderr}");

    // No index at all: what is missing, and the repository's files.
    let hub = serve_published_files_with_index_at(&[]);
    let output = g3(&directory.path().join("none"), &hub.endpoint())
        .args(["fetch", "g3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("has no retrieval index (a *.index file was looked for)")
            && stderr.contains("README.md, g3.pth"),
        "{stderr}"
    );
}

#[test]
fn without_the_files_locate_names_the_places_searched_and_the_fetch_command() {
    let directory = tempfile::tempdir().unwrap();
    let photo = fixture("images").join("landscape.jpg");
    let output = g3(&directory.path().join("hf"), "http://127.0.0.1:9")
        .args(["locate", photo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let cache = directory.path().join("hf/hub");
    assert!(stderr.contains(&cache.display().to_string()), "{stderr}");
    assert!(stderr.contains("g3 fetch g3"), "{stderr}");
    assert!(stderr.contains("index/g3-database"), "{stderr}");
    assert!(!stderr.contains("download` feature"), "{stderr}");

    // The help shows the photos as required.
    let help = g3(&directory.path().join("hf"), "http://127.0.0.1:9")
        .args(["locate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Usage: g3 locate [OPTIONS] <IMAGE>..."),
        "{help}"
    );

    // Offline, the fetch itself says what to download and where to put it.
    let output = g3(&directory.path().join("hf"), "http://127.0.0.1:9")
        .args(["fetch", "g3", "--offline"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("offline mode is on"), "{stderr}");
    assert!(stderr.contains("snapshots/local"), "{stderr}");
}

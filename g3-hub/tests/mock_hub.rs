//! The hub client against a loopback hub: the standard cache layout, no second download,
//! resumption with `Range`, corrupted bodies kept out of the cache, tokens, 404s, offline.

use std::path::Path;

use g3_hub::mock::MockHub;
use g3_hub::{HubCache, HubClient, HubError, HubSettings, Repo};

/// Deterministic bytes, larger than the client's 1 MiB read buffer.
fn payload(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

const WEIGHTS: &str = "g3.pth";
const CONFIG: &str = "config.json";
const INDEX: &str = "index/g3.index";

struct Fixture {
    hub: MockHub,
    cache: tempfile::TempDir,
    model: Repo,
    dataset: Repo,
    weights: Vec<u8>,
    index: Vec<u8>,
}

fn fixture() -> Fixture {
    let hub = MockHub::start().unwrap();
    let model = Repo::model("Jia-py/G3-checkpoint").unwrap();
    let dataset = Repo::dataset("Jia-py/MP16-Pro").unwrap();
    let weights = payload(3 << 20, 7);
    let index = payload((1 << 20) + 12_345, 3);
    hub.add_file(&model, WEIGHTS, weights.clone(), true);
    hub.add_file(&model, INDEX, index.clone(), true);
    hub.add_file(&model, CONFIG, br#"{"model_type": "clip"}"#.to_vec(), false);
    hub.add_file(
        &dataset,
        "MP16_Pro_filtered.csv",
        b"IMG_ID,LAT,LON\na,1,2\n".to_vec(),
        false,
    );
    Fixture {
        hub,
        cache: tempfile::tempdir().unwrap(),
        model,
        dataset,
        weights,
        index,
    }
}

impl Fixture {
    fn client(&self) -> HubClient {
        self.client_with(|_| {})
    }

    fn client_with(&self, change: impl FnOnce(&mut HubSettings)) -> HubClient {
        let mut settings = HubSettings {
            endpoint: self.hub.endpoint(),
            token: None,
            offline: false,
            cache: HubCache::new(self.cache.path()),
            retries: 3,
        };
        change(&mut settings);
        HubClient::new(settings)
    }

    fn fetch(
        &self,
        client: &HubClient,
        repo: &Repo,
        file: &str,
    ) -> g3_hub::Result<g3_hub::FetchedFile> {
        client.fetch(repo, file, &mut |_| {})
    }

    fn gets(&self) -> Vec<g3_hub::mock::LoggedRequest> {
        self.hub
            .log()
            .into_iter()
            .filter(|r| r.method == "GET")
            .collect()
    }
}

fn blobs(root: &Path, repo: &Repo) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(repo.cache_folder()).join("blobs"))
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn files_land_in_the_standard_layout_and_a_second_fetch_downloads_nothing() {
    let fixture = fixture();
    let client = fixture.client();
    let commit = fixture.hub.commit(&fixture.model).unwrap();
    let mut reports = 0;
    let weights = client
        .fetch(&fixture.model, WEIGHTS, &mut |progress| {
            assert_eq!(progress.total, 3 << 20);
            reports += 1;
        })
        .unwrap();
    assert!(reports >= 3, "one report per MiB at least, got {reports}");
    let index = fixture.fetch(&client, &fixture.model, INDEX).unwrap();
    let config = fixture.fetch(&client, &fixture.model, CONFIG).unwrap();
    let csv = fixture
        .fetch(&client, &fixture.dataset, "MP16_Pro_filtered.csv")
        .unwrap();

    let repo_dir = fixture.cache.path().join("models--Jia-py--G3-checkpoint");
    let snapshot = repo_dir.join("snapshots").join(&commit);
    assert_eq!(weights.path, snapshot.join(WEIGHTS));
    assert_eq!(index.path, snapshot.join(INDEX));
    assert_eq!(weights.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(weights.downloaded, 3 << 20);
    assert_eq!(std::fs::read(&weights.path).unwrap(), fixture.weights);
    assert_eq!(std::fs::read(&index.path).unwrap(), fixture.index);
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        commit
    );
    // Snapshots hold relative links into blobs/, named by the sha256 of LFS files.
    let link = std::fs::read_link(&weights.path).unwrap();
    assert!(link.starts_with("../../blobs"), "{}", link.display());
    let nested = std::fs::read_link(&index.path).unwrap();
    assert!(nested.starts_with("../../../blobs"), "{}", nested.display());
    let names = blobs(fixture.cache.path(), &fixture.model);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|name| !name.ends_with(".incomplete")));
    assert_eq!(config.size, 22);
    assert!(
        csv.path.starts_with(
            fixture
                .cache
                .path()
                .join("datasets--Jia-py--MP16-Pro/snapshots")
        )
    );

    fixture.hub.clear_log();
    for file in [WEIGHTS, INDEX, CONFIG] {
        let again = fixture.fetch(&client, &fixture.model, file).unwrap();
        assert_eq!(again.downloaded, 0, "{file}");
    }
    assert!(fixture.gets().is_empty(), "{:?}", fixture.gets());
    // Pinned to the commit, the cache answers without asking the hub at all.
    fixture.hub.clear_log();
    let pinned = fixture.model.clone().with_revision(&commit);
    assert_eq!(
        fixture.fetch(&client, &pinned, WEIGHTS).unwrap().path,
        weights.path
    );
    assert!(fixture.hub.log().is_empty());
}

#[test]
fn a_dropped_connection_is_resumed_with_range() {
    let fixture = fixture();
    fixture.hub.drop_connection(WEIGHTS, 1_500_000, 2);
    let fetched = fixture
        .fetch(&fixture.client(), &fixture.model, WEIGHTS)
        .unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), fixture.weights);
    assert_eq!(fetched.downloaded, 3 << 20, "no byte downloaded twice");
    let ranges: Vec<_> = fixture
        .gets()
        .into_iter()
        .filter(|request| request.path.starts_with("/cdn/"))
        .map(|request| request.range)
        .collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("bytes=1500000-".to_owned()),
            Some("bytes=3000000-".to_owned())
        ]
    );
}

#[test]
fn an_interrupted_fetch_keeps_its_bytes_and_the_next_run_resumes() {
    let fixture = fixture();
    fixture.hub.drop_connection(WEIGHTS, 2_000_000, 1);
    let impatient = fixture.client_with(|settings| settings.retries = 0);
    let error = fixture
        .fetch(&impatient, &fixture.model, WEIGHTS)
        .unwrap_err();
    assert!(matches!(error, HubError::Interrupted { .. }), "{error}");
    assert!(
        error.to_string().contains("run the same fetch again"),
        "{error}"
    );
    let names = blobs(fixture.cache.path(), &fixture.model);
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(".incomplete"));
    assert_eq!(
        fixture
            .hub
            .log()
            .iter()
            .filter(|r| r.method == "GET")
            .count(),
        2
    );

    fixture.hub.clear_log();
    let fetched = fixture.fetch(&impatient, &fixture.model, WEIGHTS).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), fixture.weights);
    assert_eq!(fetched.downloaded, (3 << 20) - 2_000_000);
    assert!(
        fixture
            .gets()
            .iter()
            .any(|request| request.range.as_deref() == Some("bytes=2000000-"))
    );
    assert_eq!(blobs(fixture.cache.path(), &fixture.model).len(), 1);
}

#[test]
fn a_corrupted_body_never_enters_the_cache() {
    let fixture = fixture();
    let client = fixture.client();
    for file in [WEIGHTS, CONFIG] {
        fixture.hub.corrupt(file, 1);
        let error = fixture.fetch(&client, &fixture.model, file).unwrap_err();
        assert!(matches!(error, HubError::Corrupt { .. }), "{file}: {error}");
        assert!(blobs(fixture.cache.path(), &fixture.model).is_empty());
        assert_eq!(
            fixture.client().cache().cached_file(&fixture.model, file),
            None
        );
        // The next fetch gets the good bytes.
        let fetched = fixture.fetch(&client, &fixture.model, file).unwrap();
        assert!(fetched.downloaded > 0);
        std::fs::remove_dir_all(fixture.cache.path().join(fixture.model.cache_folder())).unwrap();
    }
}

#[test]
fn a_gated_repository_needs_the_token() {
    let fixture = fixture();
    fixture.hub.require_token("hf_secret");
    let error = fixture
        .fetch(&fixture.client(), &fixture.model, WEIGHTS)
        .unwrap_err();
    assert!(
        matches!(error, HubError::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("HF_TOKEN"), "{error}");
    let wrong = fixture.client_with(|settings| settings.token = Some("hf_wrong".into()));
    let error = fixture.fetch(&wrong, &fixture.model, WEIGHTS).unwrap_err();
    assert!(
        error.to_string().contains("refused the one in HF_TOKEN"),
        "{error}"
    );

    fixture.hub.clear_log();
    let client = fixture.client_with(|settings| settings.token = Some("hf_secret".into()));
    let fetched = fixture.fetch(&client, &fixture.model, WEIGHTS).unwrap();
    assert_eq!(std::fs::read(fetched.path).unwrap(), fixture.weights);
    for request in fixture.hub.log() {
        // The token goes to the hub, never to the storage it redirects to.
        let to_hub = request.path.contains("/resolve/");
        assert_eq!(request.authorization.is_some(), to_hub, "{request:?}");
    }
}

#[test]
fn missing_files_and_repositories_are_named() {
    let fixture = fixture();
    let client = fixture.client();
    let error = fixture
        .fetch(&client, &fixture.model, "nope.bin")
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Jia-py/G3-checkpoint has no file nope.bin at main"),
        "{error}"
    );
    let missing = Repo::model("nobody/nothing").unwrap();
    let error = fixture.fetch(&client, &missing, WEIGHTS).unwrap_err();
    assert!(
        error.to_string().contains("no repository nobody/nothing"),
        "{error}"
    );
    let unknown = fixture.model.clone().with_revision("v9");
    let error = fixture.fetch(&client, &unknown, WEIGHTS).unwrap_err();
    assert!(error.to_string().contains("has no revision v9"), "{error}");
}

#[test]
fn offline_the_cache_answers_and_a_missing_file_says_where_to_put_it() {
    let fixture = fixture();
    fixture
        .fetch(&fixture.client(), &fixture.model, WEIGHTS)
        .unwrap();
    fixture.hub.clear_log();
    let offline = fixture.client_with(|settings| settings.offline = true);
    let cached = fixture.fetch(&offline, &fixture.model, WEIGHTS).unwrap();
    assert_eq!(cached.downloaded, 0);
    let error = fixture.fetch(&offline, &fixture.model, INDEX).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("offline mode is on"), "{message}");
    assert!(
        message.contains("/Jia-py/G3-checkpoint/resolve/main/index/g3.index"),
        "{message}"
    );
    let manual = offline.cache().manual_location(&fixture.model, INDEX);
    assert!(message.contains(&manual.display().to_string()), "{message}");
    assert!(fixture.hub.log().is_empty(), "offline never asks the hub");

    // A file placed there by hand is found.
    std::fs::create_dir_all(manual.parent().unwrap()).unwrap();
    std::fs::write(&manual, &fixture.index).unwrap();
    assert_eq!(
        fixture.fetch(&offline, &fixture.model, INDEX).unwrap().path,
        manual
    );
}

#[test]
fn an_unreachable_hub_is_an_error_unless_the_file_is_cached() {
    let fixture = fixture();
    fixture
        .fetch(&fixture.client(), &fixture.model, WEIGHTS)
        .unwrap();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable =
        fixture.client_with(|settings| settings.endpoint = format!("http://{closed}"));
    let cached = fixture
        .fetch(&unreachable, &fixture.model, WEIGHTS)
        .unwrap();
    assert_eq!(std::fs::read(cached.path).unwrap(), fixture.weights);
    let error = fixture
        .fetch(&unreachable, &fixture.model, INDEX)
        .unwrap_err();
    assert!(error.to_string().contains("cannot be reached"), "{error}");
}

#[test]
fn the_listing_names_every_file_at_the_revisions_commit() {
    let fixture = fixture();
    let client = fixture.client();
    let commit = fixture.hub.commit(&fixture.model).unwrap();
    let listing = client.list_files(&fixture.model).unwrap();
    assert_eq!(listing.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(listing.files, [CONFIG, WEIGHTS, INDEX]);
    assert_eq!(listing.source, g3_hub::ListingSource::Hub);
    assert_eq!(listing.with_extension("index"), [INDEX]);
    // The commit is recorded as the revision's ref, as a download records it.
    assert_eq!(
        HubCache::new(fixture.cache.path()).commit(&fixture.model),
        Some(commit.clone())
    );
    // A dataset, and the commit itself as the revision.
    let dataset = client.list_files(&fixture.dataset).unwrap();
    assert_eq!(dataset.files, ["MP16_Pro_filtered.csv"]);
    let pinned = client
        .list_files(&fixture.model.clone().with_revision(&commit))
        .unwrap();
    assert_eq!(pinned.files, listing.files);
    // No such revision or repository.
    let error = client
        .list_files(&fixture.model.clone().with_revision("v9"))
        .unwrap_err();
    assert!(error.to_string().contains("has no revision v9"), "{error}");
    let error = client
        .list_files(&Repo::model("nobody/nothing").unwrap())
        .unwrap_err();
    assert!(error.to_string().contains("no repository"), "{error}");
}

#[test]
fn offline_the_cached_snapshot_is_listed_or_the_error_says_where_files_go() {
    let fixture = fixture();
    let offline = fixture.client_with(|settings| settings.offline = true);
    let error = offline.list_files(&fixture.model).unwrap_err().to_string();
    assert!(
        error.contains("offline") && error.contains("snapshots/local"),
        "{error}"
    );
    // After one fetch, the snapshot answers offline and with the hub unreachable.
    fixture
        .fetch(&fixture.client(), &fixture.model, INDEX)
        .unwrap();
    let commit = fixture.hub.commit(&fixture.model).unwrap();
    let listing = offline.list_files(&fixture.model).unwrap();
    assert_eq!(listing.files, [INDEX]);
    assert_eq!(listing.commit, Some(commit));
    assert_eq!(listing.source, g3_hub::ListingSource::Cache);
    let unreachable =
        fixture.client_with(|settings| settings.endpoint = "http://127.0.0.1:9".into());
    assert_eq!(
        unreachable.list_files(&fixture.model).unwrap().files,
        [INDEX]
    );
}

//! Pinned packages from a loopback package index: wheels and source archives extracted in
//! Rust, a dropped connection resumed, a corrupted download refused and fetched again, a
//! package re-uploaded under another digest refused, a second fetch downloading nothing.

use std::io::Write;

use g3_hub::mock::MockHub;
use g3_hub::{ArchiveKind, HubError, PackageIndexClient, PackageIndexSettings, PinnedPackage};
use sha2::Digest;

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A wheel holding `files` (path, bytes), deflated.
fn wheel(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, bytes) in files {
        zip.start_file(
            *path,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A source archive `{top}/…` holding `files`.
fn source_archive(top: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(encoder);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{top}/{path}"), *bytes)
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn client(hub: &MockHub) -> PackageIndexClient {
    PackageIndexClient::new(PackageIndexSettings {
        index_url: hub.package_index(),
        retries: 3,
    })
}

/// Large enough for several reads and a drop in the middle; incompressible (xorshift), so
/// the wheel is as large.
fn weights() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..3_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn geoclip_like(hub: &MockHub) -> PinnedPackage {
    let archive = wheel(&[
        ("tiny_geo/weights/encoder.pth", &weights()),
        ("tiny_geo/gallery.csv", b"LAT,LON\n1,2\n"),
        ("tiny_geo-1.0.dist-info/LICENSE", b"MIT"),
    ]);
    let pinned = PinnedPackage {
        name: "tiny_geo".into(),
        version: "1.0".into(),
        sha256: sha256(&archive),
        kind: ArchiveKind::Wheel,
        directory: "tiny_geo-1.0".into(),
        members: vec![
            "tiny_geo/weights/encoder.pth".into(),
            "tiny_geo/gallery.csv".into(),
        ],
    };
    hub.add_package_file("tiny-geo", "tiny_geo-1.0-py3-none-any.whl", archive);
    pinned
}

#[test]
fn a_wheel_is_fetched_verified_extracted_and_then_found_in_the_cache() {
    let hub = MockHub::start().unwrap();
    let package = geoclip_like(&hub);
    let cache = tempfile::tempdir().unwrap();
    let client = client(&hub);
    let mut reports = 0;
    let fetched = client
        .fetch(&package, cache.path(), &mut |_| reports += 1)
        .unwrap();
    assert!(reports > 0);
    assert!(fetched.downloaded > 3_000_000);
    let directory = cache.path().join("tiny_geo-1.0");
    assert_eq!(
        std::fs::read(directory.join("encoder.pth")).unwrap(),
        weights()
    );
    assert_eq!(
        std::fs::read_to_string(directory.join("gallery.csv")).unwrap(),
        "LAT,LON\n1,2\n"
    );
    // Only what was asked for, stamped as sha256sum writes it; no archive left behind.
    let stamp = std::fs::read_to_string(directory.join(".fetched-tiny_geo-1.0")).unwrap();
    assert!(
        stamp.contains(&format!("{}  encoder.pth", sha256(&weights()))),
        "{stamp}"
    );
    assert!(!directory.join("LICENSE").exists());
    assert_eq!(
        std::fs::read_dir(cache.path().join(".downloads"))
            .unwrap()
            .count(),
        0
    );

    // Again: nothing requested beyond nothing at all.
    hub.clear_log();
    let again = client.fetch(&package, cache.path(), &mut |_| {}).unwrap();
    assert_eq!(again.downloaded, 0);
    assert!(hub.log().is_empty(), "{:?}", hub.log());

    // A cached file changed on disk: the stamp no longer verifies, so it is fetched again.
    std::fs::write(directory.join("gallery.csv"), b"edited").unwrap();
    let repaired = client.fetch(&package, cache.path(), &mut |_| {}).unwrap();
    assert!(repaired.downloaded > 0);
    assert_eq!(
        std::fs::read_to_string(directory.join("gallery.csv")).unwrap(),
        "LAT,LON\n1,2\n"
    );
}

#[test]
fn a_dropped_connection_resumes_and_a_corrupted_download_is_refused_and_fetched_again() {
    let hub = MockHub::start().unwrap();
    let package = geoclip_like(&hub);
    let filename = "tiny_geo-1.0-py3-none-any.whl";
    hub.drop_connection(filename, 1_000_000, 1);
    hub.corrupt(filename, 1);
    let cache = tempfile::tempdir().unwrap();
    let fetched = client(&hub)
        .fetch(&package, cache.path(), &mut |_| {})
        .unwrap();
    assert_eq!(fetched.refused_downloads, 1);
    assert_eq!(
        std::fs::read(cache.path().join("tiny_geo-1.0/encoder.pth")).unwrap(),
        weights()
    );
    let gets: Vec<_> = hub
        .log()
        .into_iter()
        .filter(|request| request.path.starts_with("/packages/"))
        .collect();
    // Dropped after 1 MB, resumed from there (and corrupted), refused, fetched whole.
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[1].range.as_deref(), Some("bytes=1000000-"));
    assert_eq!(gets[2].range, None);

    // Corrupted every time: an error, and nothing in the cache.
    let hub = MockHub::start().unwrap();
    let package = geoclip_like(&hub);
    hub.corrupt(filename, 10);
    let cache = tempfile::tempdir().unwrap();
    let error = client(&hub)
        .fetch(&package, cache.path(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(error, HubError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains(&package.sha256), "{error}");
    assert!(!cache.path().join("tiny_geo-1.0").exists());
}

#[test]
fn source_archives_are_extracted_below_their_top_directory() {
    let hub = MockHub::start().unwrap();
    let archive = source_archive(
        "rg-1.5.1",
        &[("rg/cities.csv", b"lat,lon\n"), ("README.txt", b"readme")],
    );
    let package = PinnedPackage {
        name: "rg".into(),
        version: "1.5.1".into(),
        sha256: sha256(&archive),
        kind: ArchiveKind::SourceArchive,
        directory: "rg-1.5.1".into(),
        members: vec!["rg/cities.csv".into(), "README.txt".into()],
    };
    hub.add_package_file("rg", "rg-1.5.1.tar.gz", archive);
    let cache = tempfile::tempdir().unwrap();
    client(&hub)
        .fetch(&package, cache.path(), &mut |_| {})
        .unwrap();
    assert_eq!(
        std::fs::read(cache.path().join("rg-1.5.1/cities.csv")).unwrap(),
        b"lat,lon\n"
    );
    // A member the archive lacks is named.
    let missing = PinnedPackage {
        members: vec!["rg/absent.csv".into()],
        directory: "rg-other".into(),
        ..package
    };
    let error = client(&hub)
        .fetch(&missing, cache.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(error.contains("no member rg/absent.csv"), "{error}");
}

#[test]
fn a_package_with_another_digest_is_refused_and_an_unknown_project_named() {
    let hub = MockHub::start().unwrap();
    let mut package = geoclip_like(&hub);
    package.sha256 = "0".repeat(64);
    let cache = tempfile::tempdir().unwrap();
    let error = client(&hub)
        .fetch(&package, cache.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no file of tiny_geo==1.0 has the pinned sha256")
            && error.contains("tiny_geo-1.0-py3-none-any.whl"),
        "{error}"
    );
    package.name = "absent".into();
    let error = client(&hub)
        .fetch(&package, cache.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(error.contains("no project absent"), "{error}");
}

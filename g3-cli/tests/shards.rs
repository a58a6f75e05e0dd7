//! MP16-Pro at scale, in miniature: photos read in place from a tar archive in the reference's
//! layout (`a/b/IMG_ID` members), embedded as one shard and as three shards run at once,
//! then built into databases that must be identical; a shard killed mid-way resumes; a
//! missing shard is named; a duplicate id is refused when asked for, never guessed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("g3-align/tests/fixtures/clip")
        .join(name)
}

/// Small fixture photos (the 4032 × 3024 one would only slow the test down).
const PHOTOS: [&str; 8] = [
    "cmyk.jpg",
    "exact.png",
    "gray.png",
    "landscape.jpg",
    "lossless.webp",
    "palette.gif",
    "portrait.png",
    "upscale.jpg",
];
const COUNT: usize = 240;

fn id(index: usize) -> String {
    let photo = PHOTOS[index % PHOTOS.len()];
    let extension = photo.rsplit('.').next().unwrap();
    format!("{index:05}.{extension}")
}

fn append(builder: &mut tar::Builder<std::fs::File>, name: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, bytes).unwrap();
}

/// `COUNT` photos under `a/b/IMG_ID` names, one undecodable photo, and two members with one
/// id (`stray.jpg`); a metadata CSV in MP16-Pro's shape listing every other id once, the
/// undecodable one included.
fn write_dataset(directory: &Path) -> (PathBuf, PathBuf) {
    let archive = directory.join("mp-16-images.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let photos: Vec<Vec<u8>> = PHOTOS
        .iter()
        .map(|name| std::fs::read(fixture("images").join(name)).unwrap())
        .collect();
    let mut metadata = String::from("IMG_ID,LAT,LON,city\n");
    for index in 0..COUNT {
        let name = id(index);
        append(
            &mut builder,
            &format!("{:02x}/{:02x}/{name}", index % 7, index % 5),
            &photos[index % PHOTOS.len()],
        );
        // A WebDataset-style companion member: not a photo, left out.
        if index % 50 == 0 {
            append(
                &mut builder,
                &format!("{:02x}/{:02x}/{index:05}.json", index % 7, index % 5),
                b"{}",
            );
        }
        metadata.push_str(&format!(
            "{name},{},{},City {}\n",
            index as f64 % 80.0,
            index as f64 % 170.0,
            index % 9
        ));
        if index == 100 {
            append(&mut builder, "0f/0f/broken.jpg", b"\xFF\xD8\xFF not a jpeg");
            metadata.push_str("broken.jpg,1.5,2.5,Nowhere\n");
        }
    }
    append(&mut builder, "ee/ee/stray.jpg", &photos[0]);
    append(&mut builder, "ff/ff/stray.jpg", &photos[1]);
    builder.finish().unwrap();
    let list = directory.join("MP16_Pro_filtered.csv");
    std::fs::write(&list, metadata).unwrap();
    (archive, list)
}

fn embed(archive: &Path, list: Option<&Path>, output: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_g3"));
    command
        .args(["embed-images", "--model"])
        .arg(fixture("g3.pth"))
        .arg("--clip-config")
        .arg(fixture("model/config.json"))
        .arg("--preprocessor-config")
        .arg(fixture("model/preprocessor_config.json"))
        .args([
            "--kind",
            "database",
            "--batch",
            "8",
            "--skip-bad",
            "--archive",
        ])
        .arg(archive)
        .arg("--output")
        .arg(output)
        .args(extra)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX");
    if let Some(list) = list {
        command.arg("--input").arg(list);
    }
    command
}

fn succeed(command: &mut Command) -> String {
    let output: Output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn build(embeddings: &[&Path], list: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_g3"))
        .args([
            "index",
            "build",
            "--kind",
            "exact",
            "--id-column",
            "IMG_ID",
            "--embeddings",
        ])
        .args(embeddings)
        .arg("--metadata")
        .arg(list)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

fn manifest(database: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(database.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn one_shard_and_three_concurrent_shards_build_the_same_database() {
    let directory = tempfile::tempdir().unwrap();
    let (archive, list) = write_dataset(directory.path());

    // One process, one file.
    let single = directory.path().join("single.npy");
    let stderr = succeed(&mut embed(&archive, Some(&list), &single, &[]));
    assert!(stderr.contains(&format!("[{COUNT} x 72]")), "{stderr}");
    assert!(stderr.contains("skipped 1"), "{stderr}");
    assert!(
        directory.path().join("mp-16-images.tar.g3-index").is_file(),
        "the archive's index is saved beside it"
    );

    // Three shards at once, as a job array would run them.
    let parts = directory.path().join("parts");
    let children: Vec<_> = (0..3)
        .map(|shard| {
            embed(
                &archive,
                Some(&list),
                &parts,
                &["--shard", &format!("{shard}/3")],
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for shard in 0..3 {
        assert!(parts.join(format!("part-{shard}-of-3.json")).is_file());
        assert!(
            !parts.join(format!(".part-{shard}-of-3")).exists(),
            "blocks are cleaned up"
        );
    }
    let skipped = std::fs::read_to_string(parts.join("part-1-of-3.skipped.csv")).unwrap();
    assert!(skipped.contains("broken.jpg"), "{skipped}");

    let (one, three) = (
        directory.path().join("db-one"),
        directory.path().join("db-three"),
    );
    let output = build(&[&single], &list, &one);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 metadata rows have no embedding"),
        "{stderr}"
    );
    let output = build(&[&parts], &list, &three);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Same files, byte for byte (the manifest holds every file's digest).
    assert_eq!(manifest(&one), manifest(&three));
    assert_eq!(manifest(&one)["count"], COUNT);

    // A missing part is named, with the command that makes it.
    let two_of_three = [parts.join("part-0-of-3.npy"), parts.join("part-2-of-3.npy")];
    let output = build(
        &[&two_of_three[0], &two_of_three[1]],
        &list,
        &directory.path().join("db-partial"),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing 1 of 3 parts: part-1-of-3"),
        "{stderr}"
    );
    assert!(stderr.contains("--shard I/3"), "{stderr}");
    // And a part given twice.
    let output = build(
        &[
            &two_of_three[0],
            &two_of_three[0],
            &parts.join("part-1-of-3.npy"),
            &two_of_three[1],
        ],
        &list,
        &directory.path().join("db-twice"),
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is given twice"));
}

#[test]
fn a_killed_shard_resumes_after_its_last_finished_block() {
    let directory = tempfile::tempdir().unwrap();
    let (archive, list) = write_dataset(directory.path());
    let parts = directory.path().join("parts");
    let blocks = parts.join(".part-0-of-2");
    let arguments = ["--shard", "0/2", "--block-photos", "16"];

    let mut child = embed(&archive, Some(&list), &parts, &arguments)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !blocks.join("block-1.rows.csv").is_file() {
        assert!(Instant::now() < deadline, "no block finished in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the shard finished before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!parts.join("part-0-of-2.json").exists());

    let stderr = succeed(&mut embed(&archive, Some(&list), &parts, &arguments));
    assert!(stderr.contains("resumed part-0-of-2"), "{stderr}");
    // The resumed part equals one embedded in a single go.
    let fresh = directory.path().join("fresh");
    succeed(&mut embed(
        &archive,
        Some(&list),
        &fresh,
        &["--shard", "0/2"],
    ));
    for file in ["part-0-of-2.npy", "part-0-of-2.rows.csv"] {
        assert_eq!(
            std::fs::read(parts.join(file)).unwrap(),
            std::fs::read(fresh.join(file)).unwrap(),
            "{file}"
        );
    }
    // A finished part is not redone.
    let stderr = succeed(&mut embed(&archive, Some(&list), &parts, &arguments));
    assert!(stderr.contains("already complete"), "{stderr}");
}

#[test]
fn a_duplicate_id_is_refused_naming_both_members() {
    // The whole archive, in archive order: stray.jpg cannot be told apart. (The metadata
    // list of the other tests does not name it, so they embed the same archive fine.)
    let directory = tempfile::tempdir().unwrap();
    let (archive, _) = write_dataset(directory.path());
    let output = embed(&archive, None, &directory.path().join("all.npy"), &[])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stray.jpg"), "{stderr}");
    assert!(stderr.contains("more than one archive member"), "{stderr}");
    assert!(stderr.contains("mp-16-images.tar at byte"), "{stderr}");
}

#[test]
fn a_slurm_array_task_picks_its_shard() {
    let directory = tempfile::tempdir().unwrap();
    let (archive, list) = write_dataset(directory.path());
    let parts = directory.path().join("parts");
    // Slurm arrays often count from 1: task 2 of 1-4 is shard 1 of 4.
    let stderr = succeed(
        embed(&archive, Some(&list), &parts, &[])
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "4"),
    );
    assert!(stderr.contains("part-1-of-4.npy"), "{stderr}");
    // A Kubernetes Indexed Job gives the index only: the count comes from --shards.
    let output = embed(&archive, Some(&list), &parts, &[])
        .env("JOB_COMPLETION_INDEX", "3")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--shards N"));
    let stderr = succeed(
        embed(&archive, Some(&list), &parts, &["--shards", "4"]).env("JOB_COMPLETION_INDEX", "3"),
    );
    assert!(stderr.contains("part-3-of-4.npy"), "{stderr}");
}

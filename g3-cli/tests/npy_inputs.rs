//! Every command that reads an `.npy` matrix refuses a corrupted header the same way: an error
//! naming the file, no panic (one reader, `g3_core::npy`, serves them all).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn g3(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(arguments)
        .output()
        .expect("the g3 binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An `.npy` file whose header declares `shape` over `values` float32 values.
fn npy(path: &Path, shape: &str, values: &[f32]) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for value in values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Four 2-d vectors at four places, as a database.
fn database(directory: &Path) -> PathBuf {
    let vectors = directory.join("vectors.npy");
    npy(
        &vectors,
        "(4, 2)",
        &[1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0],
    );
    let metadata = directory.join("metadata.csv");
    std::fs::write(&metadata, "LAT,LON\n1,1\n2,2\n3,3\n4,4\n").unwrap();
    let database = directory.join("db");
    let built = g3(&[
        "index",
        "build",
        "--kind",
        "exact",
        "--embeddings",
        vectors.to_str().unwrap(),
        "--metadata",
        metadata.to_str().unwrap(),
        "--output",
        database.to_str().unwrap(),
    ]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    database
}

#[test]
fn an_overflowing_shape_is_an_error_naming_the_file_in_every_command() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(directory.path());
    let bad = directory.path().join("overflowing.npy");
    // 2^62 × 4 values: the element count overflows 64 bits.
    npy(&bad, "(4611686018427387904, 4)", &[0.5; 8]);
    let bad = bad.to_str().unwrap();
    let locations = directory.path().join("metadata.csv");
    let train_config = directory.path().join("train.toml");
    std::fs::write(
        &train_config,
        format!(
            "image_features = {bad:?}\nlocations = {:?}\noutput = {:?}\nlocation_encoder = \"fresh\"\n",
            locations.to_str().unwrap(),
            directory.path().join("run").to_str().unwrap()
        ),
    )
    .unwrap();
    let other_database = directory.path().join("other-db");
    let neighbours = directory.path().join("neighbours.csv");
    let commands: [Vec<&str>; 4] = [
        vec![
            "index",
            "build",
            "--embeddings",
            bad,
            "--metadata",
            locations.to_str().unwrap(),
            "--output",
            other_database.to_str().unwrap(),
        ],
        vec![
            "index",
            "search",
            "--db",
            database.to_str().unwrap(),
            "--queries",
            bad,
            "--output",
            neighbours.to_str().unwrap(),
        ],
        vec![
            "retrieval-stats",
            "--db",
            database.to_str().unwrap(),
            "--queries",
            bad,
            "--locations",
            locations.to_str().unwrap(),
        ],
        vec!["train", "--config", train_config.to_str().unwrap()],
    ];
    for command in commands {
        let output = g3(&command);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains("overflowing.npy") && stderr.contains("64 bits"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
    }
}

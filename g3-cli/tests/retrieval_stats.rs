//! `g3 retrieval-stats` on a database of the fixture photos, queried with photos it holds.

mod support;

use std::process::Command;

use g3::EmbeddingFileWriter;
use g3::align::ImageEmbeddingKind;
use g3::core::ImageEmbedder;
use support::{DATABASE_IMAGES, build_database, database_locations, g3_encoder, images};

#[test]
fn queries_found_in_the_database_retrieve_themselves_first() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("g3.db");
    build_database(ImageEmbeddingKind::Database, &database);
    // Three database photos as queries, at their database locations.
    let picked = [0, 3, 7];
    let names: Vec<&str> = picked.iter().map(|&i| DATABASE_IMAGES[i]).collect();
    let queries = g3_encoder(ImageEmbeddingKind::Database)
        .embed_images(&images(&names))
        .unwrap();
    let queries_path = directory.path().join("queries.npy");
    let mut writer =
        EmbeddingFileWriter::create(&queries_path, queries.len(), queries.dimension()).unwrap();
    writer.write(&queries).unwrap();
    writer.finish().unwrap();
    let mut csv = String::from("IMG_ID,LAT,LON\n");
    for (&index, name) in picked.iter().zip(&names) {
        let location = database_locations()[index];
        csv.push_str(&format!(
            "{name},{},{}\n",
            location.lat_deg(),
            location.lon_deg()
        ));
    }
    let locations = directory.path().join("queries.csv");
    std::fs::write(&locations, csv).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(["retrieval-stats", "--k", "1,5", "--json", "--db"])
        .arg(&database)
        .arg("--queries")
        .arg(&queries_path)
        .arg("--locations")
        .arg(&locations)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let row = |k: usize, field: &str| table[k][field].as_f64().unwrap();
    assert_eq!(table[0]["k"], 1);
    assert_eq!(table[0]["queries"], 3);
    for field in ["average_km", "median_km", "max_km", "min_km"] {
        assert!(
            row(0, field).abs() < 1e-6,
            "the top 1 is the photo itself: {table}"
        );
    }
    assert!(
        row(1, "min_km") > 0.0 && row(1, "max_km") >= row(1, "median_km"),
        "{table}"
    );

    let mismatch = Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(["retrieval-stats", "--db"])
        .arg(&database)
        .arg("--queries")
        .arg(&queries_path)
        .arg("--locations")
        .arg(support::fixture("images.csv"))
        .output()
        .unwrap();
    assert!(!mismatch.status.success());
    let stderr = String::from_utf8_lossy(&mismatch.stderr);
    assert!(
        stderr.contains("images.csv") && stderr.contains("LAT"),
        "{stderr}"
    );
}

//! Databases written a chunk at a time, and opening them by their verification stamp.

mod common;

use std::path::Path;

use common::unit_vectors;
use g3_core::{Embeddings, GeoPoint, SearchDirection, VectorStore};
use g3_index::{
    Database, DatabaseWriter, EntryMetadataBuilder, IndexError, Metric, StoreConfig, StoreKind,
    VectorPrecision,
};

const COUNT: usize = 300;
const DIMENSION: usize = 24;

fn entry(row: usize) -> (u64, GeoPoint, [String; 2]) {
    let location = GeoPoint::new(-60.0 + (row % 120) as f64, -179.0 + (row % 358) as f64).unwrap();
    let city = if row.is_multiple_of(3) { "Zürich" } else { "" };
    (
        500 + row as u64,
        location,
        [format!("img_{row}.jpg"), city.to_owned()],
    )
}

fn text_columns() -> Vec<String> {
    vec!["IMG_ID".into(), "city".into()]
}

/// The same rows through `Database::build` and `save`.
fn built_in_memory(vectors: &[f32], config: &StoreConfig, path: &Path) {
    let mut builder = EntryMetadataBuilder::new(text_columns());
    for row in 0..COUNT {
        let (key, location, [id, city]) = entry(row);
        builder.push(key, location, &[&id, &city]).unwrap();
    }
    let database = Database::build(
        Embeddings::new(DIMENSION, vectors.to_vec()).unwrap(),
        builder.build().unwrap(),
        config,
        &|_| {},
    )
    .unwrap();
    database.save(path).unwrap();
}

/// Vectors in chunks of 64 and entries one by one, interleaved.
fn streamed(vectors: &[f32], config: &StoreConfig, path: &Path) {
    let mut writer = DatabaseWriter::create(path, DIMENSION, config, text_columns()).unwrap();
    for (chunk_index, chunk) in vectors.chunks(64 * DIMENSION).enumerate() {
        writer.add_vectors(chunk).unwrap();
        for row in chunk_index * 64..(chunk_index * 64 + chunk.len() / DIMENSION) {
            let (key, location, [id, city]) = entry(row);
            writer.add_entry(key, location, &[&id, &city]).unwrap();
        }
    }
    assert_eq!(writer.vectors_added(), COUNT);
    assert_eq!(writer.entries_added(), COUNT);
    writer.finish().unwrap();
}

fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn a_streamed_database_is_the_database_built_in_memory() {
    let vectors = unit_vectors(COUNT, DIMENSION, 9);
    let queries = Embeddings::new(DIMENSION, unit_vectors(5, DIMENSION, 77)).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let configs = [
        StoreConfig::exact(Metric::InnerProduct),
        StoreConfig::exact(Metric::Cosine),
        StoreConfig {
            precision: VectorPrecision::F16,
            ..StoreConfig::exact(Metric::InnerProduct)
        },
        StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::F16),
    ];
    for (index, config) in configs.iter().enumerate() {
        let memory = directory.path().join(format!("memory-{index}"));
        let stream = directory.path().join(format!("stream-{index}"));
        built_in_memory(&vectors, config, &memory);
        streamed(&vectors, config, &stream);
        if config.kind == StoreKind::Exact {
            // Byte for byte: the same files, digests and settings.
            assert_eq!(manifest(&memory), manifest(&stream), "{config:?}");
        }
        let (memory, stream) = (
            Database::open(&memory).unwrap(),
            Database::open(&stream).unwrap(),
        );
        assert_eq!(stream.len(), COUNT);
        assert_eq!(stream.metadata().text(3, "city"), Some("Zürich"));
        assert_eq!(stream.metadata().key(7), 507);
        for direction in [SearchDirection::Similar, SearchDirection::Dissimilar] {
            let (expected, found) = (
                memory.search(&queries, 10, direction).unwrap(),
                stream.search(&queries, 10, direction).unwrap(),
            );
            if config.kind == StoreKind::Exact {
                assert_eq!(expected, found, "{config:?} {direction:?}");
                continue;
            }
            // Graphs built in parallel differ run to run: the same neighbours, nearly all.
            let shared: usize = expected
                .iter()
                .zip(&found)
                .map(|(expected, found)| {
                    found
                        .iter()
                        .filter(|neighbor| expected.iter().any(|e| e.key == neighbor.key))
                        .count()
                })
                .sum();
            assert!(shared >= 45, "{shared} of 50 shared, {direction:?}");
        }
    }
}

#[test]
fn a_failed_or_abandoned_write_leaves_nothing_behind() {
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("db");
    let config = StoreConfig::exact(Metric::InnerProduct);
    let leftovers = || std::fs::read_dir(directory.path()).unwrap().count();

    // One vector more than entries.
    let mut writer = DatabaseWriter::create(&target, 2, &config, Vec::new()).unwrap();
    writer.add_vectors(&[1.0, 0.0, 0.0, 1.0]).unwrap();
    writer
        .add_entry(0, GeoPoint::new(1.0, 2.0).unwrap(), &[])
        .unwrap();
    let error = writer.finish().unwrap_err();
    assert!(
        matches!(
            error,
            IndexError::CountMismatch {
                vectors: 2,
                metadata: 1
            }
        ),
        "{error}"
    );
    assert_eq!(leftovers(), 0);

    // A key twice.
    let mut writer = DatabaseWriter::create(&target, 2, &config, Vec::new()).unwrap();
    writer.add_vectors(&[1.0, 0.0, 0.0, 1.0]).unwrap();
    for _ in 0..2 {
        writer
            .add_entry(4, GeoPoint::new(1.0, 2.0).unwrap(), &[])
            .unwrap();
    }
    assert!(matches!(
        writer.finish().unwrap_err(),
        IndexError::DuplicateKey { key: 4, .. }
    ));
    assert_eq!(leftovers(), 0);

    // Bad vectors are refused where they arrive; dropping the writer cleans up.
    let mut writer = DatabaseWriter::create(&target, 2, &config, vec!["city".into()]).unwrap();
    assert!(writer.add_vectors(&[f32::NAN, 0.0]).is_err());
    assert!(
        writer
            .add_entry(0, GeoPoint::new(1.0, 2.0).unwrap(), &[])
            .is_err()
    );
    drop(writer);
    assert_eq!(leftovers(), 0);
}

#[test]
fn verify_hashes_everything_and_a_changed_file_is_hashed_again_on_open() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("db");
    let vectors = unit_vectors(COUNT, DIMENSION, 3);
    streamed(&vectors, &StoreConfig::exact(Metric::InnerProduct), &path);
    assert!(path.join("verified.json").is_file());

    let verification = Database::verify(&path).unwrap();
    assert_eq!(verification.files, 5);
    assert_eq!(
        verification.bytes,
        std::fs::read_dir(&path)
            .unwrap()
            .map(|entry| entry.unwrap())
            .filter(|entry| !matches!(
                entry.file_name().to_str(),
                Some("manifest.json" | "verified.json")
            ))
            .map(|entry| entry.metadata().unwrap().len())
            .sum::<u64>()
    );

    // Same size, other bytes: the stamp no longer vouches for the file, so the open hashes
    // it and refuses it.
    let vectors_file = path.join("vectors.f32");
    let mut bytes = std::fs::read(&vectors_file).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&vectors_file, &bytes).unwrap();
    let error = Database::open(&path)
        .err()
        .expect("a changed file is refused");
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    assert!(error.to_string().contains("vectors.f32"), "{error}");

    // Put back (new inode and times): hashed once, accepted, and stamped again.
    bytes[100] ^= 0x40;
    std::fs::write(&vectors_file, &bytes).unwrap();
    let stamp_before = std::fs::read(path.join("verified.json")).unwrap();
    Database::open(&path).unwrap();
    assert_ne!(
        std::fs::read(path.join("verified.json")).unwrap(),
        stamp_before
    );

    // A truncated file is refused by its size, stamp or not.
    std::fs::write(&vectors_file, &bytes[..bytes.len() - 4]).unwrap();
    let error = Database::open(&path).err().unwrap();
    assert!(
        error.to_string().contains("truncated or replaced"),
        "{error}"
    );
}

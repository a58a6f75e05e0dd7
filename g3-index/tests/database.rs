//! Database building, saving, opening and the defined behaviour at the edges.

mod common;

use std::path::Path;

use common::unit_vectors;
use g3_core::{Embeddings, GeoPoint, SearchDirection, VectorStore};
use g3_index::{
    Database, EntryMetadata, EntryMetadataBuilder, IndexError, MetadataCsvOptions, Metric,
    StoreConfig, VectorPrecision,
};

/// Why building 5 rows of width 4 from `values` under `config` fails.
fn build_error(values: Vec<f32>, config: &StoreConfig) -> IndexError {
    Database::build(
        Embeddings::new(4, values).unwrap(),
        metadata(5),
        config,
        &|_| {},
    )
    .err()
    .expect("the build fails")
}

fn metadata(count: usize) -> EntryMetadata {
    let mut builder = EntryMetadataBuilder::new(vec!["IMG_ID".into(), "city".into()]);
    for row in 0..count {
        let location =
            GeoPoint::new(-60.0 + (row % 120) as f64, -179.0 + (row % 358) as f64).unwrap();
        let city = if row % 3 == 0 { "Zürich" } else { "" };
        builder
            .push(
                1000 + row as u64,
                location,
                &[&format!("img_{row}.jpg"), city],
            )
            .unwrap();
    }
    builder.build().unwrap()
}

fn all_configs() -> Vec<StoreConfig> {
    let mut configs = vec![
        StoreConfig::exact(Metric::InnerProduct),
        StoreConfig::exact(Metric::Cosine),
    ];
    for metric in [Metric::InnerProduct, Metric::Cosine] {
        // The exact store in half precision.
        configs.push(StoreConfig {
            precision: VectorPrecision::F16,
            ..StoreConfig::exact(metric)
        });
        for precision in [
            VectorPrecision::F32,
            VectorPrecision::F16,
            VectorPrecision::I8,
        ] {
            configs.push(StoreConfig::hnsw(metric, precision));
        }
        // Quantised graphs re-ranked from their f32 copy, saved beside the graph.
        for precision in [VectorPrecision::F16, VectorPrecision::I8] {
            let mut config = StoreConfig::hnsw(metric, precision);
            config.hnsw.rerank = 40;
            configs.push(config);
        }
    }
    configs
}

#[test]
fn every_store_round_trips_through_disk_with_identical_answers() {
    let dimension = 24;
    let count = 600;
    let vectors = unit_vectors(count, dimension, 11);
    let queries = Embeddings::new(dimension, unit_vectors(7, dimension, 12)).unwrap();
    for config in all_configs() {
        let database = Database::build(
            Embeddings::new(dimension, vectors.clone()).unwrap(),
            metadata(count),
            &config,
            &|_| {},
        )
        .unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("db");
        database.save(&path).unwrap();
        let opened = Database::open(&path).unwrap();
        assert_eq!(opened.config(), database.config());
        assert_eq!(VectorStore::len(&opened), count);
        assert_eq!(VectorStore::dimension(&opened), dimension);
        for direction in [SearchDirection::Similar, SearchDirection::Dissimilar] {
            let before = database.search(&queries, 20, direction).unwrap();
            let after = opened.search(&queries, 20, direction).unwrap();
            assert_eq!(before, after, "{config:?} {direction:?}");
            assert_eq!(after[0].len(), 20);
            for (rank, neighbor) in after[0].iter().enumerate() {
                assert_eq!(neighbor.rank, rank);
                let row = (neighbor.key - 1000) as usize;
                assert_eq!(neighbor.location, opened.metadata().location(row));
            }
        }
        assert_eq!(opened.metadata().text(3, "city"), Some("Zürich"));
        assert_eq!(opened.metadata().text(4, "city"), Some(""));
        assert_eq!(opened.metadata().text(5, "IMG_ID"), Some("img_5.jpg"));
        assert_eq!(opened.metadata().text(5, "country"), None);
    }
}

#[test]
fn saving_over_a_database_replaces_it_and_refuses_other_directories() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("db");
    let build = |count: usize| {
        Database::build(
            Embeddings::new(4, unit_vectors(count, 4, 1)).unwrap(),
            metadata(count),
            &StoreConfig::exact(Metric::InnerProduct),
            &|_| {},
        )
        .unwrap()
    };
    build(10).save(&path).unwrap();
    build(20).save(&path).unwrap();
    assert_eq!(VectorStore::len(&Database::open(&path).unwrap()), 20);
    // Nothing but the database is left beside it.
    let names: Vec<_> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("db")]);

    let precious = directory.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("thesis.tex"), "…").unwrap();
    let error = build(5).save(&precious).unwrap_err();
    assert!(error.to_string().contains("refusing to replace"), "{error}");
    assert!(precious.join("thesis.tex").exists());
}

#[test]
fn bad_vectors_are_errors_that_name_the_row() {
    let config = StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::F16);
    let mut values = unit_vectors(5, 4, 3);
    values[2 * 4 + 1] = f32::NAN;
    let error = build_error(values, &config);
    assert!(
        matches!(
            error,
            IndexError::NonFiniteValue {
                row: 2,
                component: 1,
                ..
            }
        ),
        "{error}"
    );

    let mut values = unit_vectors(5, 4, 3);
    values[3 * 4] = f32::INFINITY;
    let error = build_error(values, &StoreConfig::exact(Metric::InnerProduct));
    assert!(
        matches!(error, IndexError::NonFiniteValue { row: 3, .. }),
        "{error}"
    );

    let mut values = unit_vectors(5, 4, 3);
    values[4 * 4 + 2] = 1.5;
    let error = build_error(
        values,
        &StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::I8),
    );
    assert!(
        matches!(
            error,
            IndexError::OutOfI8Range {
                row: 4,
                component: 2,
                ..
            }
        ),
        "{error}"
    );

    // Beyond f16's range: refused by both f16 stores, never stored as infinity.
    for config in [
        StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::F16),
        StoreConfig {
            precision: VectorPrecision::F16,
            ..StoreConfig::exact(Metric::InnerProduct)
        },
    ] {
        let mut values = unit_vectors(5, 4, 3);
        values[3 * 4 + 1] = -1.0e5;
        let error = build_error(values, &config);
        assert!(
            matches!(
                error,
                IndexError::OutOfF16Range {
                    row: 3,
                    component: 1,
                    ..
                }
            ),
            "{config:?}: {error}"
        );
    }

    let mut values = unit_vectors(5, 4, 3);
    values[4..8].fill(0.0);
    let error = build_error(values, &StoreConfig::exact(Metric::Cosine));
    assert!(
        matches!(error, IndexError::ZeroVector { row: 1, .. }),
        "{error}"
    );

    let error = Database::build(
        Embeddings::new(4, unit_vectors(5, 4, 3)).unwrap(),
        metadata(6),
        &StoreConfig::exact(Metric::InnerProduct),
        &|_| {},
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            error,
            IndexError::CountMismatch {
                vectors: 5,
                metadata: 6
            }
        ),
        "{error}"
    );
}

#[test]
fn queries_of_the_wrong_width_or_not_finite_are_errors() {
    for config in all_configs() {
        let database = Database::build(
            Embeddings::new(4, unit_vectors(30, 4, 5)).unwrap(),
            metadata(30),
            &config,
            &|_| {},
        )
        .unwrap();
        let wide = Embeddings::new(5, vec![0.2; 5]).unwrap();
        let error = database
            .search_neighbors(&wide, 3, SearchDirection::Similar)
            .unwrap_err();
        assert!(
            matches!(
                error,
                IndexError::DimensionMismatch {
                    expected: 4,
                    found: 5,
                    ..
                }
            ),
            "{error}"
        );
        let nan = Embeddings::new(4, vec![0.5, f32::NAN, 0.5, 0.5]).unwrap();
        let error = database
            .search_neighbors(&nan, 3, SearchDirection::Dissimilar)
            .unwrap_err();
        assert!(
            matches!(error, IndexError::NonFiniteValue { what: "query", .. }),
            "{error}"
        );
        // Through the core trait the same failure is a stage error with the cause kept.
        let error = database
            .search(&nan, 3, SearchDirection::Similar)
            .unwrap_err();
        assert!(std::error::Error::source(&error).is_some());
    }
}

#[test]
fn k_beyond_the_store_zero_k_and_empty_stores_are_defined() {
    let query = Embeddings::new(4, unit_vectors(2, 4, 9)).unwrap();
    for config in all_configs() {
        let database = Database::build(
            Embeddings::new(4, unit_vectors(6, 4, 5)).unwrap(),
            metadata(6),
            &config,
            &|_| {},
        )
        .unwrap();
        for direction in [SearchDirection::Similar, SearchDirection::Dissimilar] {
            let found = database.search(&query, 50, direction).unwrap();
            assert_eq!(found.len(), 2);
            assert!(found.iter().all(|f| f.len() == 6), "{config:?}: {found:?}");
            let mut keys: Vec<u64> = found[0].iter().map(|n| n.key).collect();
            keys.sort_unstable();
            assert_eq!(keys, (1000..1006).collect::<Vec<_>>());
            let ordered = found[0].windows(2).all(|w| match direction {
                SearchDirection::Similar => w[0].similarity >= w[1].similarity,
                SearchDirection::Dissimilar => w[0].similarity <= w[1].similarity,
            });
            assert!(ordered, "{config:?} {direction:?}");
            let none = database.search(&query, 0, direction).unwrap();
            assert_eq!(none, vec![Vec::new(), Vec::new()]);
        }

        let empty =
            Database::build(Embeddings::empty(4).unwrap(), metadata(0), &config, &|_| {}).unwrap();
        assert!(VectorStore::is_empty(&empty));
        let found = empty.search(&query, 5, SearchDirection::Similar).unwrap();
        assert_eq!(found, vec![Vec::new(), Vec::new()]);
        let directory = tempfile::tempdir().unwrap();
        empty.save(&directory.path().join("empty")).unwrap();
        let opened = Database::open(&directory.path().join("empty")).unwrap();
        assert!(opened.index().is_empty());
        assert_eq!(
            opened
                .search(&query, 5, SearchDirection::Dissimilar)
                .unwrap()
                .len(),
            2
        );
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let mut builder = EntryMetadataBuilder::new(Vec::new());
    let here = GeoPoint::new(1.0, 2.0).unwrap();
    for key in [5, 9, 7, 9] {
        builder.push(key, here, &[]).unwrap();
    }
    let error = builder.build().err().unwrap();
    assert!(
        matches!(
            error,
            IndexError::DuplicateKey {
                key: 9,
                first_row: 1,
                second_row: 3
            }
        ),
        "{error}"
    );
}

#[test]
fn metadata_csv_errors_name_the_line() {
    let directory = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = directory.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let options = MetadataCsvOptions::default();
    let good = write(
        "good.csv",
        "\u{feff}IMG_ID,LAT,LON,city\r\na.jpg,1.5,2.5,Paris\r\nb.jpg,-3,190,\r\n",
    );
    let metadata = EntryMetadata::from_csv(&good, &options).unwrap();
    assert_eq!(metadata.len(), 2);
    assert_eq!(metadata.keys(), &[0, 1]);
    assert_eq!(
        metadata.text_columns(),
        &["IMG_ID".to_string(), "city".to_string()]
    );
    assert_eq!(metadata.text(0, "city"), Some("Paris"));
    // Longitudes are normalised into [-180, 180).
    assert!((metadata.location(1).lon_deg() + 170.0).abs() < 1e-9);

    let cases: [(&str, &str, Option<u64>, &str); 5] = [
        (
            "missing.csv",
            "IMG_ID,LAT\na,1\n",
            Some(1),
            "no column \"LON\"",
        ),
        (
            "float.csv",
            "LAT,LON\n1,2\n\n3,east\n",
            Some(4),
            "LON \"east\" is not a number",
        ),
        ("range.csv", "LAT,LON\n1,2\n95,3\n", Some(3), "latitude 95"),
        ("short.csv", "LAT,LON\n1,2\n3\n", Some(3), ""),
        (
            "key.csv",
            "id,LAT,LON\n1,1,2\nx,3,4\n",
            Some(3),
            "key id \"x\"",
        ),
    ];
    for (name, text, line, message) in cases {
        let path = write(name, text);
        let options = if name == "key.csv" {
            MetadataCsvOptions {
                key_column: Some("id".into()),
                ..MetadataCsvOptions::default()
            }
        } else {
            options.clone()
        };
        match EntryMetadata::from_csv(&path, &options) {
            Err(IndexError::BadInput {
                line: found,
                message: text,
                path: p,
            }) => {
                assert_eq!(found, line, "{name}: {text}");
                assert!(text.contains(message), "{name}: {text}");
                assert_eq!(p, path);
            }
            other => panic!("{name}: {:?}", other.map(|m| m.len())),
        }
    }
    let duplicate = write("dup.csv", "id,LAT,LON\n4,1,2\n4,3,4\n");
    let options = MetadataCsvOptions {
        key_column: Some("id".into()),
        text_columns: Some(Vec::new()),
        ..MetadataCsvOptions::default()
    };
    assert!(matches!(
        EntryMetadata::from_csv(&duplicate, &options),
        Err(IndexError::DuplicateKey { key: 4, .. })
    ));
}

#[test]
fn opening_checks_the_manifest() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("db");
    Database::build(
        Embeddings::new(4, unit_vectors(10, 4, 1)).unwrap(),
        metadata(10),
        &StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::F32),
        &|_| {},
    )
    .unwrap()
    .save(&path)
    .unwrap();
    let manifest_path = path.join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let edit = |from: &str, to: &str| {
        assert!(manifest.contains(from), "{from}");
        std::fs::write(&manifest_path, manifest.replace(from, to)).unwrap();
        Database::open(&path).err().unwrap()
    };
    let error = edit("\"version\": 1", "\"version\": 2");
    assert!(matches!(
        error,
        IndexError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }
    ));
    let error = edit("\"dimension\": 4", "\"dimension\": 5");
    assert!(error.to_string().contains("the manifest says 5"), "{error}");
    let error = edit("\"metric\": \"inner-product\"", "\"metric\": \"cosine\"");
    assert!(error.to_string().contains("vectors.usearch"), "{error}");
    let error = edit("\"count\": 10", "\"count\": 11");
    assert!(matches!(error, IndexError::Corrupt { .. }), "{error}");
    std::fs::write(&manifest_path, "{ not json").unwrap();
    let error = Database::open(&path).err().unwrap();
    assert!(error.to_string().contains("manifest.json"), "{error}");
    assert!(Database::open(Path::new("/nonexistent/db")).is_err());
}

#[test]
fn an_hnsw_store_filled_in_chunks_becomes_a_database() {
    use g3_index::{HnswConfig, HnswStore, VectorIndex};

    let dimension = 16;
    let vectors = unit_vectors(300, dimension, 8);
    let mut store = HnswStore::new(
        dimension,
        Metric::InnerProduct,
        VectorPrecision::F32,
        HnswConfig::default(),
    )
    .unwrap();
    for chunk in vectors.chunks(100 * dimension) {
        store.add(chunk, &|_| {}).unwrap();
    }
    assert_eq!(store.len(), 300);
    let database = Database::from_hnsw_store(store, metadata(300)).unwrap();
    assert_eq!(database.config().precision, VectorPrecision::F32);
    let query = Embeddings::new(
        dimension,
        vectors[250 * dimension..251 * dimension].to_vec(),
    )
    .unwrap();
    let found = database
        .search(&query, 1, SearchDirection::Similar)
        .unwrap();
    assert_eq!(found[0][0].key, 1250, "row 250 carries key 1000 + 250");

    let mut short = HnswStore::new(
        dimension,
        Metric::InnerProduct,
        VectorPrecision::F32,
        HnswConfig::default(),
    )
    .unwrap();
    short.add(&vectors[..10 * dimension], &|_| {}).unwrap();
    assert!(matches!(
        Database::from_hnsw_store(short, metadata(300)),
        Err(IndexError::CountMismatch { .. })
    ));
}

#[test]
fn re_ranking_is_saved_switched_and_refused_without_the_f32_copy() {
    let dimension = 24;
    let count = 500;
    let vectors = unit_vectors(count, dimension, 21);
    let queries = Embeddings::new(dimension, unit_vectors(5, dimension, 22)).unwrap();
    let mut config = StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::I8);
    config.hnsw.rerank = 40;
    let database = Database::build(
        Embeddings::new(dimension, vectors.clone()).unwrap(),
        metadata(count),
        &config,
        &|_| {},
    )
    .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("db");
    database.save(&path).unwrap();
    assert!(path.join("vectors.f32").is_file());
    let mut opened = Database::open(&path).unwrap();
    assert_eq!(opened.config().hnsw.rerank, 40);
    // Re-ranked scores are the exact f32 inner products of the stored vectors.
    let found = opened
        .search(&queries, 10, SearchDirection::Similar)
        .unwrap();
    for (query, neighbours) in queries.as_slice().chunks_exact(dimension).zip(&found) {
        for neighbour in neighbours {
            let row = (neighbour.key - 1000) as usize;
            let exact: f32 = query
                .iter()
                .zip(&vectors[row * dimension..][..dimension])
                .map(|(a, b)| a * b)
                .sum();
            assert!((neighbour.similarity - exact).abs() < 1e-5);
        }
    }
    // Switched off, the quantised scores come back; switched on again, the exact ones.
    opened.set_rerank(0).unwrap();
    let quantised = opened
        .search(&queries, 10, SearchDirection::Similar)
        .unwrap();
    assert_ne!(quantised, found);
    opened.set_rerank(40).unwrap();
    assert_eq!(
        opened
            .search(&queries, 10, SearchDirection::Similar)
            .unwrap(),
        found
    );

    // A graph built without re-ranking keeps no copy and says so.
    let plain = Database::build(
        Embeddings::new(dimension, vectors).unwrap(),
        metadata(count),
        &StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::I8),
        &|_| {},
    )
    .unwrap();
    let plain_path = directory.path().join("plain");
    plain.save(&plain_path).unwrap();
    assert!(!plain_path.join("vectors.f32").exists());
    let mut plain = Database::open(&plain_path).unwrap();
    let message = plain.set_rerank(10).unwrap_err().to_string();
    assert!(message.contains("no f32 copy"), "{message}");
}

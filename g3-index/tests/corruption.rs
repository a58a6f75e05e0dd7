//! Truncated and bit-flipped database files: opening fails with an error naming the file,
//! and nothing panics or crashes. (usearch itself would load a flipped graph and crash on
//! search; the manifest's checksums stop it first.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use g3_core::{Embeddings, GeoPoint, SearchDirection, VectorStore};
use g3_index::{Database, EntryMetadataBuilder, Metric, StoreConfig, VectorPrecision};
use proptest::prelude::*;

const FILES: [&str; 8] = [
    "manifest.json",
    "vectors.usearch",
    "vectors.f32",
    "vectors.f16",
    "keys.u64",
    "locations.f64",
    "text_offsets.u64",
    "text.utf8",
];

/// One saved exact database (f32 and f16), one HNSW database, and one HNSW database that
/// re-ranks from an f32 copy of its vectors, built once for all cases.
fn originals() -> &'static (tempfile::TempDir, [PathBuf; 4]) {
    static ORIGINALS: OnceLock<(tempfile::TempDir, [PathBuf; 4])> = OnceLock::new();
    ORIGINALS.get_or_init(|| {
        let directory = tempfile::tempdir().unwrap();
        let dimension = 16;
        let count = 200;
        let values: Vec<f32> = (0..count * dimension)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut paths = Vec::new();
        for (name, config) in [
            ("exact", StoreConfig::exact(Metric::InnerProduct)),
            (
                "hnsw",
                StoreConfig::hnsw(Metric::Cosine, VectorPrecision::F16),
            ),
            (
                "exact-f16",
                StoreConfig {
                    precision: VectorPrecision::F16,
                    ..StoreConfig::exact(Metric::InnerProduct)
                },
            ),
            ("hnsw-rerank", {
                let mut config = StoreConfig::hnsw(Metric::InnerProduct, VectorPrecision::I8);
                config.hnsw.rerank = 32;
                config
            }),
        ] {
            let mut metadata = EntryMetadataBuilder::new(vec!["city".into()]);
            for row in 0..count {
                let location = GeoPoint::new((row % 90) as f64, (row % 180) as f64).unwrap();
                metadata
                    .push(row as u64, location, &[&format!("city {row}")])
                    .unwrap();
            }
            let database = Database::build(
                Embeddings::new(dimension, values.clone()).unwrap(),
                metadata.build().unwrap(),
                &config,
                &|_| {},
            )
            .unwrap();
            let path = directory.path().join(name);
            database.save(&path).unwrap();
            paths.push(path);
        }
        (directory, paths.try_into().unwrap())
    })
}

fn copy_database(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Opens the damaged copy; if it opens at all (a harmless manifest edit), it must search.
fn open_and_use(path: &Path) -> Result<(), String> {
    match Database::open(path) {
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            Err(message)
        }
        Ok(database) => {
            let dimension = VectorStore::dimension(&database);
            let query = Embeddings::new(dimension, vec![0.25; dimension]).unwrap();
            for direction in [SearchDirection::Similar, SearchDirection::Dissimilar] {
                let found = database.search(&query, 10, direction).unwrap();
                assert!(found[0].len() <= 10);
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_crash(
        which_database in 0usize..4,
        which_file in 0usize..FILES.len(),
        position in 0.0f64..1.0,
        bit in 0u8..8,
        truncate in any::<bool>(),
    ) {
        let (_, originals) = originals();
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("db");
        copy_database(&originals[which_database], &path);
        let file = path.join(FILES[which_file]);
        prop_assume!(file.exists());
        let mut bytes = std::fs::read(&file).unwrap();
        prop_assume!(!bytes.is_empty());
        let at = ((bytes.len() as f64 * position) as usize).min(bytes.len() - 1);
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] ^= 1 << bit;
        }
        std::fs::write(&file, &bytes).unwrap();
        let outcome = open_and_use(&path);
        if FILES[which_file] != "manifest.json" {
            // Any change to a data file is caught, and the error names that file.
            let message = outcome.expect_err("a damaged data file opened");
            prop_assert!(message.contains(FILES[which_file]), "{}", message);
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let (_, originals) = originals();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("db");
    copy_database(&originals[1], &path);
    std::fs::remove_file(path.join("keys.u64")).unwrap();
    let message = open_and_use(&path).unwrap_err();
    assert!(message.contains("keys.u64"), "{message}");
}

#[test]
fn a_re_ranking_graph_without_its_f32_copy_is_refused_by_name() {
    let (_, originals) = originals();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("db");
    copy_database(&originals[3], &path);
    std::fs::remove_file(path.join("vectors.f32")).unwrap();
    let message = open_and_use(&path).unwrap_err();
    assert!(message.contains("vectors.f32"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A damaged faiss file is read or refused, never a panic, and never a huge allocation
    /// driven by a garbled header (sizes are checked against the file length first).
    #[test]
    fn damaged_faiss_files_never_crash(
        which in 0usize..2,
        position in 0.0f64..1.0,
        bit in 0u8..8,
        truncate in any::<bool>(),
        header_only in any::<bool>(),
    ) {
        let name = ["flat_ip.faissindex", "flat_l2.faissindex"][which];
        let original = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name),
        )
        .unwrap();
        let mut bytes = original.clone();
        // Half the cases hit the 45-byte header, where the sizes live.
        let span = if header_only { 45 } else { bytes.len() };
        let at = ((span as f64 * position) as usize).min(bytes.len() - 1);
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] ^= 1 << bit;
        }
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        match g3_index::read_faiss_flat(&path) {
            Ok(index) => prop_assert_eq!(index.vectors.len(), index.len() * index.dimension),
            Err(error) => prop_assert!(error.to_string().contains(name), "{}", error),
        }
    }
}

/// Vector counts in a faiss header whose byte size overflows 64 bits (found by the proptest
/// above in CI: 2^59 rows × 8 dimensions × 4 bytes) are refused by name, not a panic.
#[test]
fn faiss_counts_that_overflow_a_file_size_are_refused() {
    let name = "flat_ip.faissindex";
    let original = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join(name);
    for count in [1i64 << 59, (1i64 << 62) + 3, i64::MAX] {
        for dimension in [1i32, 8, 16, i32::MAX] {
            let mut bytes = original.clone();
            bytes[4..8].copy_from_slice(&dimension.to_le_bytes());
            bytes[8..16].copy_from_slice(&count.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let error = g3_index::read_faiss_flat(&path).unwrap_err().to_string();
            assert!(error.contains(name), "{count} × {dimension}: {error}");
        }
    }
}

/// A manifest edited to promise absurd counts or dimensions is refused, not a panic on an
/// overflowing size computation.
#[test]
fn manifests_with_absurd_sizes_are_refused() {
    let (_, originals) = originals();
    let scratch = tempfile::tempdir().unwrap();
    let mut case = 0;
    for original in originals {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(original.join("manifest.json")).unwrap())
                .unwrap();
        for (field, value) in [
            ("count", u64::MAX),
            ("count", 1 << 62),
            ("count", u64::from(u32::MAX) + 1),
            ("dimension", u64::MAX),
            ("dimension", 1 << 62),
            ("dimension", 1 << 40),
        ] {
            let copy = scratch.path().join(format!("case{case}"));
            case += 1;
            copy_database(original, &copy);
            let mut edited = manifest.clone();
            edited[field] = value.into();
            std::fs::write(
                copy.join("manifest.json"),
                serde_json::to_vec(&edited).unwrap(),
            )
            .unwrap();
            let error = open_and_use(&copy).expect_err("an absurd manifest must be refused");
            assert!(!error.is_empty(), "{field} = {value}");
        }
    }
}

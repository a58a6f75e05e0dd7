//! Retrieval at the published size: G3's database holds 4.12M MP16-Pro embeddings of 2304
//! components, 19 GB as the exact f16 store that `g3 fetch g3` imports. This bench writes such
//! a database once (streaming, through [`DatabaseWriter`], in bounded memory), opens it
//! memory-mapped as users do, and times a photo's retrieval in both directions (G3's 15 most
//! and 15 least similar entries) for batches of 1, 16 and 64 photos: one pass over the
//! vectors per batch.
//!
//! It needs about 20 GB of disk, and as much free memory again for the warm page cache, so
//! it runs only when asked:
//!
//! ```text
//! G3_PUBLISHED_BENCH_DIR=/somewhere/with/20GB cargo bench --bench published_size
//! ```
//!
//! - `G3_PUBLISHED_ROWS` changes the row count (default 4,120,000), to run the same bench
//!   on a smaller machine (the rows are the same for a given count, so runs compare).
//! - `G3_PUBLISHED_COLD=1` also times a batch of 64 with the file dropped from the page
//!   cache before every pass (`posix_fadvise(DONTNEED)` after the map is closed): the disk's
//!   speed, not the CPU's.
//!
//! The database is kept in the directory and reused by later runs (it is rewritten when its
//! row count differs). faiss `IndexFlatIP` holds f32 vectors, 38 GB at this size, so the side
//! by side comparison with it runs at 200,000 rows (`benches/compare/index.py`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use g3::core::{Embeddings, GeoPoint, VectorStore};
use g3::index::{Database, DatabaseWriter, Metric, StoreConfig, VectorPrecision};

/// G3's database embeddings: image 768 + GPS 768 + text 768.
const DIMENSION: usize = 2304;
/// MP16-Pro's photos with embeddings in G3's published index.
const PUBLISHED_ROWS: usize = 4_120_000;
/// G3's retrieval: 15 neighbours each way (RAG_NUM).
const K: usize = 15;
/// Rows generated and written per chunk (85 MiB of f32 before conversion).
const ROWS_PER_CHUNK: usize = 8192;
/// Cluster centres of the synthetic vectors.
const CENTRES: usize = 512;

/// Unit vectors around [`CENTRES`] centres, row `first_row ..` of a fixed sequence: the same
/// rows for the same count on every run (a cheap generator, so that writing 19 GB is bound by
/// the disk rather than by the random numbers).
fn rows_from(first_row: usize, count: usize, centres: &[f32]) -> Vec<f32> {
    let mut values = Vec::with_capacity(count * DIMENSION);
    for row in first_row..first_row + count {
        let mut state = (row as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let centre = &centres[(row % CENTRES) * DIMENSION..][..DIMENSION];
        let start = values.len();
        values.extend(centre.iter().map(|c| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            c + 0.5 * ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        }));
        let vector = &mut values[start..];
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

fn centres() -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..CENTRES * DIMENSION)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// The database at `path` with `rows` rows, written first unless a previous run left it.
fn database(path: &Path, rows: usize) -> Database {
    if let Ok(database) = Database::open(path) {
        if database.len() == rows {
            return database;
        }
        eprintln!(
            "{} holds {} rows, not {rows}: writing it again",
            path.display(),
            database.len()
        );
    }
    let mut config = StoreConfig::exact(Metric::InnerProduct);
    config.precision = VectorPrecision::F16;
    let mut writer = DatabaseWriter::create(path, DIMENSION, &config, Vec::new())
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    let centres = centres();
    let started = Instant::now();
    let mut first_row = 0;
    while first_row < rows {
        let count = ROWS_PER_CHUNK.min(rows - first_row);
        writer
            .add_vectors(&rows_from(first_row, count, &centres))
            .expect("finite unit vectors");
        for row in first_row..first_row + count {
            let location = GeoPoint::new((row % 180) as f64 - 89.5, (row * 7 % 360) as f64 - 179.5)
                .expect("a valid location");
            writer
                .add_entry(row as u64, location, &[])
                .expect("unique keys");
        }
        first_row += count;
        if first_row % (64 * ROWS_PER_CHUNK) == 0 || first_row == rows {
            eprintln!(
                "written {first_row} of {rows} rows in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    writer.finish().expect("the database is written");
    Database::open(path).expect("the database just written opens")
}

/// Queries near the database's centres (not rows of it).
fn queries(count: usize) -> Embeddings {
    let vectors = rows_from(usize::MAX / 2, count, &centres());
    Embeddings::new(DIMENSION, vectors).expect("unit vectors")
}

/// Drops the exact store's file from the page cache (the map must be closed first: mapped
/// pages stay).
fn drop_from_page_cache(database: &Path) {
    use std::os::fd::AsRawFd;
    for entry in std::fs::read_dir(database).expect("the database directory") {
        let path = entry.expect("a directory entry").path();
        let file = std::fs::File::open(&path).expect("a database file");
        // SAFETY: a plain system call on an open descriptor; it only drops clean cached
        // pages.
        let result =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(result, 0, "posix_fadvise on {}", path.display());
    }
}

fn published_size(criterion: &mut Criterion) {
    let Some(directory) = std::env::var_os("G3_PUBLISHED_BENCH_DIR").map(PathBuf::from) else {
        eprintln!(
            "published_size: set G3_PUBLISHED_BENCH_DIR to a directory with 20 GB free to \
             run this bench (it writes a 4.12M × 2304 f16 database there once); nothing timed"
        );
        return;
    };
    let rows = std::env::var("G3_PUBLISHED_ROWS")
        .map(|value| value.parse().expect("G3_PUBLISHED_ROWS: a row count"))
        .unwrap_or(PUBLISHED_ROWS);
    let path = directory.join(format!("exact_f16_{rows}x{DIMENSION}"));
    let mut database = Some(database(&path, rows));
    let name = format!("published_size_{rows}x{DIMENSION}_f16");
    let mut group = criterion.benchmark_group(&name);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for batch in [1, 16, 64] {
        let queries = queries(batch);
        // Per photo: a batch's both directions in one pass.
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("warm/batch_of_{batch}"), |b| {
            let database = database.as_ref().expect("open");
            b.iter(|| black_box(database.search_both(&queries, K, K).unwrap()))
        });
    }
    if std::env::var_os("G3_PUBLISHED_COLD").is_some() {
        let queries = queries(64);
        group.throughput(Throughput::Elements(64));
        group.bench_function("cold/batch_of_64", |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    database = None;
                    drop_from_page_cache(&path);
                    let opened = Database::open(&path).expect("the database opens");
                    let started = Instant::now();
                    black_box(opened.search_both(&queries, K, K).unwrap());
                    total += started.elapsed();
                    database = Some(opened);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, published_size);
criterion_main!(benches);

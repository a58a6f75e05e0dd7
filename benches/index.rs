//! Vector search: the exact store (one query at a time and batched) and HNSW stores (f32,
//! f16, i8; one query at a time and batched) on clustered synthetic unit vectors.
//!
//! Then G3's own shape, 200,000 × 2304 (1.8 GB in f32, 0.9 GB in f16): the exact store's single
//! queries in f32 and f16, and a photo's two searches (most and least similar) as two scans
//! or one, alone and in batches of 16 and 64 photos. `benches/published_size.rs` times the
//! same at the published size (4.12M rows, memory-mapped).
//!
//! Run with `cargo bench --bench index`. The full-size comparison with faiss (200,000 × 2304
//! and 1,000,000 × 768, recall, build time, memory) is `benches/compare/index.py`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use g3::core::SearchDirection;
use g3::index::{ExactStore, HnswConfig, HnswStore, Metric, VectorIndex, VectorPrecision};

const DIMENSION: usize = 768;
const EXACT_ROWS: usize = 100_000;
const HNSW_ROWS: usize = 20_000;
const BATCH: usize = 1000;
const K: usize = 20;
/// G3's database embeddings: 2304-d (image 768 + GPS 768 + text 768).
const G3_DIMENSION: usize = 2304;
const G3_ROWS: usize = 200_000;
/// G3's retrieval: 15 neighbours each way (RAG_NUM).
const G3_K: usize = 15;

/// Unit vectors around 200 unit centres (a cheap deterministic generator, no dependency).
fn clustered(count: usize, seed: u64) -> Vec<f32> {
    clustered_in(DIMENSION, count, seed)
}

fn clustered_in(dimension: usize, count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..200 * dimension).map(|_| uniform()).collect();
    let mut values = Vec::with_capacity(count * dimension);
    for row in 0..count {
        let centre = &centres[(row * 7919 % 200) * dimension..][..dimension];
        let start = values.len();
        values.extend(centre.iter().map(|c| c + 0.5 * uniform()));
        let vector = &mut values[start..];
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

/// The exact store at G3's width: f16 against f32, both directions in one scan or two.
fn exact_at_g3_width(criterion: &mut Criterion) {
    let vectors = clustered_in(G3_DIMENSION, G3_ROWS, 3);
    let queries = clustered_in(G3_DIMENSION, 64, 98);
    let query = &queries[..G3_DIMENSION];
    let mut group = criterion.benchmark_group("exact_200k_2304");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let mut f16_store =
        ExactStore::with_precision(G3_DIMENSION, Metric::InnerProduct, VectorPrecision::F16)
            .unwrap();
    f16_store.add(&vectors).unwrap();
    let f32_store = ExactStore::from_vectors(G3_DIMENSION, Metric::InnerProduct, vectors)
        .expect("finite vectors");
    for (name, store) in [("f32", &f32_store), ("f16", &f16_store)] {
        group.bench_function(format!("{name}/single_query"), |b| {
            b.iter(|| {
                black_box(
                    store
                        .search_rows(query, G3_K, SearchDirection::Similar)
                        .unwrap(),
                )
            })
        });
    }
    for (name, store) in [("f32", &f32_store), ("f16", &f16_store)] {
        group.bench_function(format!("{name}/photo_two_scans"), |b| {
            b.iter(|| {
                black_box((
                    store
                        .search_rows(query, G3_K, SearchDirection::Similar)
                        .unwrap(),
                    store
                        .search_rows(query, G3_K, SearchDirection::Dissimilar)
                        .unwrap(),
                ))
            })
        });
        group.bench_function(format!("{name}/photo_one_scan"), |b| {
            b.iter(|| black_box(store.search_rows_both(query, G3_K, G3_K).unwrap()))
        });
    }
    // Per photo: a batch of photos' both directions in one pass.
    for batch in [16, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        let queries = &queries[..batch * G3_DIMENSION];
        for (name, store) in [("f32", &f32_store), ("f16", &f16_store)] {
            group.bench_function(format!("{name}/batch_of_{batch}_one_scan"), |b| {
                b.iter(|| black_box(store.search_rows_both(queries, G3_K, G3_K).unwrap()))
            });
        }
    }
    group.finish();
}

fn index(criterion: &mut Criterion) {
    let queries = clustered(BATCH, 99);
    let mut group = criterion.benchmark_group("index");
    group.sample_size(10);

    let exact = ExactStore::from_vectors(DIMENSION, Metric::InnerProduct, clustered(EXACT_ROWS, 1))
        .expect("finite vectors");
    group.throughput(Throughput::Elements(1));
    group.bench_function("exact/100k/single_query", |b| {
        b.iter(|| {
            black_box(
                exact
                    .search_rows(&queries[..DIMENSION], K, SearchDirection::Similar)
                    .unwrap(),
            )
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("exact/100k/batched", |b| {
        b.iter(|| {
            black_box(
                exact
                    .search_rows(&queries, K, SearchDirection::Similar)
                    .unwrap(),
            )
        })
    });
    drop(exact);

    let base = clustered(HNSW_ROWS, 1);
    for precision in [
        VectorPrecision::F32,
        VectorPrecision::F16,
        VectorPrecision::I8,
    ] {
        let mut store = HnswStore::new(
            DIMENSION,
            Metric::InnerProduct,
            precision,
            HnswConfig::default(),
        )
        .expect("a valid configuration");
        store.add(&base, &|_| {}).expect("finite unit vectors");
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(format!("hnsw-{precision:?}/20k/one_by_one"), |b| {
            b.iter(|| {
                for query in queries.chunks_exact(DIMENSION) {
                    black_box(
                        store
                            .search_rows(query, K, SearchDirection::Similar)
                            .unwrap(),
                    );
                }
            })
        });
        group.bench_function(format!("hnsw-{precision:?}/20k/batched"), |b| {
            b.iter(|| {
                black_box(
                    store
                        .search_rows(&queries, K, SearchDirection::Similar)
                        .unwrap(),
                )
            })
        });
        group.bench_function(format!("hnsw-{precision:?}/20k/batched_dissimilar"), |b| {
            b.iter(|| {
                black_box(
                    store
                        .search_rows(&queries, K, SearchDirection::Dissimilar)
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, index, exact_at_g3_width);
criterion_main!(benches);

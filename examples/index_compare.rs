//! The g3-rs side of `benches/compare/index.py`: builds the exact store and HNSW stores (f32,
//! f16, i8) over one embeddings file and measures build time, memory, recall@k against the
//! exact store, and single-query and batched queries per second, in both search directions.
//! Prints one JSON object per store on stdout.
//!
//! ```text
//! cargo run --release --example index_compare -- BASE.npy QUERIES.npy FAISS_IDS.npy [K] [PRECISIONS]
//! ```
//! `PRECISIONS` picks the HNSW graphs to build, comma-separated (default `f32,f16,i8`; `none`
//! for the exact stores only);
//! `G3_HNSW_CONNECTIVITY` and `G3_HNSW_EXPANSION_ADD` change their graph settings (default
//! usearch's 16 and 128); `G3_HNSW_RERANK_DEPTHS` lists the re-ranking depths timed for the
//! quantised graphs, comma-separated numbers or `ef` for the beam width (default `ef`);
//! `G3_SKIP_EXACT_TIMING=1` builds the exact store only for the ground truth (a study of
//! several graph settings times the exact stores once).
//! `FAISS_IDS.npy` holds faiss `IndexFlatIP`'s int64 ids for the queries ([queries, K]); the
//! exact store's agreement with it is reported.

use std::path::Path;
use std::time::Instant;

use g3::core::SearchDirection;
use g3::index::{
    ExactStore, HnswConfig, HnswStore, Metric, RowMatch, VectorIndex, VectorPrecision,
};
use g3::read_embeddings_npy;

/// Queries timed one at a time for the exact store (each one scans every vector; enough
/// that the rate is steady to a few percent).
const EXACT_SINGLE_QUERIES: usize = 60;

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A graph setting from the environment (`benches/compare/index.py` passes its options so).
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {value:?}"))
    })
}

/// A re-ranking depth: a fixed count of candidates, or the beam width of each search.
#[derive(Debug, Clone, Copy)]
enum RerankDepth {
    Fixed(usize),
    Beam,
}

impl RerankDepth {
    fn at(self, expansion: usize) -> usize {
        match self {
            RerankDepth::Fixed(depth) => depth,
            RerankDepth::Beam => expansion,
        }
    }
}

/// `G3_HNSW_RERANK_DEPTHS`: comma-separated counts, `ef` for the beam width.
fn rerank_depths() -> Vec<RerankDepth> {
    std::env::var("G3_HNSW_RERANK_DEPTHS")
        .unwrap_or_else(|_| "ef".into())
        .split(',')
        .map(|item| match item.trim() {
            "ef" => RerankDepth::Beam,
            number => RerankDepth::Fixed(number.parse().unwrap_or_else(|_| {
                panic!("G3_HNSW_RERANK_DEPTHS: {number:?} is neither a count nor `ef`")
            })),
        })
        .collect()
}

fn direction_name(direction: SearchDirection) -> &'static str {
    match direction {
        SearchDirection::Similar => "similar",
        SearchDirection::Dissimilar => "dissimilar",
    }
}

fn read_ids(path: &Path) -> Vec<Vec<u64>> {
    let bytes = std::fs::read(path).expect("the faiss ids file can be read");
    let npy = npyz::NpyFile::new(&bytes[..]).expect("the faiss ids are an .npy file");
    let k = npy.shape()[1] as usize;
    let ids: Vec<i64> = npy.into_vec().expect("the faiss ids are int64");
    ids.chunks_exact(k)
        .map(|row| row.iter().map(|&id| id as u64).collect())
        .collect()
}

fn recall(found: &[Vec<RowMatch>], truth: &[Vec<RowMatch>]) -> f64 {
    let mut hits = 0usize;
    let mut total = 0usize;
    for (found, truth) in found.iter().zip(truth) {
        total += truth.len();
        hits += found
            .iter()
            .filter(|m| truth.iter().any(|t| t.row == m.row))
            .count();
    }
    hits as f64 / total.max(1) as f64
}

/// Queries per second answering `queries` one at a time (each query's search may still use
/// several threads, as the exact store's does).
fn single_query_rate(
    index: &dyn VectorIndex,
    queries: &[f32],
    k: usize,
    direction: SearchDirection,
) -> f64 {
    let dimension = index.dimension();
    let started = Instant::now();
    let mut count = 0;
    for query in queries.chunks_exact(dimension) {
        std::hint::black_box(index.search_rows(query, k, direction).unwrap());
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn batched(
    index: &dyn VectorIndex,
    queries: &[f32],
    k: usize,
    direction: SearchDirection,
) -> (Vec<Vec<RowMatch>>, f64) {
    let started = Instant::now();
    let found = index.search_rows(queries, k, direction).unwrap();
    let rate = found.len() as f64 / started.elapsed().as_secs_f64();
    (found, rate)
}

/// Times of a batched exact search repeated: each call takes seconds and a shared machine's
/// speed wanders by several percent between calls (`index.py` keeps faiss's best too).
const EXACT_BATCHED_REPEATS: usize = 3;

/// [`batched`] repeated [`EXACT_BATCHED_REPEATS`] times; the best rate.
fn best_batched(
    index: &dyn VectorIndex,
    queries: &[f32],
    k: usize,
    direction: SearchDirection,
) -> (Vec<Vec<RowMatch>>, f64) {
    let (found, mut best) = batched(index, queries, k, direction);
    for _ in 1..EXACT_BATCHED_REPEATS {
        best = best.max(batched(index, queries, k, direction).1);
    }
    (found, best)
}

/// Photo batch sizes timed for G3's retrieval (both directions of every photo of a batch).
const PHOTO_BATCHES: [usize; 3] = [1, 16, 64];
/// Photos timed per batch size.
const PHOTOS_TIMED: usize = 128;

/// G3's retrieval of photos in batches of `batch`: each photo's `k` most and `k` least similar
/// entries, one [`VectorIndex::search_rows_both`] call per batch. Prints one JSON line per batch
/// size with the photos per second.
fn photo_rates(store: &str, index: &dyn VectorIndex, queries: &[f32], k: usize) {
    let dimension = index.dimension();
    let photos = &queries[..PHOTOS_TIMED.min(queries.len() / dimension) * dimension];
    for batch in PHOTO_BATCHES {
        let started = Instant::now();
        for chunk in photos.chunks(batch * dimension) {
            std::hint::black_box(index.search_rows_both(chunk, k, k).unwrap());
        }
        let rate = (photos.len() / dimension) as f64 / started.elapsed().as_secs_f64();
        println!("{{\"photos\": \"{store}\", \"batch\": {batch}, \"photos_per_s\": {rate:.2}}}");
    }
}

/// Build time and batched rates of the exact f32 store, measured while computing the truth.
struct ExactRates {
    build_s: f64,
    memory_mib: f64,
    batched_similar: f64,
    batched_dissimilar: f64,
}

/// The exact stores' figures: the f32 store's single-query rates, agreement with faiss and
/// photo rates; the f16 store's rates and recall against the f32 one.
fn time_exact_stores(
    exact: &ExactStore,
    rates: &ExactRates,
    base: &[f32],
    queries: &[f32],
    [truth, truth_dissimilar]: [&[Vec<RowMatch>]; 2],
    faiss_ids: &[Vec<u64>],
    k: usize,
) {
    let dimension = exact.dimension();
    let threads = rayon::current_num_threads();
    let exact_memory = rates.memory_mib;
    let exact_build = rates.build_s;
    let exact_batched = rates.batched_similar;
    let exact_batched_dissimilar = rates.batched_dissimilar;
    let single_queries =
        &queries[..EXACT_SINGLE_QUERIES.min(queries.len() / dimension) * dimension];
    let exact_single = single_query_rate(exact, single_queries, k, SearchDirection::Similar);
    let exact_single_dissimilar =
        single_query_rate(exact, single_queries, k, SearchDirection::Dissimilar);
    let agreement = recall(
        truth,
        &faiss_ids
            .iter()
            .map(|ids| {
                ids.iter()
                    .map(|&id| RowMatch {
                        row: id as usize,
                        similarity: 0.0,
                    })
                    .collect()
            })
            .collect::<Vec<_>>(),
    );
    println!(
        "{{\"store\": \"exact\", \"direction\": \"similar\", \"threads\": {threads}, \"build_s\": {exact_build:.3}, \"memory_mib\": {exact_memory:.0}, \"recall\": 1.0, \"single_qps\": {exact_single:.2}, \"batched_qps\": {exact_batched:.2}, \"agreement_with_faiss\": {agreement:.5}}}"
    );
    println!(
        "{{\"store\": \"exact\", \"direction\": \"dissimilar\", \"build_s\": {exact_build:.3}, \"memory_mib\": {exact_memory:.0}, \"recall\": 1.0, \"single_qps\": {exact_single_dissimilar:.2}, \"batched_qps\": {exact_batched_dissimilar:.2}}}"
    );
    photo_rates("exact", exact, queries, k);
    // The exact store in half precision: its speed, and its recall against the f32 one.
    let before = resident_mib();
    let started = Instant::now();
    let mut exact_f16 =
        ExactStore::with_precision(dimension, Metric::InnerProduct, VectorPrecision::F16).unwrap();
    exact_f16.add(base).unwrap();
    let build = started.elapsed().as_secs_f64();
    let memory = resident_mib() - before;
    for (direction, truth) in [
        (SearchDirection::Similar, truth),
        (SearchDirection::Dissimilar, truth_dissimilar),
    ] {
        let single = single_query_rate(&exact_f16, single_queries, k, direction);
        let (found, batched_rate) = best_batched(&exact_f16, queries, k, direction);
        println!(
            "{{\"store\": \"exact-F16\", \"direction\": \"{}\", \"build_s\": {build:.3}, \"memory_mib\": {memory:.0}, \"recall\": {:.4}, \"single_qps\": {single:.2}, \"batched_qps\": {batched_rate:.2}}}",
            direction_name(direction),
            recall(&found, truth),
        );
    }
    photo_rates("exact-F16", &exact_f16, queries, k);
    drop(exact_f16);
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [base, queries, faiss_ids, rest @ ..] = &arguments[..] else {
        eprintln!("usage: index_compare BASE.npy QUERIES.npy FAISS_IDS.npy [K] [PRECISIONS]");
        std::process::exit(2);
    };
    let k: usize = rest
        .first()
        .map_or(20, |k| k.parse().expect("K is a number"));
    // `none`: the exact stores only.
    let precisions: Vec<VectorPrecision> = rest
        .get(1)
        .map_or("f32,f16,i8", String::as_str)
        .split(',')
        .filter(|name| *name != "none")
        .map(|name| match name {
            "f32" => VectorPrecision::F32,
            "f16" => VectorPrecision::F16,
            "i8" => VectorPrecision::I8,
            other => panic!("unknown precision {other:?}: use f32, f16 or i8"),
        })
        .collect();
    let base = read_embeddings_npy(Path::new(base)).expect("the base vectors load");
    let queries = read_embeddings_npy(Path::new(queries)).expect("the queries load");
    let faiss_ids = read_ids(Path::new(faiss_ids));
    let dimension = base.dimension();

    let before = resident_mib();
    let started = Instant::now();
    let exact = ExactStore::from_vectors(dimension, Metric::InnerProduct, base.as_slice().to_vec())
        .unwrap();
    let exact_build = started.elapsed().as_secs_f64();
    let exact_memory = resident_mib() - before;
    let skip_timing = std::env::var("G3_SKIP_EXACT_TIMING").as_deref() == Ok("1");
    let exact_batched_search = if skip_timing { batched } else { best_batched };
    let (truth, exact_batched) =
        exact_batched_search(&exact, queries.as_slice(), k, SearchDirection::Similar);
    let (truth_dissimilar, exact_batched_dissimilar) =
        exact_batched_search(&exact, queries.as_slice(), k, SearchDirection::Dissimilar);
    if !skip_timing {
        let exact_rates = ExactRates {
            build_s: exact_build,
            memory_mib: exact_memory,
            batched_similar: exact_batched,
            batched_dissimilar: exact_batched_dissimilar,
        };
        time_exact_stores(
            &exact,
            &exact_rates,
            base.as_slice(),
            queries.as_slice(),
            [&truth, &truth_dissimilar],
            &faiss_ids,
            k,
        );
    }
    drop(exact);

    let connectivity = setting("G3_HNSW_CONNECTIVITY", HnswConfig::default().connectivity);
    let expansion_add = setting("G3_HNSW_EXPANSION_ADD", HnswConfig::default().expansion_add);
    let depths = rerank_depths();
    for precision in precisions {
        let before = resident_mib();
        let started = Instant::now();
        // Quantised graphs keep an f32 copy, so that the same graph is timed with and
        // without exact re-ranking of the beam's candidates.
        let config = HnswConfig {
            rerank: usize::from(precision != VectorPrecision::F32),
            connectivity,
            expansion_add,
            ..HnswConfig::default()
        };
        let mut store = HnswStore::new(dimension, Metric::InnerProduct, precision, config).unwrap();
        store.add(base.as_slice(), &|_| {}).unwrap();
        let build = started.elapsed().as_secs_f64();
        let memory = resident_mib() - before;
        let usearch_mib = store.memory_usage() as f64 / (1 << 20) as f64;
        // `None`: the graph's own ranking; `Some`: re-ranked exactly to that depth.
        let mut variants: Vec<Option<RerankDepth>> = vec![None];
        if precision != VectorPrecision::F32 {
            variants.extend(depths.iter().copied().map(Some));
        }
        for variant in variants {
            let name = match variant {
                Some(_) => format!("hnsw-{precision:?}+rerank"),
                None => format!("hnsw-{precision:?}"),
            };
            let graph = format!(
                "\"build_s\": {build:.3}, \"memory_mib\": {memory:.0}, \"usearch_mib\": {usearch_mib:.0}, \"connectivity\": {connectivity}, \"expansion_add\": {expansion_add}"
            );
            for (direction, expansions, truth) in [
                (
                    SearchDirection::Similar,
                    &[64, 128, 192, 256, 384, 512][..],
                    &truth,
                ),
                (
                    SearchDirection::Dissimilar,
                    &[256, 384, 512, 768, 1024][..],
                    &truth_dissimilar,
                ),
            ] {
                for &expansion in expansions {
                    if direction == SearchDirection::Similar {
                        store.set_expansion_search(expansion);
                    } else {
                        // usearch's beam is max(expansion_search, requested count): the
                        // default similar beam, so that the dissimilar beam alone sets it.
                        store.set_expansion_search(HnswConfig::default().expansion_search);
                        store.set_expansion_dissimilar(expansion);
                    }
                    let depth = variant.map_or(0, |depth| depth.at(expansion));
                    store.set_rerank(depth).unwrap();
                    let single = single_query_rate(&store, queries.as_slice(), k, direction);
                    let (found, batched_rate) = batched(&store, queries.as_slice(), k, direction);
                    println!(
                        "{{\"store\": \"{name}\", \"direction\": \"{}\", \"expansion\": {expansion}, \"rerank\": {depth}, {graph}, \"recall\": {:.4}, \"single_qps\": {single:.1}, \"batched_qps\": {batched_rate:.1}}}",
                        direction_name(direction),
                        recall(&found, truth),
                    );
                }
            }
        }
    }
}

//! The exact store against faiss: same ids, scores within 1e-5, on fixtures written by
//! `tools/goldens/faiss_flat.py` (faiss-cpu 1.15.1).

use std::path::{Path, PathBuf};

use g3_core::SearchDirection;
use g3_index::{
    ExactStore, FaissMetric, HnswConfig, HnswStore, Metric, VectorIndex, VectorPrecision,
    read_faiss_flat,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Answers {
    ids: Vec<Vec<usize>>,
    scores: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Goldens {
    k: usize,
    dimension: usize,
    queries: Vec<Vec<f32>>,
    similar: Answers,
    dissimilar: Answers,
    l2_vectors: Vec<Vec<f32>>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn goldens() -> Goldens {
    let text = std::fs::read_to_string(fixture("flat_ip_goldens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_same(found: &[Vec<g3_index::RowMatch>], expected: &Answers, label: &str) {
    assert_eq!(found.len(), expected.ids.len());
    for (query, (found, (ids, scores))) in found
        .iter()
        .zip(expected.ids.iter().zip(&expected.scores))
        .enumerate()
    {
        let rows: Vec<usize> = found.iter().map(|m| m.row).collect();
        assert_eq!(&rows, ids, "{label}: query {query}");
        for (found, score) in found.iter().zip(scores) {
            assert!(
                (found.similarity - score).abs() <= 1e-5,
                "{label}: query {query}: {} vs faiss {score}",
                found.similarity
            );
        }
    }
}

#[test]
fn exact_store_matches_faiss_index_flat_ip() {
    let goldens = goldens();
    let faiss = read_faiss_flat(&fixture("flat_ip.faissindex")).unwrap();
    assert_eq!(faiss.metric, FaissMetric::InnerProduct);
    assert_eq!((faiss.len(), faiss.dimension), (1000, goldens.dimension));
    let store =
        ExactStore::from_vectors(faiss.dimension, Metric::InnerProduct, faiss.vectors).unwrap();
    let queries: Vec<f32> = goldens.queries.concat();

    // All 24 queries at once: the blocked matrix-product path.
    let batched = store
        .search_rows(&queries, goldens.k, SearchDirection::Similar)
        .unwrap();
    assert_same(&batched, &goldens.similar, "similar, batched");
    let batched = store
        .search_rows(&queries, goldens.k, SearchDirection::Dissimilar)
        .unwrap();
    assert_same(&batched, &goldens.dissimilar, "dissimilar, batched");

    // One query at a time: the dot-product scan.
    for direction in [SearchDirection::Similar, SearchDirection::Dissimilar] {
        let single: Vec<_> = goldens
            .queries
            .iter()
            .map(|q| {
                store
                    .search_rows(q, goldens.k, direction)
                    .unwrap()
                    .remove(0)
            })
            .collect();
        let expected = match direction {
            SearchDirection::Similar => &goldens.similar,
            SearchDirection::Dissimilar => &goldens.dissimilar,
        };
        assert_same(&single, expected, &format!("{direction:?}, one by one"));
    }
}

#[test]
fn hnsw_store_finds_faiss_neighbours_on_the_fixture() {
    // Not an exactness claim: on 1,000 vectors with a generous expansion the graph search
    // should find nearly every true neighbour, in both directions.
    let goldens = goldens();
    let faiss = read_faiss_flat(&fixture("flat_ip.faissindex")).unwrap();
    let mut store = HnswStore::new(
        faiss.dimension,
        Metric::InnerProduct,
        VectorPrecision::F32,
        HnswConfig::default(),
    )
    .unwrap();
    store.add(&faiss.vectors, &|_| {}).unwrap();
    store.set_expansion_search(200);
    let queries: Vec<f32> = goldens.queries.concat();
    for (direction, expected) in [
        (SearchDirection::Similar, &goldens.similar),
        (SearchDirection::Dissimilar, &goldens.dissimilar),
    ] {
        let found = store.search_rows(&queries, goldens.k, direction).unwrap();
        let mut hits = 0;
        for (found, ids) in found.iter().zip(&expected.ids) {
            hits += found.iter().filter(|m| ids.contains(&m.row)).count();
        }
        let recall = hits as f64 / (goldens.k * goldens.queries.len()) as f64;
        assert!(
            recall >= 0.95,
            "{direction:?}: recall@{} = {recall}",
            goldens.k
        );
        // Similarities are the plain inner products, in the search direction's order.
        for (found, ids_scores) in found.iter().zip(expected.ids.iter().zip(&expected.scores)) {
            for m in found {
                if let Some(position) = ids_scores.0.iter().position(|&id| id == m.row) {
                    assert!((m.similarity - ids_scores.1[position]).abs() < 1e-5);
                }
            }
        }
    }
}

#[test]
fn reads_index_flat_l2_vectors_exactly() {
    let goldens = goldens();
    let faiss = read_faiss_flat(&fixture("flat_l2.faissindex")).unwrap();
    assert_eq!(faiss.metric, FaissMetric::L2);
    assert_eq!(faiss.dimension, 8);
    assert_eq!(faiss.vectors, goldens.l2_vectors.concat());
}

#[test]
fn quantised_graphs_re_ranked_score_exactly_like_faiss() {
    // f16 and i8 graphs with exact re-ranking: the neighbours they return carry faiss's
    // f32 scores (within 1e-5), in faiss's order, and recall is at least the graph's own.
    let goldens = goldens();
    let faiss = read_faiss_flat(&fixture("flat_ip.faissindex")).unwrap();
    let queries: Vec<f32> = goldens.queries.concat();
    for precision in [VectorPrecision::F16, VectorPrecision::I8] {
        let config = HnswConfig {
            rerank: 64,
            ..HnswConfig::default()
        };
        let mut store =
            HnswStore::new(faiss.dimension, Metric::InnerProduct, precision, config).unwrap();
        store.add(&faiss.vectors, &|_| {}).unwrap();
        assert_eq!(store.exact_vectors(), Some(&faiss.vectors[..]));
        store.set_expansion_search(200);
        for (direction, expected) in [
            (SearchDirection::Similar, &goldens.similar),
            (SearchDirection::Dissimilar, &goldens.dissimilar),
        ] {
            let recall_of = |store: &HnswStore| {
                let found = store.search_rows(&queries, goldens.k, direction).unwrap();
                let hits: usize = found
                    .iter()
                    .zip(&expected.ids)
                    .map(|(found, ids)| found.iter().filter(|m| ids.contains(&m.row)).count())
                    .sum();
                (
                    found,
                    hits as f64 / (goldens.k * goldens.queries.len()) as f64,
                )
            };
            store.set_rerank(0).unwrap();
            let (_, quantised_recall) = recall_of(&store);
            store.set_rerank(64).unwrap();
            let (found, recall) = recall_of(&store);
            let label = format!("{precision:?} {direction:?}");
            assert!(recall >= 0.95, "{label}: recall@{} = {recall}", goldens.k);
            assert!(
                recall >= quantised_recall,
                "{label}: {recall} < {quantised_recall}"
            );
            for (found, (ids, scores)) in
                found.iter().zip(expected.ids.iter().zip(&expected.scores))
            {
                for pair in found.windows(2) {
                    match direction {
                        SearchDirection::Similar => {
                            assert!(pair[0].similarity >= pair[1].similarity)
                        }
                        SearchDirection::Dissimilar => {
                            assert!(pair[0].similarity <= pair[1].similarity)
                        }
                    }
                }
                for m in found {
                    if let Some(position) = ids.iter().position(|&id| id == m.row) {
                        assert!((m.similarity - scores[position]).abs() < 1e-5, "{label}");
                    }
                }
            }
        }
    }
}

#[test]
fn re_ranking_needs_a_quantised_graph_with_its_f32_copy() {
    let f32_graph = HnswStore::new(
        8,
        Metric::InnerProduct,
        VectorPrecision::F32,
        HnswConfig {
            rerank: 16,
            ..HnswConfig::default()
        },
    );
    let message = f32_graph
        .err()
        .expect("an f32 graph cannot re-rank")
        .to_string();
    assert!(message.contains("re-ranking"), "{message}");
    let mut without_copy = HnswStore::new(
        8,
        Metric::InnerProduct,
        VectorPrecision::I8,
        HnswConfig::default(),
    )
    .unwrap();
    assert!(without_copy.exact_vectors().is_none());
    let message = without_copy.set_rerank(16).unwrap_err().to_string();
    assert!(message.contains("no f32 copy"), "{message}");
    without_copy.set_rerank(0).unwrap();
}

#[test]
fn exact_f16_store_scores_within_1e_3_of_faiss() {
    // Half-precision storage: every score within 1e-3 of the f32 inner product, and every
    // entry faiss ranks clearly inside the top k (by more than 2e-3) is found.
    let goldens = goldens();
    let faiss = read_faiss_flat(&fixture("flat_ip.faissindex")).unwrap();
    let mut store =
        ExactStore::with_precision(faiss.dimension, Metric::InnerProduct, VectorPrecision::F16)
            .unwrap();
    store.add(&faiss.vectors).unwrap();
    assert_eq!(store.precision(), VectorPrecision::F16);
    assert!(store.vectors().is_none());
    let queries: Vec<f32> = goldens.queries.concat();
    let dimension = faiss.dimension;
    for (direction, expected) in [
        (SearchDirection::Similar, &goldens.similar),
        (SearchDirection::Dissimilar, &goldens.dissimilar),
    ] {
        // Both search paths: one query at a time, and the batched matrix product.
        let batched = store.search_rows(&queries, goldens.k, direction).unwrap();
        let single: Vec<_> = queries
            .chunks_exact(dimension)
            .map(|query| {
                store
                    .search_rows(query, goldens.k, direction)
                    .unwrap()
                    .remove(0)
            })
            .collect();
        for found in [&batched, &single] {
            for ((found, query), (ids, scores)) in found
                .iter()
                .zip(queries.chunks_exact(dimension))
                .zip(expected.ids.iter().zip(&expected.scores))
            {
                assert_eq!(found.len(), goldens.k);
                for m in found {
                    let exact = dot(query, &faiss.vectors[m.row * dimension..][..dimension]);
                    assert!((m.similarity - exact).abs() < 1e-3, "{direction:?}");
                }
                let kth = scores[goldens.k - 1];
                for (id, score) in ids.iter().zip(scores) {
                    let clearly_inside = match direction {
                        SearchDirection::Similar => *score > kth + 2e-3,
                        SearchDirection::Dissimilar => *score < kth - 2e-3,
                    };
                    if clearly_inside {
                        assert!(
                            found.iter().any(|m| m.row == *id),
                            "{direction:?}: {id} missing"
                        );
                    }
                }
            }
        }
    }
    let i8_store = ExactStore::with_precision(8, Metric::InnerProduct, VectorPrecision::I8);
    assert!(
        i8_store
            .err()
            .unwrap()
            .to_string()
            .contains("i8 storage is for HNSW")
    );
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[test]
fn the_faiss_reader_streams_the_same_vectors_in_chunks() {
    let whole = read_faiss_flat(&fixture("flat_ip.faissindex")).unwrap();
    let mut reader = g3_index::FaissFlatReader::open(&fixture("flat_ip.faissindex")).unwrap();
    assert_eq!(reader.len(), whole.len());
    assert_eq!(reader.dimension(), whole.dimension);
    assert_eq!(reader.metric(), FaissMetric::InnerProduct);
    let mut streamed = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = reader.next_rows(7).unwrap() {
        assert!(chunk.len() <= 7 * whole.dimension);
        streamed.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, whole.len().div_ceil(7));
    assert_eq!(streamed, whole.vectors);
    assert!(reader.next_rows(7).unwrap().is_none());
}

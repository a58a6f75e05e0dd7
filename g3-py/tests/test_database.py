"""The database from Python: faiss's goldens, numpy's exact answers, the Rust tool's."""

import csv
import json
import subprocess

import numpy as np
import pytest

import g3rs
from conftest import ROOT

FAISS = ROOT / "g3-index/tests/fixtures"


def unit_rows(rng, rows, dimension):
    values = rng.standard_normal((rows, dimension)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def random_database():
    rng = np.random.default_rng(7)
    vectors = unit_rows(rng, 500, 32)
    locations = np.column_stack([rng.uniform(-80, 80, 500), rng.uniform(-179, 179, 500)])
    keys = np.arange(1000, 1500, dtype=np.uint64)
    database = g3rs.Database.build(
        vectors, locations, keys=keys, texts={"city": [f"city-{i}" for i in range(500)]}
    )
    return database, vectors, locations, keys, unit_rows(rng, 40, 32)


def test_the_imported_faiss_index_answers_as_faiss(tmp_path):
    goldens = json.loads((FAISS / "flat_ip_goldens.json").read_text())
    database = g3rs.Database.import_faiss(
        FAISS / "flat_ip.faissindex", FAISS / "flat_ip_metadata.csv", tmp_path / "imported.db"
    )
    queries = np.array(goldens["queries"], dtype=np.float32)
    k = goldens["k"]
    similar = database.search(queries, k)
    np.testing.assert_array_equal(similar.rows, goldens["similar"]["ids"])
    np.testing.assert_allclose(similar.similarities, goldens["similar"]["scores"], atol=1e-5)
    dissimilar = database.search_dissimilar(queries, k)
    np.testing.assert_array_equal(dissimilar.rows, goldens["dissimilar"]["ids"])
    # The metadata CSV's coordinates come along with every neighbour.
    with open(FAISS / "flat_ip_metadata.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    first = similar.rows[0, 0]
    assert similar.locations[0, 0] == pytest.approx((float(rows[first]["LAT"]), float(rows[first]["LON"])))
    assert g3rs.Database.open(tmp_path / "imported.db").dimension == goldens["dimension"]


def test_exact_search_equals_numpy(random_database):
    database, vectors, locations, keys, queries = random_database
    scores = queries @ vectors.T
    found = database.search(queries, k=7)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(found.rows, expected)
    np.testing.assert_array_equal(found.keys, keys[expected])
    np.testing.assert_allclose(found.similarities, np.take_along_axis(scores, expected, 1), atol=1e-5)
    np.testing.assert_allclose(found.locations, locations[expected])
    dissimilar = database.search_dissimilar(queries, k=5)
    np.testing.assert_array_equal(dissimilar.rows, np.argsort(scores, axis=1, kind="stable")[:, :5])
    similar, dissimilar_too = database.search_both(queries, 7, 5)
    np.testing.assert_array_equal(similar.rows, found.rows)
    np.testing.assert_array_equal(dissimilar_too.rows, dissimilar.rows)


def test_a_single_query_and_odd_layouts(random_database):
    database, _, _, _, queries = random_database
    batch = database.search(queries, k=3)
    one = database.search(queries[5], k=3)
    assert one.rows.shape == (3,) and one.locations.shape == (3, 2)
    np.testing.assert_array_equal(one.rows, batch.rows[5])
    # Float64 and non-contiguous queries are converted, with the same answers.
    np.testing.assert_array_equal(database.search(queries.astype(np.float64), k=3).rows, batch.rows)
    wide = np.zeros((queries.shape[0], 64), dtype=np.float32)
    wide[:, ::2] = queries
    np.testing.assert_array_equal(database.search(wide[:, ::2], k=3).rows, batch.rows)


def test_more_neighbours_than_entries_are_padded():
    database = g3rs.Database.build(np.eye(3, dtype=np.float32), [[0, 0], [1, 1], [2, 2]])
    found = database.search(np.eye(3, dtype=np.float32)[:1], k=5)
    assert found.rows.tolist() == [[0, 1, 2, -1, -1]]
    assert np.isnan(found.similarities[0, 3:]).all()
    assert np.isnan(found.locations[0, 3:]).all()


def test_a_saved_database_reopens_with_its_metadata(tmp_path, random_database):
    database, vectors, locations, keys, queries = random_database
    database.save(tmp_path / "saved.db")
    reopened = g3rs.Database.open(tmp_path / "saved.db")
    assert len(reopened) == 500 and reopened.dimension == 32
    assert reopened.config["kind"] == "exact"
    np.testing.assert_array_equal(reopened.keys, keys)
    np.testing.assert_allclose(reopened.locations, locations)
    assert reopened.text_columns == ["city"]
    assert reopened.texts([0, 499], "city") == ["city-0", "city-499"]
    np.testing.assert_array_equal(reopened.search(queries, 4).rows, database.search(queries, 4).rows)


def test_python_search_equals_the_rust_tool(tmp_path, random_database, g3_binary):
    database, _, _, _, queries = random_database
    database.save(tmp_path / "db")
    np.save(tmp_path / "queries.npy", queries)
    subprocess.run(
        [g3_binary, "-q", "index", "search", "--db", tmp_path / "db", "--queries",
         tmp_path / "queries.npy", "--k", "6", "--output", tmp_path / "neighbours.csv"],
        check=True,
    )
    with open(tmp_path / "neighbours.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    found = database.search(queries, k=6)
    for row in rows:
        query, rank = int(row["query"]), int(row["rank"])
        assert int(row["key"]) == found.keys[query, rank]
        assert float(row["score"]) == pytest.approx(float(found.similarities[query, rank]), abs=1e-6)
    assert len(rows) == queries.shape[0] * 6


def test_hnsw_graphs_find_the_exact_neighbours_of_a_small_collection(random_database):
    _, vectors, locations, _, queries = random_database
    exact = g3rs.Database.build(vectors, locations)
    graph = g3rs.Database.build(vectors, locations, kind="hnsw", expansion_search=200)
    assert graph.config["kind"] == "hnsw"
    truth = exact.search(queries, 10).rows
    found = graph.search(queries, 10).rows
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
    assert recall > 0.95
    graph.set_expansion_search(16)
    assert graph.config["hnsw"]["expansion_search"] == 16
    with pytest.raises(g3rs.G3Error, match="rerank"):
        graph.set_rerank(10)


def test_bad_input_raises_clear_errors(tmp_path, random_database):
    database, vectors, locations, _, _ = random_database
    with pytest.raises(g3rs.G3Error, match="32-d"):
        database.search(np.zeros((2, 8), dtype=np.float32))
    with pytest.raises(g3rs.G3Error, match="NaN|finite"):
        database.search(np.full((1, 32), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="locations has 3 rows"):
        g3rs.Database.build(vectors, locations[:3])
    with pytest.raises(ValueError, match="kind"):
        g3rs.Database.build(vectors, locations, kind="ivf")
    with pytest.raises(g3rs.G3Error, match="missing.db"):
        g3rs.Database.open(tmp_path / "missing.db")

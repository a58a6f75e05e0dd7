#!/usr/bin/env python3
"""Database search from Python: g3rs's `Database.search` against the Rust API it wraps and
against faiss-cpu called from the same Python, side by side in one process, on one dataset.

The data are index.py's clustered unit vectors (G3's database width, 2304, by default 200,000
entries and 1,000 held-out queries). Measured, all with k = 20:

- exact store vs faiss `IndexFlatIP`: single queries (one per call) and one batched call;
- HNSW vs faiss `IndexHNSWFlat`, the same graph settings (by default M = 32, efConstruction
  = 128, the best of both libraries in docs/performance.md's grid), g3's graph in i8 with its
  best 40 candidates re-ranked exactly (its recommended store): recall@20 against exact
  search and queries per second at each ef, single and batched; the tables compare the
  fastest setting of each library reaching a recall level;
- the Rust API's rate on the same `Database` (the same build, the same memory): the loop
  `VectorIndex::search_rows` + keys and locations, timed in Rust (`rust_search_seconds`).
  `Database.search`'s ratio to it is the binding's overhead.

Both libraries use every core (faiss through OpenMP, g3 through rayon). Needs a release
wheel and faiss:

    python3 -m venv /tmp/pysearch && /tmp/pysearch/bin/pip install maturin numpy \\
        -r tools/goldens/requirements-faiss.txt
    /tmp/pysearch/bin/maturin build --release -m g3-py/Cargo.toml --locked -o dist
    /tmp/pysearch/bin/pip install dist/g3rs-*.whl
    /tmp/pysearch/bin/python benches/compare/python_search.py [--entries 200000] [--no-hnsw]
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

import g3rs
from g3rs import _native

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index import clustered, recall  # noqa: E402  (the same data as the index comparison)

K = 20
SINGLE_EXACT = 60
SINGLE_HNSW = 500
RECALL_LEVELS = [0.90, 0.95, 0.99]


def elapsed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def timed_rates(name, count, python, rust, reference, repeats):
    """Queries per second of the three callers of one search: the best of `repeats` rounds,
    each round timing the three in turn, so that a slow spell of a shared machine touches
    all three alike."""
    best = {"g3rs_python": float("inf"), "g3_rust_api": float("inf"), "faiss_python": float("inf")}
    for _ in range(repeats):
        best["g3rs_python"] = min(best["g3rs_python"], elapsed(python))
        best["g3_rust_api"] = min(best["g3_rust_api"], rust())
        best["faiss_python"] = min(best["faiss_python"], elapsed(reference))
    row = {"search": name, "queries": count}
    row.update({caller: count / seconds for caller, seconds in best.items()})
    row["python_vs_rust"] = row["g3rs_python"] / row["g3_rust_api"]
    row["python_vs_faiss"] = row["g3rs_python"] / row["faiss_python"]
    print(json.dumps(row), flush=True)
    return row


def exact(database, flat, queries):
    single = queries[:SINGLE_EXACT]
    rows = [
        timed_rates(
            "exact, single query",
            len(single),
            lambda: [database.search(q, K) for q in single],
            lambda: _native.rust_search_seconds(database, single, K, 1),
            lambda: [flat.search(single[i : i + 1], K) for i in range(len(single))],
            2,
        ),
        timed_rates(
            "exact, batched",
            len(queries),
            lambda: database.search(queries, K),
            lambda: _native.rust_search_seconds(database, queries, K, len(queries)),
            lambda: flat.search(queries, K),
            3,
        ),
    ]
    truth = database.search(queries, K).rows
    _, faiss_ids = flat.search(queries, K)
    agreement = recall(truth, faiss_ids)
    print(json.dumps({"exact_agreement_with_faiss": agreement}), flush=True)
    return rows, truth, agreement


def hnsw(base, locations, queries, truth, arguments):
    cache = arguments.graphs
    g3_path = cache / f"g3-{arguments.precision}-m{arguments.connectivity}.db" if cache else None
    faiss_path = cache / f"faiss-m{arguments.connectivity}.index" if cache else None
    g3_build = faiss_build = None
    if g3_path and g3_path.exists():
        graph = g3rs.Database.open(g3_path)
    else:
        started = time.perf_counter()
        graph = g3rs.Database.build(
            base,
            locations,
            kind="hnsw",
            precision=arguments.precision,
            connectivity=arguments.connectivity,
            expansion_add=arguments.expansion_add,
            rerank=arguments.rerank or None,
        )
        g3_build = time.perf_counter() - started
        if g3_path:
            graph.save(g3_path)
    if faiss_path and faiss_path.exists():
        reference = faiss.read_index(str(faiss_path))
    else:
        started = time.perf_counter()
        reference = faiss.IndexHNSWFlat(base.shape[1], arguments.connectivity, faiss.METRIC_INNER_PRODUCT)
        reference.hnsw.efConstruction = arguments.expansion_add
        reference.add(base)
        faiss_build = time.perf_counter() - started
        if faiss_path:
            faiss.write_index(reference, str(faiss_path))
    print(json.dumps({"hnsw_build_seconds": {"g3rs": g3_build, "faiss": faiss_build}}), flush=True)
    single = queries[:SINGLE_HNSW]
    points = []
    for ef in arguments.expansions:
        graph.set_expansion_search(ef)
        reference.hnsw.efSearch = ef
        g3_recall = recall(graph.search(queries, K).rows, truth)
        faiss_recall = recall(reference.search(queries, K)[1], truth)
        print(json.dumps({"ef": ef, "g3rs_recall": g3_recall, "faiss_recall": faiss_recall}), flush=True)
        row = {
            "ef": ef,
            "g3rs_recall": g3_recall,
            "faiss_recall": faiss_recall,
            "single": timed_rates(
                f"hnsw ef={ef}, single query",
                len(single),
                lambda: [graph.search(q, K) for q in single],
                lambda: _native.rust_search_seconds(graph, single, K, 1),
                lambda: [reference.search(single[i : i + 1], K) for i in range(len(single))],
                2,
            ),
            "batched": timed_rates(
                f"hnsw ef={ef}, batched",
                len(queries),
                lambda: graph.search(queries, K),
                lambda: _native.rust_search_seconds(graph, queries, K, len(queries)),
                lambda: reference.search(queries, K),
                3,
            ),
        }
        points.append(row)
    frontier = []
    for level in RECALL_LEVELS:
        for mode in ["single", "batched"]:
            ours = [p[mode]["g3rs_python"] for p in points if p["g3rs_recall"] >= level]
            theirs = [p[mode]["faiss_python"] for p in points if p["faiss_recall"] >= level]
            if ours and theirs:
                frontier.append({
                    "recall_at_least": level,
                    "mode": mode,
                    "g3rs_python_qps": max(ours),
                    "faiss_python_qps": max(theirs),
                    "ratio": max(ours) / max(theirs),
                })
    for row in frontier:
        print(json.dumps(row), flush=True)
    settings = {"connectivity": arguments.connectivity, "expansion_add": arguments.expansion_add,
                "g3_precision": arguments.precision, "g3_rerank": arguments.rerank}
    return {"settings": settings, "build_seconds": {"g3rs": g3_build, "faiss": faiss_build},
            "points": points, "equal_recall": frontier}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--dimension", type=int, default=2304)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-hnsw", action="store_true", help="time the exact stores only")
    parser.add_argument("--connectivity", type=int, default=32, help="HNSW M of both graphs")
    parser.add_argument("--expansion-add", type=int, default=128, help="efConstruction of both")
    parser.add_argument("--precision", default="i8", help="g3's graph vectors: f32, f16 or i8")
    parser.add_argument("--rerank", type=int, default=40, help="g3 candidates re-ranked in f32 (0: none)")
    parser.add_argument("--expansions", type=lambda text: [int(v) for v in text.split(",")],
                        default=[64, 128, 192, 256, 384], help="the ef values timed, comma-separated")
    parser.add_argument("--output", type=Path, help="write every figure as JSON here")
    parser.add_argument("--graphs", type=Path, help="keep both HNSW graphs in this folder and reuse them "
                        "(the data are seeded, so a rerun times the same graphs without building them)")
    arguments = parser.parse_args()

    rng = np.random.default_rng(2024)
    vectors = clustered(arguments.entries + arguments.queries, arguments.dimension, rng)
    base, queries = vectors[: arguments.entries], np.ascontiguousarray(vectors[arguments.entries :])
    locations = np.column_stack([rng.uniform(-80, 80, len(base)), rng.uniform(-180, 180, len(base))])
    print(f"{len(base)} x {base.shape[1]} entries, {len(queries)} queries, k = {K}; "
          f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"g3rs {g3rs.__version__}, faiss {faiss.__version__}", flush=True)

    database = g3rs.Database.build(base, locations)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    rows, truth, agreement = exact(database, flat, queries)
    results = {"entries": len(base), "dimension": base.shape[1], "queries": len(queries), "k": K,
               "cores": os.cpu_count(), "exact": rows, "exact_agreement_with_faiss": agreement}
    if not arguments.no_hnsw:
        del flat
        results["hnsw"] = hnsw(base, locations, queries, truth, arguments)
    if arguments.output:
        arguments.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

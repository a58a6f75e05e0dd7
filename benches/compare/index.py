#!/usr/bin/env python3
"""Vector search: g3-index's exact and HNSW stores against faiss, same machine, same data.

Two clustered synthetic datasets of unit vectors (G3's database vectors are unit length):
  - 200,000 x 2304 (G3's database embedding width),
  - 1,000,000 x 768 (a CLIP ViT-L/14 image embedding width),
each with 1,000 held-out queries from the same clusters. For every store: build time,
resident memory, recall@20 against exact search, single-query and batched queries per
second, for similar search and for the reference's dissimilar search (lowest inner product,
faiss searched with the negated query). faiss: IndexFlatIP (the reference) and
IndexHNSWFlat (by default M = 16, efConstruction = 128, the usearch defaults g3-index uses;
`--connectivity` and `--expansion-add` change both libraries' graphs alike).
g3-index: the exact store, HNSW graphs over f32, f16 and i8 vectors, and the f16 and i8
graphs again with exact re-ranking ("+rerank": the ef candidates of the walk re-scored in
f32 from the kept vectors).

The vectors model what image embeddings look like rather than isotropic noise: a shared mean
direction (embeddings fill a cone), 2,000 cluster centres, variation within a cluster along
a 32-dimensional subspace, and a little isotropic noise; see `clustered`. (With isotropic
noise of full dimension every neighbour beyond a few cluster mates is a near-tie, which no
approximate index can rank: recall@20 of both HNSW libraries fell to 0.6-0.8 on such data.)

    python3 -m venv /tmp/faissvenv
    /tmp/faissvenv/bin/pip install -r tools/goldens/requirements-faiss.txt
    cargo build --release --example index_compare
    /tmp/faissvenv/bin/python benches/compare/index.py [--only 200k|1m] [--precisions f32,f16,i8]
        [--connectivity 16] [--expansion-add 128] [--workdir DIR] [--exact-only]

The exact stores are also timed at G3's own job: each photo's K most and K least similar
entries, photos in batches of 1, 16 and 64 (faiss: a search and a negated search per batch;
g3: one pass for both).

Both libraries use every core (faiss through OpenMP, g3-index through rayon). "Single-query"
means one query per call, answered in turn; "batched" means all 1,000 queries in one call.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
K = 20
QUERIES = 1000
CLUSTERS = 2000


def resident_mib():
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def clustered(count, dimension, rng):
    """Unit vectors: normalise(0.5 m + c + B z + e), with m a shared unit mean direction, c one
    of CLUSTERS unit centres, B a fixed random dimension x 32 basis scaled so that B z has
    norm about 0.6, and e isotropic noise of norm about 0.15. Generated in blocks to bound
    memory."""
    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    mean = unit(rng.standard_normal(dimension, dtype=np.float32))
    centres = unit(rng.standard_normal((CLUSTERS, dimension), dtype=np.float32))
    basis = rng.standard_normal((32, dimension), dtype=np.float32) * (0.6 / np.sqrt(dimension))
    out = np.empty((count, dimension), dtype=np.float32)
    for start in range(0, count, 50_000):
        stop = min(count, start + 50_000)
        n = stop - start
        block = 0.5 * mean + centres[rng.integers(0, CLUSTERS, n)]
        block += rng.standard_normal((n, 32), dtype=np.float32) @ basis
        block += rng.standard_normal((n, dimension), dtype=np.float32) * (0.15 / np.sqrt(dimension))
        out[start:stop] = unit(block)
    return out


def rate(function, count):
    started = time.perf_counter()
    function()
    return count / (time.perf_counter() - started)


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


PHOTO_BATCHES = (1, 16, 64)
PHOTOS_TIMED = 128


def faiss_photo_rates(flat, queries):
    """G3's retrieval with IndexFlatIP: each photo's K most similar entries and its K least
    similar ones (the negated query), the photos in batches; photos per second by batch size."""
    photos = queries[:PHOTOS_TIMED]
    rates = {}
    for batch in PHOTO_BATCHES:
        started = time.perf_counter()
        for start in range(0, len(photos), batch):
            chunk = photos[start : start + batch]
            flat.search(chunk, K)
            flat.search(np.ascontiguousarray(-chunk), K)
        rates[batch] = len(photos) / (time.perf_counter() - started)
    return rates


def run_faiss(base, queries, connectivity, expansion_add, exact_only=False):
    rows = []
    dimension = base.shape[1]
    before = resident_mib()
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(dimension)
    flat.add(base)
    build = time.perf_counter() - started
    memory = resident_mib() - before
    single = rate(lambda: [flat.search(queries[i : i + 1], K) for i in range(20)], 20)
    single_dissimilar = rate(lambda: [flat.search(-queries[i : i + 1], K) for i in range(20)], 20)
    started = time.perf_counter()
    _, truth = flat.search(queries, K)
    batched = QUERIES / (time.perf_counter() - started)
    started = time.perf_counter()
    _, truth_dissimilar = flat.search(-queries, K)
    batched_dissimilar = QUERIES / (time.perf_counter() - started)
    photos = faiss_photo_rates(flat, queries)
    common = {"store": "faiss IndexFlatIP", "build_s": build, "memory_mib": memory, "recall": 1.0, "photos_per_s": photos}
    rows.append({**common, "direction": "similar", "single_qps": single, "batched_qps": batched})
    rows.append({**common, "direction": "dissimilar", "single_qps": single_dissimilar, "batched_qps": batched_dissimilar})
    del flat
    if exact_only:
        return rows, truth

    before = resident_mib()
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dimension, connectivity, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = expansion_add
    hnsw.add(base)
    build = time.perf_counter() - started
    memory = resident_mib() - before
    for direction, sign, expansions, expected in (("similar", 1, (64, 128, 192, 256), truth),
                                                   ("dissimilar", -1, (256, 384, 512, 1024), truth_dissimilar)):
        for expansion in expansions:
            hnsw.hnsw.efSearch = expansion
            signed = np.ascontiguousarray(sign * queries)
            single = rate(lambda: [hnsw.search(signed[i : i + 1], K) for i in range(QUERIES)], QUERIES)
            started = time.perf_counter()
            _, found = hnsw.search(signed, K)
            batched = QUERIES / (time.perf_counter() - started)
            rows.append({"store": "faiss IndexHNSWFlat", "direction": direction, "expansion": expansion,
                         "build_s": build, "memory_mib": memory, "recall": recall(found, expected),
                         "single_qps": single, "batched_qps": batched})
    return rows, truth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["200k", "1m"])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--precisions", default="f32,f16,i8", help="g3 HNSW graphs to build, comma-separated")
    parser.add_argument("--exact-only", action="store_true",
                        help="only the exact stores (f32, f16) against IndexFlatIP: no graph is built")
    parser.add_argument("--connectivity", type=int, default=16, help="HNSW M of both libraries' graphs")
    parser.add_argument("--expansion-add", type=int, default=128, help="HNSW efConstruction of both libraries' graphs")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the datasets (for a quick check)")
    arguments = parser.parse_args()
    datasets = [("200k", 200_000, 2304), ("1m", 1_000_000, 768)]
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="g3-index-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    binary = ROOT / "target" / "release" / "examples" / "index_compare"
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} cores; "
          f"both graphs M = {arguments.connectivity}, efConstruction = {arguments.expansion_add}")
    for name, count, dimension in datasets:
        if arguments.only and arguments.only != name:
            continue
        count = int(count * arguments.scale)
        rng = np.random.default_rng(2024)
        everything = clustered(count + QUERIES, dimension, rng)
        base, queries = everything[:count], np.ascontiguousarray(everything[count:])
        del everything
        paths = {part: workdir / f"{name}-{part}.npy" for part in ("base", "queries", "faiss-ids")}
        np.save(paths["base"], base)
        np.save(paths["queries"], queries)
        faiss_rows, truth = run_faiss(base, queries, arguments.connectivity, arguments.expansion_add,
                                      arguments.exact_only)
        np.save(paths["faiss-ids"], truth.astype(np.int64))
        del base
        settings = {"G3_HNSW_CONNECTIVITY": str(arguments.connectivity), "G3_HNSW_EXPANSION_ADD": str(arguments.expansion_add)}
        precisions = "none" if arguments.exact_only else arguments.precisions
        output = subprocess.run([str(binary), str(paths["base"]), str(paths["queries"]), str(paths["faiss-ids"]), str(K), precisions],
                                check=True, capture_output=True, text=True, env={**os.environ, **settings}).stdout
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        ours = [record for record in records if "store" in record]
        photo_rates = {}
        for record in records:
            if "photos" in record:
                photo_rates.setdefault(record["photos"], {})[record["batch"]] = record["photos_per_s"]
        exact = {row["direction"]: row for row in ours if row["store"] == "exact"}
        flat = {row["direction"]: row for row in faiss_rows if row["store"] == "faiss IndexFlatIP"}
        print(f"\n## {count:,} x {dimension}, {QUERIES} queries, recall@{K} vs exact\n")
        print("| store | direction | ef | build s | memory MiB | recall@20 | single q/s | batched q/s | single ÷ exact single |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in faiss_rows + ours:
            print(f"| {row['store']} | {row['direction']} | {row.get('expansion', '')} | {row['build_s']:.1f} | "
                  f"{row['memory_mib']:.0f} | {row['recall']:.4f} | {row['single_qps']:.1f} | {row['batched_qps']:.1f} | "
                  f"{row['single_qps'] / exact[row['direction']]['single_qps']:.0f}× |")
        for direction in ("similar", "dissimilar"):
            print(f"\nexact store ÷ faiss IndexFlatIP, {direction}: single {exact[direction]['single_qps'] / flat[direction]['single_qps']:.2f}×, "
                  f"batched {exact[direction]['batched_qps'] / flat[direction]['batched_qps']:.2f}×")
        print(f"exact store ids agree with faiss on {exact['similar']['agreement_with_faiss'] * 100:.3f}% of neighbours")
        print(f"\nG3's retrieval per photo (its {K} most and {K} least similar entries; faiss: two searches, "
              f"g3: one pass), photos/s over {PHOTOS_TIMED} photos in batches:\n")
        print("| store | " + " | ".join(f"batch {batch}" for batch in PHOTO_BATCHES) + " |")
        print("|---|" + "---|" * len(PHOTO_BATCHES))
        faiss_photos = flat["similar"]["photos_per_s"]
        print("| faiss IndexFlatIP | " + " | ".join(f"{faiss_photos[batch]:.1f}" for batch in PHOTO_BATCHES) + " |")
        for store, rates in photo_rates.items():
            print(f"| g3 {store} | " + " | ".join(
                f"{rates[batch]:.1f} ({rates[batch] / faiss_photos[batch]:.2f}× faiss)" for batch in PHOTO_BATCHES) + " |")
        half = {row["direction"]: row for row in ours if row["store"] == "exact-F16"}
        for direction in ("similar", "dissimilar"):
            print(f"exact f16 store, {direction}: single {half[direction]['single_qps'] / exact[direction]['single_qps']:.2f}× the f32 store, "
                  f"batched {half[direction]['batched_qps'] / flat[direction]['batched_qps']:.2f}× faiss IndexFlatIP")
        if arguments.exact_only:
            sys.stdout.flush()
            for path in paths.values():
                path.unlink()
            continue
        print("\nfaiss IndexHNSWFlat against the fastest g3 graph at equal or higher recall@20 (single-query q/s):\n")
        print("| direction | faiss ef | faiss recall | faiss q/s | g3 store | g3 ef | g3 recall | g3 q/s | g3 ÷ faiss |")
        print("|---|---|---|---|---|---|---|---|---|")
        for peer in (row for row in faiss_rows if row["store"] == "faiss IndexHNSWFlat"):
            rivals = [row for row in ours if row["store"].startswith("hnsw") and row["direction"] == peer["direction"]
                      and row["recall"] >= peer["recall"]]
            if not rivals:
                print(f"| {peer['direction']} | {peer['expansion']} | {peer['recall']:.4f} | {peer['single_qps']:.1f} | none reaches this recall | | | | |")
                continue
            best = max(rivals, key=lambda row: row["single_qps"])
            print(f"| {peer['direction']} | {peer['expansion']} | {peer['recall']:.4f} | {peer['single_qps']:.1f} | {best['store']} | "
                  f"{best['expansion']} | {best['recall']:.4f} | {best['single_qps']:.1f} | {best['single_qps'] / peer['single_qps']:.2f}× |")
        sys.stdout.flush()
        for path in paths.values():
            path.unlink()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Peak memory and time of `g3 index import-faiss` on a synthetic faiss IndexFlatIP.

G3's published index is a 4.12M x 2304 IndexFlatIP (38 GB). import-faiss reads it in chunks,
so its peak memory is the store being built plus one chunk, not the file plus the store.
This script writes an IndexFlatIP of unit vectors with faiss itself, then imports it as an
exact f32 store, an exact f16 store and an i8 HNSW graph, and reports each import's wall
time and peak resident memory (from /usr/bin/time) against the file's size.

    python3 -m venv /tmp/faissvenv
    /tmp/faissvenv/bin/pip install -r tools/goldens/requirements-faiss.txt
    cargo build --release --bin g3
    /tmp/faissvenv/bin/python benches/compare/import_memory.py [--rows 200000] [--dimension 2304]
"""

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dimension", type=int, default=2304)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--stores", default="exact:f32,exact:f16,hnsw:i8",
                        help="KIND:DTYPE pairs, comma-separated")
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="g3-import-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    index_path, metadata_path = workdir / "index.faissindex", workdir / "metadata.csv"

    rng = np.random.default_rng(1)
    index = faiss.IndexFlatIP(arguments.dimension)
    for start in range(0, arguments.rows, 50_000):
        block = rng.standard_normal((min(50_000, arguments.rows - start), arguments.dimension), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        index.add(block)
    faiss.write_index(index, str(index_path))
    del index
    with open(metadata_path, "w") as file:
        file.write("LAT,LON\n")
        for row in range(arguments.rows):
            file.write(f"{row % 170 - 85},{row % 350 - 175}\n")
    size_mib = index_path.stat().st_size / (1 << 20)
    print(f"faiss {faiss.__version__}; {arguments.rows:,} x {arguments.dimension} IndexFlatIP, {size_mib:.0f} MiB\n")
    print("| store | wall s | peak RSS MiB | peak ÷ file |")
    print("|---|---|---|---|")
    binary = ROOT / "target" / "release" / "g3"
    for store in arguments.stores.split(","):
        kind, dtype = store.split(":")
        output = workdir / f"db-{kind}-{dtype}"
        result = subprocess.run(
            ["/usr/bin/time", "-f", "TIME %e %M", str(binary), "index", "import-faiss",
             "--faiss", str(index_path), "--metadata", str(metadata_path), "--output", str(output),
             "--kind", kind, "--dtype", dtype],
            capture_output=True, text=True, check=True)
        wall, peak_kib = re.search(r"TIME ([\d.]+) (\d+)", result.stderr).groups()
        peak_mib = int(peak_kib) / 1024
        print(f"| {kind} {dtype} | {float(wall):.1f} | {peak_mib:.0f} | {peak_mib / size_mib:.2f} |")
        subprocess.run(["rm", "-rf", str(output)], check=True)


if __name__ == "__main__":
    main()

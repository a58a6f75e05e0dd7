#!/usr/bin/env python3
"""Importing G3's published index into a g3 database, and opening that database.

G3's published index is a 4.12M x 2304 faiss IndexFlatIP (38 GB). `g3 index import-faiss` (and
`g3 fetch g3`) streams it: the metadata CSV entry by entry, then the vectors a chunk at a
time straight to the database's files, so memory stays bounded whatever the index size. A
database then opens without reading its vectors (sizes, headers and the verification stamp).

This script writes a synthetic IndexFlatIP of unit vectors with faiss itself and an
MP16-Pro-shaped metadata CSV, measures the disk's sequential read and write speed for
reference, imports the index as an exact f16 and an exact f32 store (wall time, throughput,
peak resident memory from /usr/bin/time), and times `g3 index info` (a process that opens the
database) and a one-query `g3 index search` with the page cache cold (the files evicted with
posix_fadvise) and warm.

    python3 -m venv /tmp/faissvenv
    /tmp/faissvenv/bin/pip install -r tools/goldens/requirements-faiss.txt
    cargo build --release --bin g3
    /tmp/faissvenv/bin/python benches/compare/import_open.py [--rows 1000000] [--workdir DIR]
"""

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "g3"


def evict(path):
    """Drops `path`'s pages (a file, or every file under a directory) from the page cache."""
    paths = [p for p in Path(path).rglob("*") if p.is_file()] if Path(path).is_dir() else [Path(path)]
    for file in paths:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def write_inputs(workdir, rows, dimension):
    index_path, metadata_path = workdir / "index.faissindex", workdir / "metadata.csv"
    if not index_path.exists():
        rng = np.random.default_rng(1)
        index = faiss.IndexFlatIP(dimension)
        for start in range(0, rows, 50_000):
            block = rng.standard_normal((min(50_000, rows - start), dimension), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            index.add(block)
        faiss.write_index(index, str(index_path) + ".tmp")
        del index
        os.rename(str(index_path) + ".tmp", index_path)
    if not metadata_path.exists():
        with open(metadata_path, "w") as file:
            file.write("IMG_ID,LAT,LON,city,country\n")
            for row in range(rows):
                file.write(f"{row:08x}.jpg,{row % 170 - 85},{row % 350 - 175},City {row % 997},Country {row % 193}\n")
    return index_path, metadata_path


def disk_speeds(index_path, workdir):
    evict(index_path)
    read = index_path.stat().st_size / timed(["dd", f"if={index_path}", "of=/dev/null", "bs=16M"])
    probe = workdir / "write-probe"
    written = 4 << 30
    write = written / timed(["dd", "if=/dev/zero", f"of={probe}", "bs=16M", f"count={written >> 24}", "conv=fsync"])
    probe.unlink()
    return read / 1e6, write / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=2304)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--stores", default="exact:f16,exact:f32", help="KIND:DTYPE pairs, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="g3-import-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    index_path, metadata_path = write_inputs(workdir, arguments.rows, arguments.dimension)
    size_mb = index_path.stat().st_size / 1e6
    read_mbs, write_mbs = disk_speeds(index_path, workdir)
    query = workdir / "query.npy"
    np.save(query, np.ones((1, arguments.dimension), dtype=np.float32) / np.sqrt(arguments.dimension))
    print(f"faiss {faiss.__version__}; {arguments.rows:,} x {arguments.dimension} IndexFlatIP, {size_mb:,.0f} MB; "
          f"disk: sequential read {read_mbs:,.0f} MB/s (cold), write {write_mbs:,.0f} MB/s (with fsync)\n")
    print("| store | import s | MB/s of index read | peak RSS MiB | open (info) cold s | open warm s | 1-query search cold s | warm s |")
    print("|---|---|---|---|---|---|---|---|")
    for store in arguments.stores.split(","):
        kind, dtype = store.split(":")
        output = workdir / f"db-{kind}-{dtype}"
        subprocess.run(["rm", "-rf", str(output)], check=True)
        evict(index_path)
        result = subprocess.run(
            ["/usr/bin/time", "-f", "TIME %e %M", str(BINARY), "index", "import-faiss",
             "--faiss", str(index_path), "--metadata", str(metadata_path), "--output", str(output),
             "--kind", kind, "--dtype", dtype],
            capture_output=True, text=True, check=True)
        wall, peak_kib = re.search(r"TIME ([\d.]+) (\d+)", result.stderr).groups()
        wall, peak_mib = float(wall), int(peak_kib) / 1024
        info = [str(BINARY), "index", "info", "--db", str(output)]
        search = [str(BINARY), "index", "search", "--db", str(output), "--queries", str(query),
                  "--k", "20", "--output", str(workdir / "neighbours.csv")]
        cold, cold_search = [], []
        for _ in range(3):
            evict(output)
            cold.append(timed(info))
            evict(output)
            cold_search.append(timed(search))
        warm = [timed(info) for _ in range(arguments.repeats)]
        warm_search = [timed(search) for _ in range(arguments.repeats)]
        median = statistics.median
        print(f"| {kind} {dtype} | {wall:.1f} | {size_mb / wall:,.0f} | {peak_mib:.0f} | {median(cold):.3f} | "
              f"{median(warm):.3f} | {median(cold_search):.2f} | {median(warm_search):.2f} |")
        subprocess.run(["rm", "-rf", str(output)], check=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""MP16-Pro at scale, measured: reading photos from a tar archive against unpacked files, and
building a 1M-entry database from the parts of a split `g3 embed-images` run.

1. Photos: `--photos` copies of the fixture photos, written both as files in a folder and as
   members `a/b/IMG_ID` of one tar (the reference's layout). `g3 embed-images` runs on each
   with the tiny fixture model (so that reading, decoding and preprocessing dominate, not the
   model), the page cache cold (files evicted with posix_fadvise) and warm; images/s.
2. Parts: `--rows` synthetic unit vectors of `--dimension`, written as `--parts` parts in the
   exact layout `g3 embed-images --shard I/N` writes (part-I-of-N.npy, .rows.csv, .json), and
   an MP16-Pro-shaped metadata CSV; `g3 index build --embeddings DIR` by position and with
   `--id-column IMG_ID`: wall time and peak resident memory.

    python3 -m venv /tmp/faissvenv && /tmp/faissvenv/bin/pip install -r tools/goldens/requirements-faiss.txt
    cargo build --release --bin g3
    /tmp/faissvenv/bin/python benches/compare/shards.py [--photos 4000] [--rows 1000000] [--workdir DIR]
"""

import argparse
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from import_open import evict  # the same page-cache eviction, beside this script

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "g3"
FIXTURES = ROOT / "g3-align" / "tests" / "fixtures" / "clip"
PHOTOS = ["cmyk.jpg", "exact.png", "gray.png", "landscape.jpg", "lossless.webp", "palette.gif",
          "portrait.png", "upscale.jpg"]


def timed(command):
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "TIME %M"] + command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    peak = int(re.search(r"TIME (\d+)", result.stderr).group(1)) / 1024
    return time.perf_counter() - started, peak


def photos_bench(workdir, count):
    folder, archive, listing = workdir / "photos", workdir / "photos.tar", workdir / "photos.csv"
    if not archive.exists():
        folder.mkdir(exist_ok=True)
        payloads = [(FIXTURES / "images" / name).read_bytes() for name in PHOTOS]
        with tarfile.open(archive, "w") as tar, open(listing, "w") as out:
            out.write("IMG_ID,LAT,LON\n")
            for index in range(count):
                name = f"{index:07d}.{PHOTOS[index % len(PHOTOS)].rsplit('.', 1)[1]}"
                data = payloads[index % len(payloads)]
                (folder / name).write_bytes(data)
                member = tarfile.TarInfo(f"{index % 251:02x}/{index % 241:02x}/{name}")
                member.size = len(data)
                import io
                tar.addfile(member, io.BytesIO(data))
                out.write(f"{name},0,0\n")
    model = ["--model", str(FIXTURES / "g3.pth"), "--clip-config", str(FIXTURES / "model" / "config.json"),
             "--preprocessor-config", str(FIXTURES / "model" / "preprocessor_config.json"), "--kind", "database"]
    sources = {
        "unpacked files": ["--input", str(folder)],
        "tar archive": ["--archive", str(archive), "--input", str(listing)],
    }
    print(f"| photos from | cold images/s | warm images/s |\n|---|---|---|")
    for label, source in sources.items():
        rates = []
        for cold in (True, False):
            output = workdir / "photos-emb.npy"
            if cold:
                evict(folder if label == "unpacked files" else archive)
            seconds, _ = timed([str(BINARY), "embed-images", *model, *source, "--output", str(output)])
            rates.append(count / seconds)
        print(f"| {label} | {rates[0]:,.0f} | {rates[1]:,.0f} |")
    print()


def parts_bench(workdir, rows, dimension, parts):
    directory, metadata = workdir / "parts", workdir / "metadata.csv"
    if not (directory / f"part-{parts - 1}-of-{parts}.json").exists():
        directory.mkdir(exist_ok=True)
        rng = np.random.default_rng(3)
        for part in range(parts):
            first, end = rows * part // parts, rows * (part + 1) // parts
            stem = directory / f"part-{part}-of-{parts}"
            matrix = np.lib.format.open_memmap(f"{stem}.npy", mode="w+", dtype=np.float32,
                                               shape=(end - first, dimension))
            for start in range(0, end - first, 50_000):
                block = rng.standard_normal((min(50_000, end - first - start), dimension), dtype=np.float32)
                matrix[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
            matrix.flush()
            del matrix
            with open(f"{stem}.rows.csv", "w") as out:
                out.write("row,file,id\n")
                for row in range(end - first):
                    out.write(f"{row},{first + row:08d}.jpg,{first + row:08d}.jpg\n")
            Path(f"{stem}.json").write_text(json.dumps({
                "format": "g3-embedding-part v1", "shard": part, "shards": parts, "inputs": "synthetic",
                "photos": rows, "first": first, "end": end, "rows": end - first, "skipped": 0,
                "dimension": dimension, "kind": "database", "model": "synthetic"}))
        with open(metadata, "w") as out:
            out.write("IMG_ID,LAT,LON,city,country\n")
            for row in range(rows):
                out.write(f"{row:08d}.jpg,{row % 170 - 85},{row % 350 - 175},City {row % 997},Country {row % 193}\n")
    size = sum(p.stat().st_size for p in directory.glob("*.npy")) / 1e6
    print(f"{rows:,} x {dimension} in {parts} parts ({size:,.0f} MB)\n")
    print("| build | wall s | peak RSS MiB |\n|---|---|---|")
    for label, extra in [("exact f16, by position", []), ("exact f16, by IMG_ID", ["--id-column", "IMG_ID"])]:
        output = workdir / "db"
        subprocess.run(["rm", "-rf", str(output)], check=True)
        seconds, peak = timed([str(BINARY), "index", "build", "--embeddings", str(directory), "--metadata",
                               str(metadata), "--output", str(output), "--kind", "exact", "--dtype", "f16", *extra])
        print(f"| {label} | {seconds:.1f} | {peak:.0f} |")
        subprocess.run(["rm", "-rf", str(output)], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=2304)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--skip-photos", action="store_true")
    parser.add_argument("--skip-parts", action="store_true")
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="g3-shards-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not arguments.skip_photos:
        photos_bench(workdir, arguments.photos)
    if not arguments.skip_parts:
        parts_bench(workdir, arguments.rows, arguments.dimension, arguments.parts)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GPS encoder throughput: g3-rs against PyTorch (geoclip's LocationEncoder), same machine.

For each batch size, both sides embed the same coordinates with GeoCLIP's pretrained weights
(Equal Earth input), batch by batch, and report coordinates per second of the embedding loop
(weights already loaded). PyTorch runs eagerly in float32 with its default thread count;
g3-rs runs `g3 embed-gps` (CPU backend) and reports the same loop's rate.

    /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt
    /tmp/g3-goldens/bin/pip install --no-deps geoclip==1.3.0
    scripts/fetch-assets.sh && cargo build --release
    /tmp/g3-goldens/bin/python benches/compare/gps_encoder.py
    # on a GPU machine: add --torch-device cuda --g3-device wgpu (build with --features wgpu)
"""

import argparse
import csv
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from geoclip.model.location_encoder import LocationEncoder

ROOT = Path(__file__).resolve().parents[2]


def spiral(count):
    index = np.arange(count) + 0.5
    lat = np.degrees(np.arcsin(1 - 2 * index / count))
    lon = (np.arange(count) * 137.50776405003785) % 360 - 180
    return np.stack([lat, lon], axis=1).astype(np.float32)


def torch_rate(model, points, batch, device):
    tensor = torch.tensor(points, device=device)
    with torch.no_grad():
        model(tensor[:batch])  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for first in range(0, len(points), batch):
            out = model(tensor[first:first + batch])
        if device == "cuda":
            torch.cuda.synchronize()
        out.cpu()
        return len(points) / (time.perf_counter() - start)


def g3_rate(g3, points, batch, device):
    with tempfile.TemporaryDirectory() as directory:
        coords = Path(directory) / "coords.csv"
        with coords.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["LAT", "LON"])
            writer.writerows(points.tolist())
        result = subprocess.run(
            [g3, "embed-gps", "--projection", "equal-earth", "--input", str(coords),
             "--output", str(Path(directory) / "out.npy"), "--batch", str(batch), "--device", device],
            check=True, capture_output=True, text=True,
        )
    return float(re.search(r"\(([\d.]+) coordinates/s\)", result.stderr).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--g3", default=str(ROOT / "target/release/g3"))
    parser.add_argument("--torch-device", default="cpu")
    parser.add_argument("--g3-device", default="cpu")
    args = parser.parse_args()

    model = LocationEncoder(from_pretrained=True).eval().to(args.torch_device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.torch_device}; "
          f"g3 device {args.g3_device}")
    print(f"{'batch':>6} {'points':>7} {'PyTorch coords/s':>17} {'g3-rs coords/s':>15} {'g3/PyTorch':>10}")
    for batch, count in [(1, 300), (256, 8192), (16384, 32768)]:
        points = spiral(count)
        ours = g3_rate(args.g3, points, batch, args.g3_device)
        reference = torch_rate(model, points, batch, args.torch_device)
        print(f"{batch:>6} {count:>7} {reference:>17.0f} {ours:>15.0f} {ours / reference:>10.2f}")


if __name__ == "__main__":
    main()

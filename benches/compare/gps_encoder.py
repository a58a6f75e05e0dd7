#!/usr/bin/env python3
"""GPS encoder throughput: g3-rs against PyTorch (geoclip's LocationEncoder), same machine.

For each batch size, both sides embed the same coordinates with GeoCLIP's pretrained weights
(Equal Earth input), batch by batch, and report coordinates per second of the embedding loop:
weights loaded and each batch size warmed up first, coordinates starting in host memory and
every batch's embeddings brought back to host memory (what `g3 embed-gps` does before it
writes them). PyTorch runs eagerly in float32 with its default thread count; g3-rs runs the
`gps_throughput` example.

    /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt
    /tmp/g3-goldens/bin/pip install --no-deps geoclip==1.3.0
    scripts/fetch-assets.sh && cargo build --release --example gps_throughput
    /tmp/g3-goldens/bin/python benches/compare/gps_encoder.py
    # on a GPU machine: build with --features wgpu, then
    #   --torch-device cuda --g3-device wgpu --scale 16
"""

import argparse
import re
import subprocess
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
    chunks = [torch.from_numpy(points[first:first + batch]) for first in range(0, len(points), batch)]
    with torch.no_grad():
        for _ in range(3):  # warm-up, as on the g3-rs side
            model(chunks[0].to(device)).cpu()
        start = time.perf_counter()
        for chunk in chunks:
            model(chunk.to(device)).cpu()
        return len(points) / (time.perf_counter() - start)


def g3_rates(binary, runs, device):
    """Coordinates/s per batch size, from one run of the `gps_throughput` example."""
    result = subprocess.run(
        [binary, "--device", device, "--runs", ",".join(f"{batch}:{count}" for batch, count in runs)],
        check=True, capture_output=True, text=True,
    )
    rates = {}
    for line in result.stdout.splitlines():
        match = re.match(r"batch=(\d+) points=\d+ seconds=[\d.]+ coordinates_per_second=(\d+)", line)
        if match:
            rates[int(match.group(1))] = float(match.group(2))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--g3", default=str(ROOT / "target/release/examples/gps_throughput"),
                        help="the gps_throughput example binary")
    parser.add_argument("--torch-device", default="cpu")
    parser.add_argument("--g3-device", default="cpu")
    parser.add_argument("--scale", type=int, default=1,
                        help="multiply the points of the batched runs (GPUs need more work per run)")
    args = parser.parse_args()

    model = LocationEncoder(from_pretrained=True).eval().to(args.torch_device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.torch_device}; "
          f"g3 device {args.g3_device}")
    print(f"{'batch':>6} {'points':>7} {'PyTorch coords/s':>17} {'g3-rs coords/s':>15} {'g3/PyTorch':>10}")
    runs = [(1, 300), (21, 2100 * args.scale), (256, 8192 * args.scale), (16384, 32768 * args.scale)]
    ours = g3_rates(args.g3, runs, args.g3_device)
    for batch, count in runs:
        reference = torch_rate(model, spiral(count), batch, args.torch_device)
        print(f"{batch:>6} {count:>7} {reference:>17.0f} {ours[batch]:>15.0f} {ours[batch] / reference:>10.2f}")


if __name__ == "__main__":
    main()

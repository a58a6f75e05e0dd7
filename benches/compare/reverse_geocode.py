#!/usr/bin/env python3
"""Reverse geocoding throughput: g3-rs (`g3 geocode`) against the Python `reverse_geocoder`
package (1.5.1, scipy's C k-d tree), on the same machine and the same 1,000,000 points.

Two workloads:
- photo locations: GeoCLIP's 100,000 MP16 gallery coordinates, ten times over (where
  geolocalization photos are: mostly on land, near places);
- uniform sphere: a Fibonacci spiral, about 70% ocean, where nearest places are far and
  k-d trees search longest.

reverse_geocoder is timed on `rg.search(points, mode=...)` with the points in memory (mode 1:
one process; mode 2: its multiprocessing k-d tree). g3-rs is timed by `g3 geocode`, which
reports its nearest-place lookup rate (all cores) and its end-to-end CSV-to-CSV rate
(reading, geocoding, writing 7 extra columns); the ratio uses the lookup rate.

    python3 -m venv /tmp/rgvenv
    /tmp/rgvenv/bin/pip install -r tools/goldens/requirements-reverse-geocoder.txt
    scripts/fetch-assets.sh && cargo build --release
    /tmp/rgvenv/bin/python benches/compare/reverse_geocode.py
"""

import csv
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import reverse_geocoder as rg

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("G3_CACHE_DIR", Path.home() / ".cache" / "g3"))


def photo_locations():
    with open(CACHE / "geoclip-1.3.0" / "coordinates_100K.csv") as file:
        reader = csv.reader(file)
        next(reader)
        gallery = np.array([[float(lat), float(lon)] for lat, lon in reader])
    return np.tile(gallery, (10, 1))


def uniform_sphere(count=1_000_000):
    index = np.arange(count) + 0.5
    lat = np.degrees(np.arcsin(1 - 2 * index / count))
    lon = (np.arange(count) * 137.50776405003785) % 360 - 180
    return np.round(np.stack([lat, lon], axis=1), 6)


def reverse_geocoder_rate(points, mode):
    as_tuples = [tuple(point) for point in points]
    rg.search(as_tuples[:1000], mode=mode, verbose=False)  # loads the gazetteer
    start = time.perf_counter()
    rg.search(as_tuples, mode=mode, verbose=False)
    return len(points) / (time.perf_counter() - start)


def g3_rates(points, metric, directory):
    coords = Path(directory) / "coords.csv"
    np.savetxt(coords, points, delimiter=",", header="LAT,LON", comments="", fmt="%.6f")
    result = subprocess.run(
        [str(ROOT / "target" / "release" / "g3"), "geocode", "--input", str(coords),
         "--output", str(Path(directory) / "places.csv"), "--metric", metric],
        check=True, capture_output=True, text=True,
    )
    end_to_end = float(re.search(r"(\d+) rows/s end to end", result.stderr).group(1))
    lookup = float(re.search(r"(\d+) points/s in the nearest-place lookup", result.stderr).group(1))
    return lookup, end_to_end


def main():
    print(f"cores: {os.cpu_count()}")
    print("| workload | reverse_geocoder mode 1 | mode 2 | g3 metric | g3 lookup | g3 CSV end to end | lookup / mode 1 | lookup / mode 2 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        for name, points in [("photo locations", photo_locations()), ("uniform sphere", uniform_sphere())]:
            mode1 = reverse_geocoder_rate(points, 1)
            mode2 = reverse_geocoder_rate(points, 2)
            for metric in ["great-circle", "planar-degrees"]:
                lookup, end_to_end = g3_rates(points, metric, directory)
                print(f"| {name} | {mode1:,.0f}/s | {mode2:,.0f}/s | {metric} | {lookup:,.0f}/s | "
                      f"{end_to_end:,.0f}/s | {lookup / mode1:.1f}x | {lookup / mode2:.1f}x |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Which distance does the `reverse_geocoder` package (1.5.1) really minimise?

Issue 5 asks the offline geocoder to agree with `reverse_geocoder` on >= 99.5% of points.
This script measures how often three candidate nearest-neighbour rules pick the same place
as `reverse_geocoder.search`, on 4,000 points jittered around GeoNames places and 4,000
points uniform on the sphere:

- great-circle nearest (unit vectors);
- the package's own `geodetic_in_ecef` (unused by its query path; note its z uses the
  latitude in degrees);
- plain Euclidean distance in (latitude, longitude) degrees.

Seen on 2026-11-25: great-circle 0.91 / 0.79 agreement, ECEF 0.19 / 0.05, plain degrees
0.9998 / 1.0000. The package queries a k-d tree built on raw (lat, lon) degrees.

The package needs numpy < 1.24 (it calls `np.float`):
    python3 -m venv /tmp/rgvenv
    /tmp/rgvenv/bin/pip install numpy==1.23.5 scipy==1.10.1 reverse_geocoder==1.5.1
    /tmp/rgvenv/bin/python tools/analysis/reverse_geocoder_metric.py
"""

import csv
import os

import numpy as np
import reverse_geocoder as rg
from reverse_geocoder import geodetic_in_ecef
from scipy.spatial import cKDTree


def unit_vectors(lat, lon):
    lat, lon = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def main():
    path = os.path.join(os.path.dirname(rg.__file__), "rg_cities1000.csv")
    with open(path, encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    lat = np.array([float(row["lat"]) for row in rows])
    lon = np.array([float(row["lon"]) for row in rows])

    rng = np.random.default_rng(0)
    picked = rng.integers(0, len(rows), 4000)
    near = np.column_stack([lat[picked] + rng.normal(0, 0.2, 4000), lon[picked] + rng.normal(0, 0.2, 4000)])
    near[:, 0] = np.clip(near[:, 0], -89.9, 89.9)
    uniform = np.column_stack([np.degrees(np.arcsin(rng.uniform(-1, 1, 4000))), rng.uniform(-180, 180, 4000)])

    rules = {
        "great-circle (unit vectors)": (unit_vectors(lat, lon), lambda q: unit_vectors(q[:, 0], q[:, 1])),
        "package's geodetic_in_ecef": (geodetic_in_ecef(np.column_stack([lat, lon])), geodetic_in_ecef),
        "plain (lat, lon) degrees": (np.column_stack([lat, lon]), lambda q: q),
    }
    for sample_name, queries in [("near places", near), ("uniform", uniform)]:
        reference = rg.search([tuple(point) for point in queries], verbose=False)
        for rule_name, (points, transform) in rules.items():
            _, nearest = cKDTree(points).query(transform(queries))
            same = np.mean([reference[i]["name"] == rows[j]["name"] for i, j in enumerate(nearest)])
            print(f"{sample_name:>12} | {rule_name:<28} | same place name: {same:.4f}")


if __name__ == "__main__":
    main()

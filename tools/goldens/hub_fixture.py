#!/usr/bin/env python3
"""A tiny stand-in for G3's published retrieval index, for the end-to-end `g3 fetch` test.

The G3 authors publish `index/g3.index` (faiss.IndexFlatIP over MP16-Pro's 2304-d database
embeddings, written by the reference's IndexSearch.py) and MP16-Pro's metadata CSV. This
writes the same two files at fixture size, for the tiny G3 checkpoint of g3-align's fixtures:

- g3-cli/tests/fixtures/hub/g3.index: faiss.IndexFlatIP over g3_database.npy (the tiny G3's
  database embeddings of the 16 fixture photos, computed by PyTorch in tools/goldens/clip.py),
  written by faiss.write_index;
- g3-cli/tests/fixtures/hub/MP16_Pro_filtered.csv: IMG_ID, LAT, LON and Nominatim-style levels for
  each row, in the index's order (as MP16_Pro_filtered.csv follows g3.index).

    python3 -m venv /tmp/faissvenv
    /tmp/faissvenv/bin/pip install -r tools/goldens/requirements-faiss.txt
    /tmp/faissvenv/bin/python tools/goldens/hub_fixture.py
"""

import csv
import os

import faiss
import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CLIP = os.path.join(ROOT, "g3-align", "tests", "fixtures", "clip")
OUT = os.path.join(ROOT, "g3-cli", "tests", "fixtures", "hub")

# One city per photo, on every continent.
CITIES = [
    ("Paris", "France", "fr", "Europe", 48.8566, 2.3522),
    ("New York", "United States", "us", "North America", 40.7128, -74.006),
    ("Tokyo", "Japan", "jp", "Asia", 35.6762, 139.6503),
    ("Sydney", "Australia", "au", "Oceania", -33.8688, 151.2093),
    ("London", "United Kingdom", "gb", "Europe", 51.5074, -0.1278),
    ("Rio de Janeiro", "Brazil", "br", "South America", -22.9068, -43.1729),
    ("Moscow", "Russia", "ru", "Europe", 55.7558, 37.6173),
    ("Singapore", "Singapore", "sg", "Asia", 1.3521, 103.8198),
    ("Cairo", "Egypt", "eg", "Africa", 30.0444, 31.2357),
    ("Los Angeles", "United States", "us", "North America", 34.0522, -118.2437),
    ("Nairobi", "Kenya", "ke", "Africa", -1.2921, 36.8219),
    ("Lima", "Peru", "pe", "South America", -12.0464, -77.0428),
    ("Mumbai", "India", "in", "Asia", 19.076, 72.8777),
    ("Reykjavík", "Iceland", "is", "Europe", 64.1466, -21.9426),
    ("Vancouver", "Canada", "ca", "North America", 49.2827, -123.1207),
    ("Cape Town", "South Africa", "za", "Africa", -33.9249, 18.4241),
]


def main():
    database = np.load(os.path.join(CLIP, "g3_database.npy")).astype(np.float32)
    with open(os.path.join(CLIP, "images.csv"), newline="") as handle:
        names = [row["file"] for row in csv.DictReader(handle)]
    assert len(names) == len(database) == len(CITIES), (len(names), database.shape)

    os.makedirs(OUT, exist_ok=True)
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)
    faiss.write_index(index, os.path.join(OUT, "g3.index"))
    with open(os.path.join(OUT, "MP16_Pro_filtered.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["IMG_ID", "LAT", "LON", "city", "country", "country_code", "continent"])
        for name, (city, country, code, continent, lat, lon) in zip(names, CITIES):
            writer.writerow([name, lat, lon, city, country, code, continent])
    print(f"{len(database)} × {database.shape[1]} written to {OUT}")


if __name__ == "__main__":
    main()

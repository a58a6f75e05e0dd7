"""g3rs in a notebook: the library from Python, cell by cell (run it as a script too).

Uses the repository's tiny fixture models and photos, so it runs anywhere in seconds; point
the paths at G3's checkpoint and your database for the real thing. Build and install the
wheel first (README, "From Python").

    python examples/python_quickstart.py
"""

# %% Imports and the fixture files
from pathlib import Path
import tempfile

import numpy as np

import g3rs

root = Path(__file__).resolve().parents[1]
fixtures = root / "g3-align/tests/fixtures/clip"
checkpoint, clip = fixtures / "g3.pth", fixtures / "model"
photos = sorted((fixtures / "images").glob("*.[jp][pn]g"))

# %% Distances and the paper's accuracy table
truth = np.array([[48.8566, 2.3522], [40.7128, -74.0060], [35.6762, 139.6503]])
guesses = np.array([[48.85, 2.35], [42.3601, -71.0589], [34.6937, 135.5023]])
print(g3rs.distances_km(truth, guesses))  # geodesic (WGS-84), km
report = g3rs.evaluate(truth, guesses)
for row in report["thresholds"]:
    print(f"< {row['threshold_km']:>6} km: {row['percent']:5.1f}%")
print("GeoGuessr score:", round(report["mean_geoguessr_score"]))

# %% Embeddings: G3's GPS encoder and image encoder, straight into numpy
gps = g3rs.GpsEncoder(checkpoint)
print("GPS embeddings:", gps.embed(truth).shape)
images = g3rs.ImageEncoder(checkpoint, kind="database", clip=clip)
vectors = images.embed(photos)
print("database embeddings:", vectors.shape, vectors.dtype)

# %% A database: build, save, search (exact; kind="hnsw" for a graph)
locations = np.random.default_rng(0).uniform([-60, -180], [70, 180], size=(len(photos), 2))
database = g3rs.Database.build(vectors, locations)
folder = Path(tempfile.mkdtemp())
database.save(folder / "photos.db")
found = g3rs.Database.open(folder / "photos.db").search(vectors[:2], k=3)
print("neighbours:", found.rows, found.similarities, sep="\n")

# %% The pipeline, with a verifier written in Python
class PreferNorth:
    """Scores every candidate by its latitude: the northernmost wins."""

    def score(self, query, candidates):
        return [candidate.latitude for candidate in candidates]


settings = {"models.g3_checkpoint": str(checkpoint), "models.clip": str(clip), "database": folder / "photos.db"}
for verifier in [None, PreferNorth()]:
    pipeline = g3rs.Pipeline("g3", settings=settings, verifier=verifier)
    prediction = pipeline.locate(photos[:1])[0]
    print(type(verifier).__name__, prediction.location, f"chosen {prediction.chosen} of {len(prediction.candidates)}")

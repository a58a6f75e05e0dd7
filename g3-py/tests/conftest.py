"""Shared fixtures of the g3rs test suite: the repository's golden files (written by the
reference code, tools/goldens/) and small databases built from the fixture photos.

Run through the README's test command (scripts/test.sh), which builds the wheel, installs
it into a fresh virtual environment and runs this suite.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

import g3rs

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "g3-align/tests/fixtures/clip"

# The photos and cities of the Rust pipeline tests (tests/support/mod.rs).
DATABASE_IMAGES = [
    ("exact.png", 48.8566, 2.3522),
    ("gray.png", 40.7128, -74.006),
    ("gray16.png", 35.6762, 139.6503),
    ("gray_alpha.png", -33.8688, 151.2093),
    ("large.jpg", -22.9068, -43.1729),
    ("lossless.webp", 55.7558, 37.6173),
    ("narrow.png", 30.0444, 31.2357),
    ("palette.gif", 1.3521, 103.8198),
    ("portrait.png", 51.5074, -0.1278),
    ("rgba.png", -1.2921, 36.8219),
]
QUERY_IMAGES = ["landscape.jpg", "rgb16.png", "cmyk.jpg"]


def photo(name: str) -> Path:
    return CLIP / "images" / name


def read_npy(name: str) -> np.ndarray:
    return np.load(CLIP / name)


@pytest.fixture(scope="session")
def g3_checkpoint() -> Path:
    return CLIP / "g3.pth"


@pytest.fixture(scope="session")
def clip_directory() -> Path:
    return CLIP / "model"


@pytest.fixture(scope="session")
def database_encoder(g3_checkpoint, clip_directory) -> g3rs.ImageEncoder:
    return g3rs.ImageEncoder(g3_checkpoint, kind="database", clip=clip_directory, batch_size=4)


@pytest.fixture(scope="session")
def photo_database(tmp_path_factory, database_encoder) -> Path:
    """An exact database of the fixture photos' G3 database embeddings at known cities."""
    vectors = database_encoder.embed([photo(name) for name, _, _ in DATABASE_IMAGES])
    locations = np.array([(lat, lon) for _, lat, lon in DATABASE_IMAGES])
    path = tmp_path_factory.mktemp("databases") / "g3.db"
    g3rs.Database.build(vectors, locations).save(path)
    return path


@pytest.fixture(scope="session")
def g3_binary() -> Path:
    """The `g3` command-line tool of the same checkout (built by `cargo test`), the Rust
    side of the pipeline comparisons. Missing, the tests that need it fail."""
    path = Path(os.environ.get("G3_BINARY", ROOT / "target/debug/g3"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it with `cargo build -p g3-cli` (scripts/test.sh does)")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))

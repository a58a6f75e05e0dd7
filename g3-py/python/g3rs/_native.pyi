"""Type stubs of the native module ``g3rs._native`` (built from the Rust crate g3-py)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__version__: str

Points = npt.ArrayLike
"""``[N, 2]`` latitude, longitude in degrees (any float dtype), or a single ``[2]`` pair."""

ImageLike = str | os.PathLike[str] | bytes | tuple[str, bytes]
"""A photo: a path, its encoded bytes, or an ``(id, bytes)`` pair."""

class G3Error(Exception):
    """An error reported by g3-rs, with the library's message (the error, then its causes)."""

def distances_km(
    truth: Points, predictions: Points, metric: str = "geodesic"
) -> npt.NDArray[np.float64]:
    """Distances in km (``"geodesic"``: WGS-84 as geopy; ``"haversine"``: 6371 km sphere)."""

def geoguessr_scores(truth: Points, predictions: Points) -> npt.NDArray[np.float64]:
    """GeoGuessr scores, 5000 * exp(-d / 1492.7 km) (OSV-5M's haversine)."""

def evaluate(
    truth: Points,
    predictions: Points,
    thresholds_km: Sequence[float] | None = None,
    metric: str = "geodesic",
    convention: str = "strict",
) -> dict[str, Any]:
    """The accuracy table (1/25/200/750/2500 km by default), GeoGuessr score, mean and median error."""

class Neighbors:
    """Search results: one row per query, best first; padded with row -1, key 0 and NaN."""

    @property
    def rows(self) -> npt.NDArray[np.int64]: ...
    @property
    def keys(self) -> npt.NDArray[np.uint64]: ...
    @property
    def similarities(self) -> npt.NDArray[np.float32]: ...
    @property
    def locations(self) -> npt.NDArray[np.float64]:
        """``[..., k, 2]`` latitude, longitude in degrees."""

class Database:
    """Geotagged image embeddings: an exact or HNSW store plus keys, locations and texts."""

    @staticmethod
    def open(path: str | os.PathLike[str]) -> Database: ...
    @staticmethod
    def build(
        vectors: npt.ArrayLike,
        locations: Points,
        keys: npt.ArrayLike | None = None,
        texts: Mapping[str, Sequence[str]] | None = None,
        kind: str = "exact",
        metric: str = "inner-product",
        precision: str = "f32",
        connectivity: int | None = None,
        expansion_add: int | None = None,
        expansion_search: int | None = None,
        rerank: int | None = None,
    ) -> Database: ...
    @staticmethod
    def import_faiss(
        index: str | os.PathLike[str],
        metadata_csv: str | os.PathLike[str],
        output: str | os.PathLike[str],
        kind: str = "exact",
        metric: str = "inner-product",
        precision: str = "f32",
        lat_column: str = "LAT",
        lon_column: str = "LON",
        key_column: str | None = None,
        connectivity: int | None = None,
        expansion_add: int | None = None,
    ) -> Database: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...
    def search(self, queries: npt.ArrayLike, k: int = 20) -> Neighbors: ...
    def search_dissimilar(self, queries: npt.ArrayLike, k: int = 20) -> Neighbors: ...
    def search_both(
        self, queries: npt.ArrayLike, k_similar: int, k_dissimilar: int
    ) -> tuple[Neighbors, Neighbors]: ...
    def set_expansion_search(self, expansion: int) -> None: ...
    def set_rerank(self, candidates: int) -> None: ...
    def texts(self, rows: Sequence[int], column: str) -> list[str | None]: ...
    def __len__(self) -> int: ...
    @property
    def dimension(self) -> int: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def keys(self) -> npt.NDArray[np.uint64]: ...
    @property
    def locations(self) -> npt.NDArray[np.float64]: ...
    @property
    def text_columns(self) -> list[str]: ...

def rust_search_seconds(
    database: Database, queries: npt.ArrayLike, k: int, batch: int, dissimilar: bool = False
) -> float:
    """Seconds the Rust API takes to search `queries`, `batch` rows per call, timed in Rust
    (for benches/compare/python_search.py: the binding's overhead is the difference)."""

class GpsEncoder:
    """G3's GPS encoder (from ``g3.pth``) or GeoCLIP's location encoder."""

    def __init__(
        self, path: str | os.PathLike[str], kind: str = "g3", device: str = "cpu"
    ) -> None: ...
    @staticmethod
    def geoclip(device: str = "cpu") -> GpsEncoder: ...
    def embed(self, points: Points) -> npt.NDArray[np.float32]: ...
    @property
    def dimension(self) -> int: ...

class ImageEncoder:
    """CLIP, G3's image towers or GeoCLIP's image side, computing one kind of embedding."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        kind: str = "database",
        clip: str | os.PathLike[str] | None = None,
        aligned_clip: str | os.PathLike[str] | None = None,
        geoclip_image_mlp: str | os.PathLike[str] | None = None,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None: ...
    def embed(self, images: Sequence[ImageLike]) -> npt.NDArray[np.float32]: ...
    def embed_arrays(self, images: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """Decoded RGB photos, uint8 [H, W, 3] each, preprocessed as CLIP's processor does."""
    def embed_pixels(self, pixels: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
    @property
    def dimension(self) -> int: ...

class ReverseGeocoder:
    """The nearest GeoNames place of any point, offline."""

    def __init__(
        self,
        gazetteer: str | os.PathLike[str] | None = None,
        countries: str | os.PathLike[str] | None = None,
        metric: str = "great-circle",
    ) -> None: ...
    def lookup(self, points: Points) -> list[dict[str, Any]]: ...
    def place_accuracy(self, truth: Points, predictions: Points) -> dict[str, Any]: ...
    def __len__(self) -> int: ...

class Candidate:
    """A candidate location with its score and source."""

    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...
    @property
    def location(self) -> tuple[float, float]: ...
    @property
    def score(self) -> float | None: ...
    @property
    def source(self) -> dict[str, Any]: ...

class VerificationQuery:
    """What a Python verifier learns about the photo besides its candidates."""

    @property
    def image_id(self) -> str: ...
    @property
    def image_bytes(self) -> bytes: ...
    @property
    def embedding(self) -> npt.NDArray[np.float32] | None: ...
    @property
    def neighbors(self) -> Neighbors: ...

class Prediction:
    """The chosen location for one photo and the pool it was chosen from."""

    @property
    def image_id(self) -> str: ...
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...
    @property
    def location(self) -> tuple[float, float]: ...
    @property
    def chosen(self) -> int: ...
    @property
    def candidates(self) -> list[Candidate]: ...
    @property
    def rejected(self) -> list[dict[str, Any]]: ...
    @property
    def lost(self) -> list[dict[str, Any]]: ...
    def to_dict(self) -> dict[str, Any]: ...

class VerifierLike(Protocol):
    def score(self, query: VerificationQuery, candidates: list[Candidate]) -> npt.ArrayLike: ...

class PromptEnsembleLike(Protocol):
    def references_needed(self) -> tuple[int, int]: ...
    def prompts(self, similar: Neighbors, dissimilar: Neighbors) -> Sequence[str | Mapping[str, Any]]: ...

class GeneratorLike(Protocol):
    def generate(
        self, image_id: str, image_bytes: bytes, prompts: list[dict[str, Any]]
    ) -> Sequence[Sequence[str]]: ...

class Pipeline:
    """A preset or config file composed into the Rust pipeline, Python stages swapped in."""

    def __init__(
        self,
        preset: str = "g3",
        config: str | os.PathLike[str] | None = None,
        settings: Mapping[str, bool | int | float | str | os.PathLike[str]] | None = None,
        verifier: VerifierLike | None = None,
        prompt_ensemble: PromptEnsembleLike | None = None,
        generator: GeneratorLike | None = None,
        verbose: bool = False,
    ) -> None: ...
    def locate(self, images: Sequence[ImageLike]) -> list[Prediction]: ...
    def locate_each(self, images: Sequence[ImageLike]) -> list[Prediction | Exception]: ...
    def config_toml(self) -> str: ...
    def generation_report(self) -> dict[str, Any] | None: ...

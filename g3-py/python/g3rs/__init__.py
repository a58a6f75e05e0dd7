"""g3-rs from Python: worldwide image geolocalization (G3, NeurIPS 2024) on a Rust core.

The package binds the g3-rs library: distances and the paper's accuracy table, G3's and
GeoCLIP's GPS encoders, the image encoders, the image database (exact or HNSW search,
faiss import), the offline reverse geocoder and the whole pipeline, which accepts Python
objects as its verifier, prompt ensemble or generator.

Coordinates are ``[N, 2]`` arrays of latitude and longitude in degrees; embeddings are
``[N, D]`` float32 arrays. Every error g3-rs reports raises :class:`G3Error` with the
library's message; an exception raised by a Python stage comes back as itself.
"""

from __future__ import annotations

import threading

from ._native import (
    Candidate,
    Database,
    G3Error,
    GpsEncoder,
    ImageEncoder,
    Neighbors,
    Pipeline,
    Prediction,
    ReverseGeocoder,
    VerificationQuery,
    __version__,
    distances_km,
    evaluate,
    geoguessr_scores,
)

__all__ = [
    "Candidate",
    "Database",
    "G3Error",
    "GpsEncoder",
    "ImageEncoder",
    "Neighbors",
    "Pipeline",
    "Prediction",
    "ReverseGeocoder",
    "VerificationQuery",
    "__version__",
    "distances_km",
    "evaluate",
    "geoguessr_scores",
    "reverse_geocode",
]

_default_geocoder: ReverseGeocoder | None = None
_default_geocoder_lock = threading.Lock()


def reverse_geocode(points) -> list[dict]:
    """The nearest GeoNames place of each point (``[N, 2]`` latitude, longitude in degrees).

    Uses one great-circle :class:`ReverseGeocoder` over the cached gazetteer (``g3 fetch
    geoclip``), loaded on the first call and kept for the next ones.
    """
    global _default_geocoder
    with _default_geocoder_lock:
        if _default_geocoder is None:
            _default_geocoder = ReverseGeocoder()
        geocoder = _default_geocoder
    return geocoder.lookup(points)

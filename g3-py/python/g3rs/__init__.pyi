from ._native import (
    Candidate as Candidate,
    Database as Database,
    G3Error as G3Error,
    GpsEncoder as GpsEncoder,
    ImageEncoder as ImageEncoder,
    Neighbors as Neighbors,
    Pipeline as Pipeline,
    Prediction as Prediction,
    ReverseGeocoder as ReverseGeocoder,
    VerificationQuery as VerificationQuery,
    __version__ as __version__,
    distances_km as distances_km,
    evaluate as evaluate,
    geoguessr_scores as geoguessr_scores,
)
from ._native import Points

def reverse_geocode(points: Points) -> list[dict]: ...

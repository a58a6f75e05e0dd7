"""The offline reverse geocoder against the `reverse_geocoder` package's answers."""

import numpy as np
import pytest

import g3rs
from conftest import ROOT, read_csv


@pytest.fixture(scope="module")
def planar_geocoder():
    return g3rs.ReverseGeocoder(metric="planar-degrees")


def test_places_match_the_reverse_geocoder_package(planar_geocoder):
    # As g3-data/tests/reverse_geocoder_parity.rs: the package's k-d tree breaks ties between
    # places at the same distance its own way, so agreement is counted, not required per row.
    rows = read_csv(ROOT / "g3-data/tests/fixtures/reverse_geocode.csv")
    points = np.array([(float(r["lat"]), float(r["lon"])) for r in rows])
    places = planar_geocoder.lookup(points)
    assert len(places) == len(rows) == 2600
    agree = sum(
        (place["city"], place["country_code"]) == (row["name"], row["cc"])
        for place, row in zip(places, rows)
    )
    assert agree / len(rows) >= 0.995


def test_place_accuracy_matches_osv5m(planar_geocoder):
    rows = read_csv(ROOT / "tests/fixtures/geo_metrics/pairs.csv")
    truth = np.array([(float(r["lat"]), float(r["lon"])) for r in rows])
    predictions = np.array([(float(r["lat_pred"]), float(r["lon_pred"])) for r in rows])
    accuracy = planar_geocoder.place_accuracy(truth, predictions)
    for level in ["country", "region", "city"]:
        assert accuracy[level] == sum(int(r[f"{level}_hit"]) for r in rows), level


def test_the_module_level_helper_uses_the_great_circle_geocoder():
    (place,) = g3rs.reverse_geocode([[48.8566, 2.3522]])
    assert place["country_code"] == "FR"
    assert place["distance_km"] < 10

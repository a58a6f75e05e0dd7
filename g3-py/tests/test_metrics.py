"""Distances, GeoGuessr scores and the accuracy table against the reference's goldens."""

import json

import numpy as np
import pytest

import g3rs
from conftest import ROOT, read_csv


def test_geodesic_distances_match_geopy():
    rows = read_csv(ROOT / "g3-core/tests/fixtures/geodesic_pairs.csv")
    truth = np.array([(float(r["lat1"]), float(r["lon1"])) for r in rows])
    predictions = np.array([(float(r["lat2"]), float(r["lon2"])) for r in rows])
    expected = np.array([float(r["geodesic_km"]) for r in rows])
    found = g3rs.distances_km(truth, predictions)
    assert found.dtype == np.float64 and found.shape == (len(rows),)
    np.testing.assert_allclose(found, expected, rtol=1e-10, atol=1e-9)


def test_a_single_point_stands_for_every_row():
    points = np.array([[48.8566, 2.3522], [40.7128, -74.006]])
    paris = [48.8566, 2.3522]
    found = g3rs.distances_km(points, paris, metric="haversine")
    assert found[0] == 0.0
    assert 5800 < found[1] < 5900


def geo_metric_rows():
    rows = read_csv(ROOT / "tests/fixtures/geo_metrics/pairs.csv")
    truth = np.array([(float(r["lat"]), float(r["lon"])) for r in rows])
    predictions = np.array([(float(r["lat_pred"]), float(r["lon_pred"])) for r in rows])
    return rows, truth, predictions


def test_geoguessr_scores_match_osv5m():
    rows, truth, predictions = geo_metric_rows()
    expected = np.array([float(r["geoguessr_score"]) for r in rows])
    np.testing.assert_allclose(g3rs.geoguessr_scores(truth, predictions), expected, rtol=1e-9)


def test_evaluate_reports_the_paper_table_and_the_newer_metrics():
    rows, truth, predictions = geo_metric_rows()
    summary = json.loads((ROOT / "tests/fixtures/geo_metrics/summary.json").read_text())
    report = g3rs.evaluate(truth, predictions)
    assert report["rows"] == len(rows) == summary["rows"]
    assert [t["threshold_km"] for t in report["thresholds"]] == [1, 25, 200, 750, 2500]
    assert report["mean_geoguessr_score"] == pytest.approx(summary["mean_geoguessr_score"], rel=1e-9)
    # The accuracy table counts geodesic errors strictly below each threshold, as G3 does.
    distances = g3rs.distances_km(truth, predictions)
    for threshold in report["thresholds"]:
        assert threshold["within"] == int(np.sum(distances < threshold["threshold_km"]))
    assert report["mean_error_km"] == pytest.approx(distances.mean(), rel=1e-12)
    assert report["median_error_km"] == pytest.approx(np.median(distances), rel=1e-12)


def test_the_inclusive_convention_counts_errors_on_a_threshold():
    truth = np.array([[0.0, 0.0], [0.0, 0.0]])
    predictions = np.array([[0.0, 0.0], [0.0, 1.0]])
    distance = g3rs.distances_km(truth[1], predictions[1])[0]
    strict = g3rs.evaluate(truth, predictions, thresholds_km=[distance])
    inclusive = g3rs.evaluate(truth, predictions, thresholds_km=[distance], convention="inclusive")
    assert strict["thresholds"][0]["within"] == 1
    assert inclusive["thresholds"][0]["within"] == 2


def test_invalid_input_raises_the_library_error_naming_the_row():
    with pytest.raises(g3rs.G3Error, match=r"truth row 1: .*latitude"):
        g3rs.distances_km([[0.0, 0.0], [91.0, 0.0]], [0.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        g3rs.distances_km(np.zeros((3, 3)), [0.0, 0.0])
    with pytest.raises(ValueError, match="metric"):
        g3rs.distances_km([0.0, 0.0], [1.0, 1.0], metric="manhattan")
    with pytest.raises(g3rs.G3Error, match="threshold"):
        g3rs.evaluate([0.0, 0.0], [1.0, 1.0], thresholds_km=[25.0, 1.0])

//! Distances and accuracy: the paper's evaluation on arrays.

use g3::core::ThresholdConvention;
use g3::core::evaluation::{EvaluationOptions, evaluate_points};
use g3::core::geoguessr;
use g3::{AccuracyThresholds, DistanceMetric, GeoPoint};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{setting, to_python_data};
use crate::errors::OrRaise;
use crate::points::points_from;

/// Truth and prediction rows paired, a single point on either side standing for every row.
fn pairs(
    truth: &Bound<'_, PyAny>,
    predictions: &Bound<'_, PyAny>,
) -> PyResult<Vec<(GeoPoint, GeoPoint)>> {
    let truth = points_from(truth, "truth")?;
    let predictions = points_from(predictions, "predictions")?;
    let rows = match (truth.len(), predictions.len()) {
        (a, b) if a == b => a,
        (1, b) => b,
        (a, 1) => a,
        (a, b) => {
            return Err(PyValueError::new_err(format!(
                "truth has {a} rows but predictions has {b}: give as many, or a single point on one side"
            )));
        }
    };
    let pick = |points: &[GeoPoint], row: usize| points[if points.len() == 1 { 0 } else { row }];
    Ok((0..rows)
        .map(|row| (pick(&truth, row), pick(&predictions, row)))
        .collect())
}

/// Distances in km between `truth` and `predictions` (arrays of shape [N, 2] of latitude
/// and longitude in degrees, or a single [2] pair on either side), on WGS-84 (`metric =
/// "geodesic"`, geopy's, the paper's) or a sphere of 6371 km (`"haversine"`).
#[pyfunction]
#[pyo3(signature = (truth, predictions, metric = "geodesic"))]
pub fn distances_km<'py>(
    py: Python<'py>,
    truth: &Bound<'py, PyAny>,
    predictions: &Bound<'py, PyAny>,
    metric: &str,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let metric: DistanceMetric = setting("metric", metric)?;
    let pairs = pairs(truth, predictions)?;
    let distances: Vec<f64> = py.detach(|| {
        pairs
            .iter()
            .map(|&(from, to)| metric.distance_km(from, to))
            .collect()
    });
    Ok(distances.into_pyarray(py))
}

/// GeoGuessr scores (5000 · exp(−d / 1492.7 km), OSV-5M's haversine) of `predictions`
/// against `truth`, shapes as for `distances_km`.
#[pyfunction]
pub fn geoguessr_scores<'py>(
    py: Python<'py>,
    truth: &Bound<'py, PyAny>,
    predictions: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let pairs = pairs(truth, predictions)?;
    let scores: Vec<f64> = pairs
        .iter()
        .map(|&(from, to)| geoguessr::geoguessr_score(from, to))
        .collect();
    Ok(scores.into_pyarray(py))
}

/// The paper's accuracy table for `predictions` against `truth`: the share of rows within
/// each threshold (default 1, 25, 200, 750 and 2500 km: street, city, region, country,
/// continent), the mean GeoGuessr score and the mean and median error, as a dict (the JSON
/// `g3 eval --json` prints). `convention = "strict"` counts an error below a threshold as
/// G3's scripts do; `"inclusive"` counts one on it too.
#[pyfunction]
#[pyo3(signature = (truth, predictions, thresholds_km = None, metric = "geodesic", convention = "strict"))]
pub fn evaluate(
    py: Python<'_>,
    truth: &Bound<'_, PyAny>,
    predictions: &Bound<'_, PyAny>,
    thresholds_km: Option<Vec<f64>>,
    metric: &str,
    convention: &str,
) -> PyResult<Py<PyAny>> {
    let options = EvaluationOptions {
        thresholds: match thresholds_km {
            Some(thresholds) => AccuracyThresholds::new(thresholds).or_raise()?,
            None => AccuracyThresholds::default(),
        },
        metric: setting("metric", metric)?,
        convention: setting::<ThresholdConvention>("convention", convention)?,
        ..EvaluationOptions::default()
    };
    let pairs = pairs(truth, predictions)?;
    let report = py.detach(|| evaluate_points(pairs, &options)).or_raise()?;
    to_python_data(py, &report)
}

//! Coordinates between numpy and [`GeoPoint`]s.

use g3::GeoPoint;
use numpy::{AllowTypeChange, PyArrayLikeDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::G3Error;

/// The points of `object`: an array-like of shape `[N, 2]` (latitude, longitude in degrees)
/// or a single `[2]` pair. Every row is checked; an invalid one is an error naming `what`
/// and its row.
pub fn points_from(object: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<GeoPoint>> {
    let array: PyArrayLikeDyn<'_, f64, AllowTypeChange> = object.extract().map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be an array of (latitude, longitude) pairs in degrees, shape [N, 2]"
        ))
    })?;
    let view = array.as_array();
    let rows = match view.shape() {
        [2] => 1,
        [rows, 2] => *rows,
        shape => {
            return Err(PyValueError::new_err(format!(
                "{what} must have shape [N, 2] (latitude, longitude in degrees) or [2], not {shape:?}"
            )));
        }
    };
    let values: Vec<f64> = view.iter().copied().collect();
    let mut points = Vec::with_capacity(rows);
    for (row, pair) in values.chunks_exact(2).enumerate() {
        let point = GeoPoint::new(pair[0], pair[1])
            .map_err(|error| G3Error::new_err(format!("{what} row {row}: {error}")))?;
        points.push(point);
    }
    Ok(points)
}

/// `points` as a `[N, 2]` float64 array.
pub fn points_to_array(points: &[GeoPoint]) -> Vec<f64> {
    points
        .iter()
        .flat_map(|point| [point.lat_deg(), point.lon_deg()])
        .collect()
}

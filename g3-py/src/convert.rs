//! Small conversions shared by the bindings: settings named by strings, serde values as
//! Python objects, embeddings as numpy arrays.

use g3::Embeddings;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A setting given by its name (`"geodesic"`, `"inner-product"`, `"hnsw"`) as the config
/// files spell it; an unknown name is a `ValueError` listing the known ones.
pub fn setting<T: DeserializeOwned>(argument: &str, value: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|error| PyValueError::new_err(format!("{argument}: {error}")))
}

/// A serde value as plain Python data (dicts, lists, numbers, strings, None).
pub fn to_python_data(py: Python<'_>, value: &impl Serialize) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|error| PyValueError::new_err(format!("cannot convert to Python: {error}")))?;
    let json = py.import("json")?;
    Ok(json.call_method1("loads", (text,))?.unbind())
}

/// Embeddings as a `[N, D]` float32 array, moved (not copied) into numpy.
pub fn embeddings_to_array(
    py: Python<'_>,
    embeddings: Embeddings,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let shape = (embeddings.len(), embeddings.dimension());
    let array = Array2::from_shape_vec(shape, embeddings.into_values())
        .map_err(|error| PyValueError::new_err(error.to_string()))?;
    Ok(array.into_pyarray(py))
}

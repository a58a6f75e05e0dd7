//! Photos handed over from Python: paths, encoded bytes, or (id, bytes) pairs.

use std::path::PathBuf;

use g3::ImageInput;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::G3Error;

/// The photos of `images`: a list whose items are a path (`str` or `os.PathLike`), encoded
/// file bytes (`bytes`, named `image-<position>`), or an `(id, bytes)` pair. A path that
/// cannot be read is an error naming it.
pub fn images_from(images: &Bound<'_, PyAny>) -> PyResult<Vec<ImageInput>> {
    let mut inputs = Vec::new();
    for (position, item) in images.try_iter()?.enumerate() {
        let item = item?;
        inputs.push(image_from(&item, position)?);
    }
    Ok(inputs)
}

fn image_from(item: &Bound<'_, PyAny>, position: usize) -> PyResult<ImageInput> {
    if let Ok(bytes) = item.cast::<PyBytes>() {
        return Ok(ImageInput::from_bytes(
            format!("image-{position}"),
            bytes.as_bytes().to_vec(),
        ));
    }
    if let Ok(pair) = item.cast::<PyTuple>()
        && pair.len() == 2
    {
        let id: String = pair.get_item(0)?.extract()?;
        let bytes = pair.get_item(1)?;
        let bytes = bytes.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "images[{position}]: an (id, bytes) pair needs bytes"
            ))
        })?;
        return Ok(ImageInput::from_bytes(id, bytes.as_bytes().to_vec()));
    }
    let path: PathBuf = item.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "images[{position}] must be a path, bytes or an (id, bytes) pair"
        ))
    })?;
    ImageInput::from_path(&path)
        .map_err(|error| G3Error::new_err(format!("{}: {error}", path.display())))
}

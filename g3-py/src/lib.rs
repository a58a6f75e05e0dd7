//! # g3rs: g3-rs from Python
//!
//! The native module `g3rs._native` of the `g3rs` wheel (built by maturin from this crate;
//! see `g3-py/README.md`). It binds the library, never the command-line tool: the metrics,
//! the GPS and image encoders, the database, the offline reverse geocoder and the pipeline,
//! with numpy arrays in and out and Python objects accepted as pipeline stages.
//!
//! Conventions every binding follows:
//! - Arrays in: coordinates as `[N, 2]` latitude/longitude in degrees (any float dtype),
//!   embeddings as `[N, D]` float32; a C-contiguous float32 array is read in place, anything
//!   else converted once.
//! - Arrays out: moved from Rust into numpy, never copied element by element.
//! - Every call that does real work releases the GIL; calls that can run long (big
//!   searches, `Pipeline.locate`) run on a worker thread and stop at Ctrl-C with
//!   `KeyboardInterrupt`.
//! - Errors: `g3rs.G3Error` with the library's message; wrong argument shapes and names are
//!   `ValueError`; an exception raised by a Python stage comes back as itself.

mod convert;
mod database;
mod encoders;
mod errors;
mod geocoder;
mod images;
mod interrupt;
mod metrics;
mod pipeline;
mod points;
mod stages;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("G3Error", module.py().get_type::<errors::G3Error>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_function(wrap_pyfunction!(metrics::distances_km, module)?)?;
    module.add_function(wrap_pyfunction!(metrics::geoguessr_scores, module)?)?;
    module.add_function(wrap_pyfunction!(metrics::evaluate, module)?)?;
    module.add_class::<database::PyDatabase>()?;
    module.add_function(wrap_pyfunction!(database::rust_search_seconds, module)?)?;
    module.add_class::<database::Neighbors>()?;
    module.add_class::<encoders::PyGpsEncoder>()?;
    module.add_class::<encoders::PyImageEncoder>()?;
    module.add_class::<geocoder::PyReverseGeocoder>()?;
    module.add_class::<pipeline::PyPipeline>()?;
    module.add_class::<pipeline::PyPrediction>()?;
    module.add_class::<stages::PyCandidate>()?;
    module.add_class::<stages::PyVerificationQuery>()?;
    Ok(())
}

//! Rust errors as Python exceptions.
//!
//! Every error the library reports becomes a [`G3Error`] whose message is the one the `g3`
//! command prints: the error, then each cause it does not already quote. An exception raised
//! by a Python stage (a verifier, a prompt ensemble, a generator) travels through the Rust
//! pipeline inside its error chain and comes out as itself, so `except ValueError` around
//! `Pipeline.locate` catches the `ValueError` a Python verifier raised.

use std::error::Error as StdError;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    g3rs,
    G3Error,
    PyException,
    "An error reported by g3-rs: bad input, a missing or corrupt file, a stage that failed.\n\nThe message is the Rust library's (the error, then each cause it does not already quote)."
);

/// `error` as the exception Python code should see.
pub fn to_python(error: &(dyn StdError + 'static)) -> PyErr {
    let mut link: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = link {
        if let Some(raised) = current.downcast_ref::<PyErr>() {
            return Python::attach(|py| raised.clone_ref(py));
        }
        link = current.source();
    }
    G3Error::new_err(message(error))
}

/// The error and each cause it does not quote, one per line (as `g3` prints them).
pub fn message(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut shown = text.clone();
    let mut link = error.source();
    while let Some(cause) = link {
        let cause_text = cause.to_string();
        if !shown.contains(&cause_text) {
            text.push_str("\n  caused by: ");
            text.push_str(&cause_text);
            shown.push_str(&cause_text);
        }
        link = cause.source();
    }
    text
}

/// `?` for library results inside binding code: the error becomes its Python exception.
pub trait OrRaise<T> {
    /// The value, or the error as a Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T, E: StdError + 'static> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(|error| to_python(&error))
    }
}

//! `g3rs.Pipeline`: a preset or a config file composed into the Rust pipeline, with Python
//! stages swapped in, locating photos.

use std::path::PathBuf;

use g3::{PipelineConfig, Prediction, Preset};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::convert::to_python_data;
use crate::errors::{OrRaise, to_python};
use crate::images::images_from;
use crate::interrupt::in_interruptible_chunks;
use crate::stages::{PyCandidate, PythonGenerator, PythonPromptEnsemble, PythonVerifier};

/// A Python value as the TOML literal `PipelineConfig::with_setting` reads.
fn toml_literal(value: &Bound<'_, PyAny>, key: &str) -> PyResult<String> {
    if value.is_instance_of::<PyBool>() {
        return Ok(if value.extract::<bool>()? {
            "true"
        } else {
            "false"
        }
        .into());
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(value.extract::<i64>()?.to_string());
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(value.extract::<f64>()?).to_string());
    }
    let text: String = if value.is_instance_of::<PyString>() {
        value.extract()?
    } else if let Ok(path) = value.extract::<PathBuf>() {
        path.to_string_lossy().into_owned()
    } else {
        return Err(PyTypeError::new_err(format!(
            "settings[{key:?}] must be a bool, number, string or path"
        )));
    };
    Ok(toml::Value::String(text).to_string())
}

/// G3's pipeline (or any preset: an ablation, a baseline, GeoRanker), loaded and ready to
/// locate photos.
///
/// `Pipeline(preset="g3", config=None, settings=None, verifier=None, prompt_ensemble=None,
/// generator=None, verbose=False)`: the preset's configuration, or the TOML file `config`
/// (whose `preset` key it starts from), with `settings` overriding keys by their dotted
/// names (`{"database": "mp16.db", "models.clip": "clip-dir", "pool.retrieved_candidates":
/// 5}`). Python objects replace stages: `verifier` (a `score(query, candidates)` method),
/// `prompt_ensemble` (`references_needed()` and `prompts(similar, dissimilar)`) and
/// `generator` (`generate(image_id, image_bytes, prompts)`). Loading reads every model, so
/// it takes a while; `verbose=True` prints what is being loaded.
#[pyclass(frozen, name = "Pipeline", module = "g3rs")]
pub struct PyPipeline {
    // Boxed: the library type is aligned beyond the 16 bytes Python's allocator guarantees
    // for the object that embeds a pyclass's fields (burn's devices hold 64-byte aligned
    // cache-padded state).
    pipeline: Box<g3::Pipeline>,
    config: PipelineConfig,
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (preset = "g3", config = None, settings = None, verifier = None, prompt_ensemble = None, generator = None, verbose = false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        preset: &str,
        config: Option<PathBuf>,
        settings: Option<&Bound<'_, PyDict>>,
        verifier: Option<&Bound<'_, PyAny>>,
        prompt_ensemble: Option<&Bound<'_, PyAny>>,
        generator: Option<&Bound<'_, PyAny>>,
        verbose: bool,
    ) -> PyResult<Self> {
        let mut pipeline_config = match &config {
            Some(path) => PipelineConfig::from_toml_file(path).or_raise()?,
            None => Preset::from_name(preset).or_raise()?.config(),
        };
        if let Some(settings) = settings {
            for (key, value) in settings.iter() {
                let key: String = key.extract().map_err(|_| {
                    PyTypeError::new_err("settings keys are dotted setting names (strings)")
                })?;
                let literal = toml_literal(&value, &key)?;
                pipeline_config = pipeline_config.with_setting(&key, &literal).or_raise()?;
            }
        }
        let verifier = verifier.map(PythonVerifier::wrap).transpose()?;
        let ensemble = prompt_ensemble
            .map(PythonPromptEnsemble::wrap)
            .transpose()?;
        let generator = generator.map(PythonGenerator::wrap).transpose()?;
        if (ensemble.is_some() || generator.is_some()) && !pipeline_config.generation.enabled {
            return Err(PyValueError::new_err(
                "this configuration generates no LMM candidates (generation.enabled = false), so a prompt ensemble or generator would never be called: add settings={\"generation.enabled\": True}",
            ));
        }
        let pipeline = py
            .detach(|| {
                let mut progress = |step: &str| {
                    if verbose {
                        eprintln!("{step}");
                    }
                };
                let mut builder = pipeline_config.builder(&mut progress)?;
                if let Some(verifier) = verifier {
                    builder = builder.verifier(verifier);
                }
                if let Some(ensemble) = ensemble {
                    builder = builder.prompt_ensemble(ensemble);
                }
                if let Some(generator) = generator {
                    builder = builder.generator(generator);
                }
                builder.build()
            })
            .or_raise()?;
        Ok(PyPipeline {
            pipeline: Box::new(pipeline),
            config: pipeline_config,
        })
    }

    /// Locates `images` (a list of paths, encoded bytes or (id, bytes) pairs): one
    /// `Prediction` per photo, in order. The first photo that fails raises its error (see
    /// `locate_each` to keep going). Runs off the calling thread with the GIL released;
    /// Ctrl-C stops it after the photos in flight, and the call's predictions go with it:
    /// locate a long list in batches (or run a dataset with the resumable `g3 run`) to keep
    /// what is done.
    fn locate(&self, py: Python<'_>, images: &Bound<'_, PyAny>) -> PyResult<Vec<PyPrediction>> {
        let images = images_from(images)?;
        let chunk = self.chunk_size();
        let predictions =
            in_interruptible_chunks(py, &images, chunk, |photos| self.pipeline.locate(photos))?
                .or_raise()?;
        predictions
            .into_iter()
            .map(|prediction| PyPrediction::new(py, prediction))
            .collect()
    }

    /// Like `locate`, but every photo on its own: a list holding, per photo, its
    /// `Prediction` or the exception that photo met (returned, not raised).
    fn locate_each(&self, py: Python<'_>, images: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyAny>>> {
        let images = images_from(images)?;
        let chunk = self.chunk_size();
        let outcomes = in_interruptible_chunks(py, &images, chunk, |photos| {
            Ok::<_, std::convert::Infallible>(self.pipeline.locate_each_isolating(photos))
        })?
        .unwrap_or_else(|never| match never {});
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(prediction) => Ok(Py::new(py, PyPrediction::new(py, prediction)?)?.into_any()),
                Err(error) => Ok(to_python(&error).into_value(py).into_any()),
            })
            .collect()
    }

    /// The configuration the pipeline was built from, as TOML (what `g3 locate --config`
    /// reads back).
    fn config_toml(&self) -> PyResult<String> {
        self.config.to_toml().or_raise()
    }

    /// Requests, retries, tokens and cost of the LMM so far, as a dict (None without an
    /// LMM stage).
    fn generation_report(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.pipeline
            .generation_report()
            .map(|report| to_python_data(py, &report))
            .transpose()
    }
}

impl PyPipeline {
    /// Photos per chunk: enough to keep every concurrent query busy, few enough that Ctrl-C
    /// is honoured within one chunk's time.
    fn chunk_size(&self) -> usize {
        self.pipeline.settings().concurrent_queries.max(1) * 2
    }
}

/// The outcome for one photo: the chosen location and the pool it was chosen from.
#[pyclass(frozen, name = "Prediction", module = "g3rs")]
pub struct PyPrediction {
    prediction: Box<Prediction>,
    /// The photo's id.
    #[pyo3(get)]
    image_id: String,
    /// Latitude of the chosen location in degrees.
    #[pyo3(get)]
    latitude: f64,
    /// Longitude of the chosen location in degrees.
    #[pyo3(get)]
    longitude: f64,
    /// Index of the chosen candidate in `candidates`.
    #[pyo3(get)]
    chosen: usize,
    /// Every candidate of the pool, with its score and source.
    #[pyo3(get)]
    candidates: Vec<Py<PyCandidate>>,
}

impl PyPrediction {
    fn new(py: Python<'_>, prediction: Prediction) -> PyResult<Self> {
        let candidates = prediction
            .candidates
            .iter()
            .map(|candidate| Py::new(py, PyCandidate::from_candidate(py, candidate)?))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyPrediction {
            image_id: prediction.image_id.clone(),
            latitude: prediction.location.lat_deg(),
            longitude: prediction.location.lon_deg(),
            chosen: prediction.chosen,
            candidates,
            prediction: Box::new(prediction),
        })
    }
}

#[pymethods]
impl PyPrediction {
    /// `(latitude, longitude)` of the chosen location, in degrees.
    #[getter]
    fn location(&self) -> (f64, f64) {
        (self.latitude, self.longitude)
    }

    /// LMM answers that could not be read as locations, with why.
    #[getter]
    fn rejected(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python_data(py, &self.prediction.rejected)
    }

    /// LMM samples that were asked for but lost (server down, refused key...), with why.
    #[getter]
    fn lost(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python_data(py, &self.prediction.lost)
    }

    /// The whole prediction as plain data (the JSON `g3 locate --json` prints).
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python_data(py, &self.prediction)
    }

    fn __repr__(&self) -> String {
        format!(
            "Prediction({:?}, {:.5}, {:.5}, chosen {} of {})",
            self.image_id,
            self.latitude,
            self.longitude,
            self.chosen,
            self.candidates.len()
        )
    }
}

//! Python objects as pipeline stages.
//!
//! A verifier, a prompt ensemble or a generator written in Python joins the Rust pipeline
//! through these adapters. The pipeline calls them from its worker threads; each call takes
//! the GIL for its duration (calls are therefore serialised, as Python would run them
//! anyway). An exception the Python code raises fails that stage for that photo with the
//! exception kept in the error chain, so it reaches the caller of `Pipeline.locate` as
//! itself.

use g3::GeoPoint;
use g3::core::{
    Candidate, GeneratedAnswers, GeneratorDescription, ImageDetail, ImageInput, LmmAnswer,
    LmmGenerator, PromptEnsemble, PromptRequest, ReferenceCounts, RetrievedNeighbor, StageKind,
    VerificationQuery, Verifier,
};
use numpy::ndarray::{Array1, Array2};
use numpy::{AllowTypeChange, IntoPyArray, PyArrayLike1};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::convert::to_python_data;
use crate::points::points_from;

/// Runs `call` with the GIL, turning a Python exception into `stage`'s error.
fn with_python<T>(
    stage: StageKind,
    call: impl for<'py> FnOnce(Python<'py>) -> PyResult<T>,
) -> g3::core::Result<T> {
    Python::try_attach(call)
        .unwrap_or_else(|| {
            Err(PyRuntimeError::new_err(
                "the Python interpreter is shutting down",
            ))
        })
        .map_err(|error| g3::core::Error::stage(stage, error))
}

/// The name of `object`'s class, for reports.
fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "Python stage".into())
}

/// Checks that `object` has the method `name`, when it is wrapped rather than when the
/// pipeline first calls it.
fn require_method(object: &Bound<'_, PyAny>, name: &str, role: &str) -> PyResult<()> {
    match object.getattr(name) {
        Ok(method) if method.is_callable() => Ok(()),
        _ => Err(PyTypeError::new_err(format!(
            "a {role} needs a method `{name}`; {} has none",
            type_name(object)
        ))),
    }
}

/// Retrieved neighbours as a Python object with `keys`, `similarities` and `locations`
/// arrays (best first), as `Database.search` gives them for one query.
fn neighbors_to_python(py: Python<'_>, neighbors: &[RetrievedNeighbor]) -> PyResult<Py<PyAny>> {
    let count = neighbors.len();
    let keys = Array1::from_iter(neighbors.iter().map(|neighbor| neighbor.key));
    let ranks = Array1::from_iter(neighbors.iter().map(|neighbor| neighbor.rank as i64));
    let similarities = Array1::from_iter(neighbors.iter().map(|neighbor| neighbor.similarity));
    let locations = Array2::from_shape_fn((count, 2), |(row, column)| {
        let location = neighbors[row].location;
        if column == 0 {
            location.lat_deg()
        } else {
            location.lon_deg()
        }
    });
    let object = crate::database::Neighbors::new(
        ranks.into_pyarray(py).into_any().unbind(),
        keys.into_pyarray(py).into_any().unbind(),
        similarities.into_pyarray(py).into_any().unbind(),
        locations.into_pyarray(py).into_any().unbind(),
    );
    Ok(Py::new(py, object)?.into_any())
}

/// One candidate location as Python sees it.
#[pyclass(frozen, name = "Candidate", module = "g3rs")]
pub struct PyCandidate {
    /// Latitude in degrees.
    #[pyo3(get)]
    latitude: f64,
    /// Longitude in degrees.
    #[pyo3(get)]
    longitude: f64,
    /// The verifier's score, once scored.
    #[pyo3(get)]
    score: Option<f32>,
    /// Where it came from: a dict with `kind` ("generated", "retrieved", "gallery",
    /// "custom") and that kind's fields (prompt and sample, database key and rank, ...).
    #[pyo3(get)]
    source: Py<PyAny>,
}

impl PyCandidate {
    pub fn from_candidate(py: Python<'_>, candidate: &Candidate) -> PyResult<Self> {
        Ok(PyCandidate {
            latitude: candidate.location.lat_deg(),
            longitude: candidate.location.lon_deg(),
            score: candidate.score,
            source: to_python_data(py, &candidate.source)?,
        })
    }
}

#[pymethods]
impl PyCandidate {
    /// `(latitude, longitude)` in degrees.
    #[getter]
    fn location(&self) -> (f64, f64) {
        (self.latitude, self.longitude)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Candidate({:.5}, {:.5}, score={:?}, source={})",
            self.latitude,
            self.longitude,
            self.score,
            self.source.bind(py).repr()?
        ))
    }
}

/// What a Python verifier learns about the photo besides its candidates.
#[pyclass(frozen, name = "VerificationQuery", module = "g3rs")]
pub struct PyVerificationQuery {
    image: ImageInput,
    /// The photo's id (its file name, or the id given with its bytes).
    #[pyo3(get)]
    image_id: String,
    /// The photo's query embedding (float32 [D]), when the pipeline computed one.
    #[pyo3(get)]
    embedding: Option<Py<PyAny>>,
    /// Its most similar database entries (`keys`, `similarities`, `locations`), best first.
    #[pyo3(get)]
    neighbors: Py<PyAny>,
}

#[pymethods]
impl PyVerificationQuery {
    /// The photo's encoded bytes, as read (for models that look at the photo itself).
    #[getter]
    fn image_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.image.encoded())
    }
}

/// A Python object with `score(query, candidates) -> scores` as the verifier: the pipeline
/// picks the candidate with the highest score (the first of equals; NaN never wins).
pub struct PythonVerifier {
    object: Py<PyAny>,
}

impl PythonVerifier {
    pub fn wrap(object: &Bound<'_, PyAny>) -> PyResult<Self> {
        require_method(object, "score", "verifier")?;
        Ok(PythonVerifier {
            object: object.clone().unbind(),
        })
    }
}

impl Verifier for PythonVerifier {
    fn score(
        &self,
        query: &VerificationQuery<'_>,
        candidates: &[Candidate],
    ) -> g3::core::Result<Vec<f32>> {
        with_python(StageKind::Verifier, |py| {
            let python_query = PyVerificationQuery {
                image: query.image.clone(),
                image_id: query.image.id().to_owned(),
                embedding: query
                    .embedding
                    .map(|embedding| embedding.to_vec().into_pyarray(py).into_any().unbind()),
                neighbors: neighbors_to_python(py, query.similar)?,
            };
            let python_candidates = candidates
                .iter()
                .map(|candidate| Py::new(py, PyCandidate::from_candidate(py, candidate)?))
                .collect::<PyResult<Vec<_>>>()?;
            let scores = self.object.bind(py).call_method1(
                "score",
                (
                    Py::new(py, python_query)?,
                    PyList::new(py, python_candidates)?,
                ),
            )?;
            let scores: PyArrayLike1<'_, f32, AllowTypeChange> =
                scores.extract().map_err(|_| {
                    PyTypeError::new_err(
                        "a verifier's score() must return one number per candidate",
                    )
                })?;
            let scores: Vec<f32> = scores.as_array().iter().copied().collect();
            if scores.len() != candidates.len() {
                return Err(PyValueError::new_err(format!(
                    "the verifier's score() returned {} scores for {} candidates",
                    scores.len(),
                    candidates.len()
                )));
            }
            Ok(scores)
        })
    }
}

/// A Python object as the Geo-diversification prompt ensemble: `references_needed()` returns
/// `(similar, dissimilar)`, how many neighbours of each kind the prompts quote, and
/// `prompts(similar, dissimilar)` the prompts for one photo from its neighbours (each with
/// `keys`, `similarities` and `locations`), as strings or dicts with `text` and optionally
/// `samples` (default 5), `temperature` (1.2), `max_tokens` (200), `image_detail` ("low") and
/// the `similar`/`dissimilar` coordinates the prompt quotes (default: every neighbour given).
pub struct PythonPromptEnsemble {
    object: Py<PyAny>,
    needed: ReferenceCounts,
}

impl PythonPromptEnsemble {
    pub fn wrap(object: &Bound<'_, PyAny>) -> PyResult<Self> {
        require_method(object, "prompts", "prompt ensemble")?;
        require_method(object, "references_needed", "prompt ensemble")?;
        let (similar, dissimilar): (usize, usize) = object
            .call_method0("references_needed")?
            .extract()
            .map_err(|_| {
                PyTypeError::new_err(
                    "a prompt ensemble's references_needed() must return (similar, dissimilar) counts",
                )
            })?;
        Ok(PythonPromptEnsemble {
            object: object.clone().unbind(),
            needed: ReferenceCounts {
                similar,
                dissimilar,
            },
        })
    }
}

/// One prompt of a Python ensemble's answer.
fn prompt_from(
    item: &Bound<'_, PyAny>,
    prompt_index: usize,
    similar: &[RetrievedNeighbor],
    dissimilar: &[RetrievedNeighbor],
) -> PyResult<PromptRequest> {
    let defaults = g3::prompt::PromptSpec::default();
    let quoted = |neighbors: &[RetrievedNeighbor]| -> Vec<GeoPoint> {
        neighbors.iter().map(|neighbor| neighbor.location).collect()
    };
    let mut request = PromptRequest {
        prompt_index,
        text: String::new(),
        samples: defaults.samples,
        temperature: defaults.temperature,
        max_tokens: defaults.max_tokens,
        image_detail: defaults.image_detail,
        similar: quoted(similar),
        dissimilar: quoted(dissimilar),
    };
    if let Ok(text) = item.extract::<String>() {
        request.text = text;
        return Ok(request);
    }
    let fields = item.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "prompt {prompt_index}: a prompt is a string or a dict with `text`"
        ))
    })?;
    let field_error = |name: &'static str| {
        move |_| {
            PyTypeError::new_err(format!(
                "prompt {prompt_index}: `{name}` has the wrong type"
            ))
        }
    };
    request.text = fields
        .get_item("text")?
        .ok_or_else(|| PyValueError::new_err(format!("prompt {prompt_index} has no `text`")))?
        .extract()
        .map_err(field_error("text"))?;
    for (name, value) in fields.iter() {
        let name: String = name.extract()?;
        match name.as_str() {
            "text" => {}
            "samples" => request.samples = value.extract().map_err(field_error("samples"))?,
            "temperature" => {
                request.temperature = value.extract().map_err(field_error("temperature"))?
            }
            "max_tokens" => {
                request.max_tokens = value.extract().map_err(field_error("max_tokens"))?
            }
            "image_detail" => {
                let detail: String = value.extract().map_err(field_error("image_detail"))?;
                request.image_detail =
                    crate::convert::setting::<ImageDetail>("image_detail", &detail)?;
            }
            "similar" => request.similar = points_from(&value, "similar")?,
            "dissimilar" => request.dissimilar = points_from(&value, "dissimilar")?,
            other => {
                return Err(PyValueError::new_err(format!(
                    "prompt {prompt_index}: unknown field `{other}` (known: text, samples, temperature, max_tokens, image_detail, similar, dissimilar)"
                )));
            }
        }
    }
    Ok(request)
}

impl PromptEnsemble for PythonPromptEnsemble {
    fn references_needed(&self) -> ReferenceCounts {
        self.needed
    }

    fn prompts(
        &self,
        similar: &[RetrievedNeighbor],
        dissimilar: &[RetrievedNeighbor],
    ) -> g3::core::Result<Vec<PromptRequest>> {
        with_python(StageKind::PromptEnsemble, |py| {
            let prompts = self.object.bind(py).call_method1(
                "prompts",
                (
                    neighbors_to_python(py, similar)?,
                    neighbors_to_python(py, dissimilar)?,
                ),
            )?;
            prompts
                .try_iter()?
                .enumerate()
                .map(|(index, item)| prompt_from(&item?, index, similar, dissimilar))
                .collect()
        })
    }
}

/// A Python object as the LMM: `generate(image_id, image_bytes, prompts)` receives the
/// photo and the prompts (dicts as `PromptRequest` serialises) and returns, for each prompt,
/// a list of up to `samples` answer texts. Answers it does not give are counted as
/// declined; an exception fails the photo (never a silent fallback).
pub struct PythonGenerator {
    object: Py<PyAny>,
    name: String,
}

impl PythonGenerator {
    pub fn wrap(object: &Bound<'_, PyAny>) -> PyResult<Self> {
        require_method(object, "generate", "generator")?;
        Ok(PythonGenerator {
            object: object.clone().unbind(),
            name: type_name(object),
        })
    }
}

impl LmmGenerator for PythonGenerator {
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3::core::Result<GeneratedAnswers> {
        with_python(StageKind::LmmGenerator, |py| {
            let answers = self.object.bind(py).call_method1(
                "generate",
                (
                    image.id(),
                    PyBytes::new(py, image.encoded()),
                    to_python_data(py, &prompts)?,
                ),
            )?;
            let answers: Vec<Vec<String>> = answers.extract().map_err(|_| {
                PyTypeError::new_err(
                    "a generator's generate() must return a list of answer lists, one per prompt",
                )
            })?;
            if answers.len() != prompts.len() {
                return Err(PyValueError::new_err(format!(
                    "the generator's generate() answered {} prompts of {}",
                    answers.len(),
                    prompts.len()
                )));
            }
            let mut generated = GeneratedAnswers::default();
            for (prompt, texts) in prompts.iter().zip(answers) {
                if texts.len() > prompt.samples as usize {
                    return Err(PyValueError::new_err(format!(
                        "the generator's generate() gave {} answers to prompt {}, which asked for {}",
                        texts.len(),
                        prompt.prompt_index,
                        prompt.samples
                    )));
                }
                for (sample_index, text) in texts.into_iter().enumerate() {
                    generated.answers.push(LmmAnswer {
                        prompt_index: prompt.prompt_index,
                        sample_index: sample_index as u32,
                        text,
                    });
                }
            }
            Ok(generated)
        })
    }

    fn describe(&self) -> GeneratorDescription {
        GeneratorDescription::model(format!("Python generator {}", self.name))
    }
}

//! Geo-diversification: several retrieval-augmented prompts per query, each sampled several
//! times (G3 paper, section 3.2).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use g3_core::{ImageDetail, PromptEnsemble, PromptRequest, ReferenceCounts, RetrievedNeighbor};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The indentation G3's Python source leaves inside its triple-quoted prompts; kept so the
/// default prompts are byte for byte the reference's.
const REFERENCE_LINE_BREAK: &str = "\n                ";

/// G3's zero-shot prompt (`llm_predict.py`, `get_response`), verbatim.
pub static REFERENCE_ZERO_SHOT_TEMPLATE: LazyLock<String> = LazyLock::new(|| {
    [
        "Suppose you are an expert in geo-localization, you have the ability to give two number GPS coordination given an image.",
        "Please give me the location of the given image.",
        "Remember, you must have an answer, just output your best guess, don't answer me that you can't give a location.",
        r#"Your answer should be in the following JSON format without any other information: {"latitude": float,"longitude": float}."#,
        r#"Your answer should be in the following JSON format without any other information: {"latitude": float,"longitude": float}."#,
    ]
    .join(REFERENCE_LINE_BREAK)
});

/// G3's retrieval-augmented prompt (`llm_predict.py`, `get_response_rag`), verbatim, with
/// the template variables `{similar}` and `{dissimilar}`.
pub static REFERENCE_RAG_TEMPLATE: LazyLock<String> = LazyLock::new(|| {
    let mut text = [
        "Suppose you are an expert in geo-localization, Please analyze this image and give me a guess of the location.",
        "Your answer must be to the coordinates level in (latitude, longitude) format.",
        "For your reference, these are coordinates of some similar images: {similar}, and these are coordinates of some dissimilar images: {dissimilar}.",
        "Remember, you must have an answer, just output your best guess, don't answer me that you can't give an location.",
        r#"Your answer should be in the following JSON format without any other information: {"latitude": float,"longitude": float}."#,
        r#"Your answer should be in the following JSON format without any other information: {"latitude": float,"longitude": float}."#,
    ]
    .join(REFERENCE_LINE_BREAK);
    text.push_str(REFERENCE_LINE_BREAK);
    text
});

/// One prompt of an ensemble and how to sample it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptSpec {
    /// Coordinates of similar images quoted (0 with `dissimilar = 0` means zero-shot).
    pub similar: usize,
    /// Coordinates of dissimilar images quoted.
    pub dissimilar: usize,
    /// Answers sampled (G3's N: 5 on IM2GPS3K, 1 on YFCC4K).
    pub samples: u32,
    /// Sampling temperature (1.2 with GPT-4V; 0.7 for the LLaVA variant).
    pub temperature: f32,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// How closely the model looks at the image.
    pub image_detail: ImageDetail,
}

impl Default for PromptSpec {
    fn default() -> Self {
        PromptSpec {
            similar: 0,
            dissimilar: 0,
            samples: 5,
            temperature: 1.2,
            max_tokens: 200,
            image_detail: ImageDetail::Low,
        }
    }
}

/// A Geo-diversification ensemble. The default is the paper's: four prompts quoting
/// (0, 0), (5, 5), (10, 10) and (15, 15) similar and dissimilar coordinates, 5 samples each
/// at temperature 1.2, at most 200 tokens, low image detail, with the reference's wording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptEnsembleConfig {
    /// The prompts, in order.
    pub prompts: Vec<PromptSpec>,
    /// Text of prompts that quote no coordinates; may not contain template variables.
    pub zero_shot_template: String,
    /// Text of retrieval-augmented prompts; `{similar}` and `{dissimilar}` are replaced by
    /// the quoted coordinates.
    pub rag_template: String,
}

impl Default for PromptEnsembleConfig {
    fn default() -> Self {
        let prompt = |references| PromptSpec {
            similar: references,
            dissimilar: references,
            ..PromptSpec::default()
        };
        PromptEnsembleConfig {
            prompts: vec![prompt(0), prompt(5), prompt(10), prompt(15)],
            zero_shot_template: REFERENCE_ZERO_SHOT_TEMPLATE.clone(),
            rag_template: REFERENCE_RAG_TEMPLATE.clone(),
        }
    }
}

impl PromptEnsembleConfig {
    /// The paper's "w/o Geo-D" ablation: a single prompt with 10 similar and 10 dissimilar
    /// coordinates.
    pub fn without_diversification() -> Self {
        PromptEnsembleConfig {
            prompts: vec![PromptSpec {
                similar: 10,
                dissimilar: 10,
                ..PromptSpec::default()
            }],
            ..PromptEnsembleConfig::default()
        }
    }

    /// GeoRanker's zero-shot candidates (`lvlm_zs_predict.py`): G3's zero-shot prompt (the
    /// same text, which GeoRanker kept) sampled `samples` times at temperature 1.2, at most 200
    /// tokens, low image detail. GeoRanker asks for 10 samples and keeps its first `topn_zs`
    /// (5 by default, 3 in its README); asking for `topn_zs` gives the same candidates for
    /// less.
    pub fn georanker_zero_shot(samples: u32) -> Self {
        PromptEnsembleConfig {
            prompts: vec![PromptSpec {
                samples,
                ..PromptSpec::default()
            }],
            ..PromptEnsembleConfig::default()
        }
    }

    /// The most similar and dissimilar coordinates any prompt quotes: how many neighbours
    /// a query must retrieve for this ensemble.
    pub fn references_needed(&self) -> ReferenceCounts {
        let most =
            |count: fn(&PromptSpec) -> usize| self.prompts.iter().map(count).max().unwrap_or(0);
        ReferenceCounts {
            similar: most(|prompt| prompt.similar),
            dissimilar: most(|prompt| prompt.dissimilar),
        }
    }
}

impl PromptEnsembleConfig {
    /// Reads a whole ensemble (prompts and templates) from a JSON file; fields left out
    /// keep the paper's defaults. Syntax errors name the file, line and column.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, EnsembleError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        serde_json::from_str(&text).map_err(|error| EnsembleError::File {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    }

    /// Replaces the zero-shot and/or the RAG template by the text of a file (UTF-8, used
    /// verbatim, trailing newline included). Each template is checked for unknown template
    /// variables here, so the error can name the file.
    pub fn with_template_files(
        mut self,
        zero_shot: Option<&Path>,
        rag: Option<&Path>,
    ) -> Result<Self, EnsembleError> {
        let in_file = |path: &Path, source: EnsembleError| EnsembleError::File {
            path: path.to_path_buf(),
            message: source.to_string(),
        };
        if let Some(path) = zero_shot {
            let template = read_file(path)?;
            check_variables(&template, "zero-shot", &[], "none")
                .map_err(|error| in_file(path, error))?;
            self.zero_shot_template = template;
        }
        if let Some(path) = rag {
            let template = read_file(path)?;
            check_variables(&template, "RAG", &["similar", "dissimilar"], RAG_VARIABLES)
                .map_err(|error| in_file(path, error))?;
            self.rag_template = template;
        }
        Ok(self)
    }
}

fn read_file(path: &Path) -> Result<String, EnsembleError> {
    std::fs::read_to_string(path).map_err(|error| EnsembleError::File {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// The template variables of the RAG template, as error messages list them.
const RAG_VARIABLES: &str = "{similar}, {dissimilar}";

/// A template or ensemble that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnsembleError {
    /// The ensemble has no prompt.
    #[error("a prompt ensemble needs at least one prompt")]
    NoPrompts,
    /// A prompt samples zero answers.
    #[error("prompt {index} samples no answer (samples = 0)")]
    NoSamples {
        /// Position of the prompt.
        index: usize,
    },
    /// A `{name}` in a template that is not a known template variable.
    #[error("the {template} template has an unknown template variable {{{name}}}; known: {known}")]
    UnknownVariable {
        /// Which template.
        template: &'static str,
        /// The template variable name.
        name: String,
        /// The template variables that template accepts.
        known: &'static str,
    },
    /// A prompt quotes coordinates of a kind the template has no template variable for.
    #[error(
        "prompt {index} quotes {kind} coordinates but the RAG template has no {{{kind}}} template variable"
    )]
    MissingVariable {
        /// Position of the prompt.
        index: usize,
        /// `similar` or `dissimilar`.
        kind: &'static str,
    },
    /// A configuration or template file could not be read or is invalid.
    #[error("{path}: {message}", path = path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong (an I/O error, a JSON error with line and column, a template error).
        message: String,
    },
}

/// Renders G3's retrieval-augmented prompts; implements [`PromptEnsemble`].
///
/// Coordinates are quoted as the reference does: a Python list of strings such as
/// `['[48.8566, 2.3522]', '[51.5074, -0.1278]']`, numbers in Python's float notation.
#[derive(Debug, Clone, PartialEq)]
pub struct RagPromptEnsemble {
    config: PromptEnsembleConfig,
}

impl RagPromptEnsemble {
    /// Validates the templates against the prompts and builds the ensemble.
    pub fn new(config: PromptEnsembleConfig) -> Result<Self, EnsembleError> {
        if config.prompts.is_empty() {
            return Err(EnsembleError::NoPrompts);
        }
        if let Some(index) = config.prompts.iter().position(|prompt| prompt.samples == 0) {
            return Err(EnsembleError::NoSamples { index });
        }
        check_variables(&config.zero_shot_template, "zero-shot", &[], "none")?;
        let rag = &config.rag_template;
        check_variables(rag, "RAG", &["similar", "dissimilar"], RAG_VARIABLES)?;
        for (index, prompt) in config.prompts.iter().enumerate() {
            for (count, kind) in [
                (prompt.similar, "similar"),
                (prompt.dissimilar, "dissimilar"),
            ] {
                if count > 0 && !rag.contains(&format!("{{{kind}}}")) {
                    return Err(EnsembleError::MissingVariable { index, kind });
                }
            }
        }
        Ok(RagPromptEnsemble { config })
    }

    /// The configuration.
    pub fn config(&self) -> &PromptEnsembleConfig {
        &self.config
    }
}

impl Default for RagPromptEnsemble {
    /// The paper's ensemble.
    fn default() -> Self {
        RagPromptEnsemble::new(PromptEnsembleConfig::default())
            .expect("the reference templates fit the paper's prompts")
    }
}

fn check_variables(
    template: &str,
    name: &'static str,
    allowed: &[&str],
    known: &'static str,
) -> Result<(), EnsembleError> {
    static TEMPLATE_VARIABLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("valid regex"));
    match TEMPLATE_VARIABLE
        .captures_iter(template)
        .find(|capture| !allowed.contains(&&capture[1]))
    {
        Some(capture) => Err(EnsembleError::UnknownVariable {
            template: name,
            name: capture[1].to_owned(),
            known,
        }),
        None => Ok(()),
    }
}

impl PromptEnsemble for RagPromptEnsemble {
    fn references_needed(&self) -> ReferenceCounts {
        self.config.references_needed()
    }

    /// When fewer neighbours are given than a prompt asks for, it quotes those there are and
    /// lists them in `similar` / `dissimilar`. Never fails: the templates were
    /// checked when the ensemble was built.
    fn prompts(
        &self,
        similar: &[RetrievedNeighbor],
        dissimilar: &[RetrievedNeighbor],
    ) -> g3_core::Result<Vec<PromptRequest>> {
        Ok(self
            .config
            .prompts
            .iter()
            .enumerate()
            .map(|(prompt_index, spec)| {
                let similar = &similar[..spec.similar.min(similar.len())];
                let dissimilar = &dissimilar[..spec.dissimilar.min(dissimilar.len())];
                let text = if spec.similar == 0 && spec.dissimilar == 0 {
                    self.config.zero_shot_template.clone()
                } else {
                    self.config
                        .rag_template
                        .replace("{similar}", &quote_coordinates(similar))
                        .replace("{dissimilar}", &quote_coordinates(dissimilar))
                };
                PromptRequest {
                    prompt_index,
                    text,
                    samples: spec.samples,
                    temperature: spec.temperature,
                    max_tokens: spec.max_tokens,
                    image_detail: spec.image_detail,
                    similar: similar.iter().map(|neighbour| neighbour.location).collect(),
                    dissimilar: dissimilar
                        .iter()
                        .map(|neighbour| neighbour.location)
                        .collect(),
                }
            })
            .collect())
    }
}

/// `['[lat, lon]', ...]`: Python's `str()` of the reference's list of `f'[{lat}, {lon}]'`.
fn quote_coordinates(neighbours: &[RetrievedNeighbor]) -> String {
    let items: Vec<String> = neighbours
        .iter()
        .map(|neighbour| {
            format!(
                "'[{}, {}]'",
                python_float(neighbour.location.lat_deg()),
                python_float(neighbour.location.lon_deg())
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A float as Python's `repr` writes it: shortest round-trip digits, `.0` on integral
/// values, exponent form below 1e-4 and from 1e16 (with at least two exponent digits).
pub fn python_float(value: f64) -> String {
    let magnitude = value.abs();
    if value != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').expect("`{:e}` always has an exponent");
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ("-", digits),
            None => ("+", exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let text = format!("{value}");
    if text.contains('.') || text.contains("inf") || text.contains("NaN") {
        text
    } else {
        format!("{text}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_python_does() {
        let cases = [
            (48.8566, "48.8566"),
            (48.0, "48.0"),
            (-0.1278, "-0.1278"),
            (0.0, "0.0"),
            (1e-5, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (0.0001, "0.0001"),
            (123.456789012345, "123.456789012345"),
        ];
        for (value, python) in cases {
            assert_eq!(python_float(value), python, "{value}");
        }
    }
}

//! Geo-diversification: prompts, large multimodal models and their answers.
//!
//! - [`RagPromptEnsemble`] implements [`g3_core::PromptEnsemble`]: the paper's four prompts
//!   with (0, 0), (5, 5), (10, 10) and (15, 15) similar/dissimilar coordinates, N = 5 samples
//!   at temperature 1.2, and the reference's wording ([`PromptEnsembleConfig`] changes any of
//!   it; templates are checked for unknown or missing template variables).
//! - The answer parsers implement [`g3_core::AnswerParser`]: [`RobustAnswerParser`] (JSON,
//!   labels, hemispheres, DMS; a typed reason when it finds nothing) and
//!   [`ReferenceAnswerParser`] (G3's regex, with its (0, 0) fallback available for faithful
//!   reproductions).
//!
//! - [`DensityPeakGenerator`] implements [`g3_core::LmmGenerator`] without a model: it
//!   answers with the densest quoted reference coordinates, so a pipeline runs offline.
//!
//! - [`OpenAiGenerator`] implements [`g3_core::LmmGenerator`] for any OpenAI-compatible
//!   chat-completions server (hosted GPT-4-class models; vLLM, llama.cpp server or Ollama
//!   serving LLaVA): concurrency and requests-per-minute limits, retries with backoff and
//!   jitter honouring `Retry-After`, token and cost accounting with retries by cause, and a
//!   persistent [`ResponseCache`] so a killed run resumes without asking twice. Samples it
//!   cannot obtain are reported as lost with a [`g3_core::LossCause`] (unreachable server,
//!   refused key, unknown model, exhausted quota, retries exhausted), never dropped silently.
//! - Layers wrap any [`g3_core::LmmGenerator`] as tower's layers wrap a service:
//!   [`CachedGenerator`] (the answer cache), [`RetryingGenerator`] (lost samples asked for
//!   again under the shared [`g3_core::retry::RetryPolicy`]), [`PacedGenerator`] (calls per
//!   minute) and [`ConcurrencyLimitedGenerator`] (calls in flight), so a local or offline
//!   generator gets what the OpenAI client has.
//! - With the `mock-server` feature, [`mock::MockChatServer`] serves chat completions on
//!   loopback with injected latency and failures, for tests that need no network.
//!
//! ```
//! use g3_core::AnswerParser;
//! use g3_prompt::RobustAnswerParser;
//!
//! let answer = "```json\n{\"latitude\": 48.8584, \"longitude\": 2.2945}\n```";
//! let point = RobustAnswerParser.parse(answer)?;
//! assert_eq!((point.lat_deg(), point.lon_deg()), (48.8584, 2.2945));
//! assert!(RobustAnswerParser.parse("I'm sorry, I can't help with that.").is_err());
//! # Ok::<(), g3_core::RejectionReason>(())
//! ```
#![deny(missing_docs)]

mod cache;
mod ensemble;
mod layers;
#[cfg(feature = "mock-server")]
pub mod mock;
mod offline;
mod openai;
mod parser;

pub use cache::{CacheError, CacheKey, CachedAnswer, ResponseCache, image_sha256};

pub use ensemble::{
    EnsembleError, PromptEnsembleConfig, PromptSpec, REFERENCE_RAG_TEMPLATE,
    REFERENCE_ZERO_SHOT_TEMPLATE, RagPromptEnsemble, python_float,
};
pub use layers::{CachedGenerator, ConcurrencyLimitedGenerator, PacedGenerator, RetryingGenerator};
pub use offline::DensityPeakGenerator;
pub use openai::{
    LmmClientError, LmmJob, LmmJobOutcome, OpenAiConfig, OpenAiGenerator, PromptFailure,
    RetryPolicy, TokenPrices,
};
pub use parser::{
    AnswerRejection, GeoRankerAnswerParser, ReferenceAnswerParser, RobustAnswerParser,
    parse_coordinates,
};

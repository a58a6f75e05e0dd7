//! An [`LmmGenerator`](g3_core::LmmGenerator) for any server that speaks OpenAI's
//! chat-completions API: hosted GPT-4-class models, and local vLLM, llama.cpp server or
//! Ollama serving LLaVA.
//!
//! G3 spends most of its money and wall time here (4 prompts × N samples per image), so the
//! client is built for long unattended runs: bounded concurrency and a requests-per-minute
//! pace, retries with backoff and jitter that honour `Retry-After`, a persistent answer
//! cache so a killed run resumes without paying twice, and token and cost accounting.
//!
//! One module per job:
//!
//! | module | job |
//! |---|---|
//! | `generator` | [`OpenAiGenerator`]: settings checked, parts assembled, each prompt's samples from the cache or the server |
//! | `schedule` | [`LmmJob`]s run on a bounded pool of workers, stopped by a fatal error |
//! | `request` | one chat completion: paced, under the concurrency limit, retried, counted |
//! | `transport` | one HTTP exchange: request body, headers, the answer read and classified |
//! | `image` | the image's hash and base64 data URL, once per image |
//! | `wire` | the chat-completions JSON |
//! | `config`, `error`, `usage` | settings, errors, the usage report |
//!
//! The cache, the pace and the concurrency limit are the generic [layers](crate::layers)'
//! mechanisms; the retry policy is [`g3_core::retry`]'s.

mod config;
mod error;
mod generator;
mod image;
mod request;
mod schedule;
mod transport;
mod usage;
mod wire;

pub use config::OpenAiConfig;
pub use error::LmmClientError;
pub use g3_core::retry::RetryPolicy;
pub use generator::OpenAiGenerator;
pub use schedule::{LmmJob, LmmJobOutcome, PromptFailure};
pub use usage::TokenPrices;

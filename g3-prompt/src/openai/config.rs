//! Where and how to reach an OpenAI-compatible server.

use g3_core::retry::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::usage::TokenPrices;

/// Where and how to reach the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiConfig {
    /// The API root; `/chat/completions` is appended (default OpenAI's `https://api.openai.com/v1`;
    /// vLLM: `http://localhost:8000/v1`, Ollama: `http://localhost:11434/v1`).
    pub base_url: String,
    /// Model name as the server knows it (default `gpt-4o`, the successor of the GPT-4V
    /// model G3 reports).
    pub model: String,
    /// Environment variable holding the API key (default `OPENAI_API_KEY`); `None` for local
    /// servers without authentication. The key itself is never stored in a config, logged
    /// or written anywhere.
    pub api_key_env: Option<String>,
    /// Most requests in flight at once, over all callers of one generator (default 8).
    pub max_concurrency: usize,
    /// Most requests started per minute, paced evenly; `None` (default) for no limit.
    pub requests_per_minute: Option<u32>,
    /// Limit on one request, from connecting to the last byte of the answer, in seconds
    /// (default 120). A request that runs over counts as a failure and is retried.
    pub request_timeout_secs: f64,
    /// Limit on establishing the connection, in seconds (default 10).
    pub connect_timeout_secs: f64,
    /// When to retry and how long to wait.
    pub retry: RetryPolicy,
    /// Ask for all samples of a prompt in one request with `n` (default true). Servers that
    /// return fewer choices than `n` (llama.cpp, Ollama) are detected on the first short
    /// answer; the rest of the samples, and every later prompt, are then requested one per
    /// request.
    pub samples_in_one_request: bool,
    /// Prices for the cost line of the usage report.
    pub prices: TokenPrices,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o".into(),
            api_key_env: Some("OPENAI_API_KEY".into()),
            max_concurrency: 8,
            requests_per_minute: None,
            request_timeout_secs: 120.0,
            connect_timeout_secs: 10.0,
            retry: RetryPolicy::default(),
            samples_in_one_request: true,
            prices: TokenPrices::default(),
        }
    }
}

impl OpenAiConfig {
    /// A config for a local server without authentication (vLLM, llama.cpp, Ollama).
    pub fn local(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            ..OpenAiConfig::default()
        }
    }
}

//! An [`LmmGenerator`] for any server that speaks OpenAI's chat-completions API: hosted
//! GPT-4-class models, and local vLLM, llama.cpp server or Ollama serving LLaVA.
//!
//! G3 spends most of its money and wall time here (4 prompts × N samples per image), so the
//! client is built for long unattended runs: bounded concurrency and a requests-per-minute
//! pace, retries with backoff and jitter that honour `Retry-After`, a persistent answer
//! cache so a killed run resumes without paying twice, and token and cost accounting.

mod retry;
mod usage;
mod wire;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use g3_core::{ImageInput, LmmAnswer, LmmGenerator, PromptRequest, StageKind};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::cache::{CacheError, CacheKey, CachedAnswer, ResponseCache, image_sha256};
pub use retry::RetryPolicy;
use usage::UsageCounters;
pub use usage::{TokenPrices, UsageReport};
use wire::{ChatRequest, ChatResponse};

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

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum LmmClientError {
    /// The configured environment variable is unset or empty.
    #[error(
        "the environment variable {variable} holds no API key: set it, or set api_key_env to none for a server without authentication"
    )]
    MissingApiKey {
        /// The variable's name.
        variable: String,
    },
    /// A setting is unusable.
    #[error("invalid LMM client setting {field}: {message}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The server refused the credentials; the run stops, because every request would fail.
    #[error("{url}: the server refused the credentials (HTTP {status}): {body}")]
    Unauthorized {
        /// The endpoint.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The start of the server's explanation.
        body: String,
    },
    /// The server refused this request in a way retrying cannot fix (400, 404, 413...).
    #[error("{url}: HTTP {status}: {body}")]
    Refused {
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the server's explanation.
        body: String,
    },
    /// Every attempt failed with a temporary error.
    #[error("{url}: no answer after {attempts} attempts; the last one: {last}")]
    GaveUp {
        /// The endpoint.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The response cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// An API key read from the environment. Its `Debug` shows no key.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// One image and the prompts to send with it.
#[derive(Debug, Clone)]
pub struct LmmJob {
    /// The query photo.
    pub image: ImageInput,
    /// Its rendered prompts (from a [`g3_core::PromptEnsemble`]).
    pub prompts: Vec<PromptRequest>,
}

/// What a job produced: the answers obtained and, per prompt, what could not be had.
#[derive(Debug)]
pub struct LmmJobOutcome {
    /// Answers ordered by prompt, then sample.
    pub answers: Vec<LmmAnswer>,
    /// Prompts with samples missing, and why.
    pub failures: Vec<PromptFailure>,
}

/// Samples of one prompt that could not be obtained.
#[derive(Debug)]
pub struct PromptFailure {
    /// The [`PromptRequest::prompt_index`].
    pub prompt_index: usize,
    /// How many samples are missing.
    pub missing_samples: u32,
    /// The last error.
    pub error: LmmClientError,
}

/// The OpenAI-compatible generator. Share one per run (it is `Sync`): the concurrency
/// limit, the pace and the usage counters are per generator.
#[derive(Debug)]
pub struct OpenAiGenerator {
    config: OpenAiConfig,
    endpoint: String,
    api_key: Option<ApiKey>,
    agent: ureq::Agent,
    in_flight: Semaphore,
    pace: Option<DefaultDirectRateLimiter>,
    cache: Option<ResponseCache>,
    /// Set once a server returned fewer choices than `n`.
    server_ignores_n: AtomicBool,
    counters: UsageCounters,
}

impl OpenAiGenerator {
    /// A generator for `config`, reading the API key from the configured variable.
    pub fn new(config: OpenAiConfig) -> Result<Self, LmmClientError> {
        let api_key = match &config.api_key_env {
            None => None,
            Some(variable) => match std::env::var(variable) {
                Ok(key) if !key.trim().is_empty() => Some(ApiKey(key.trim().to_string())),
                _ => {
                    return Err(LmmClientError::MissingApiKey {
                        variable: variable.clone(),
                    });
                }
            },
        };
        Self::with_api_key(config, api_key.map(|key| key.0))
    }

    /// A generator with an explicit API key (`None`: no `Authorization` header), for callers
    /// that keep keys somewhere other than the environment.
    pub fn with_api_key(
        config: OpenAiConfig,
        api_key: Option<String>,
    ) -> Result<Self, LmmClientError> {
        let invalid = |field, message: &str| LmmClientError::InvalidConfig {
            field,
            message: message.to_string(),
        };
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(invalid("base_url", "must start with http:// or https://"));
        }
        if config.max_concurrency == 0 {
            return Err(invalid("max_concurrency", "must be at least 1"));
        }
        let positive_seconds = |value: f64| value.is_finite() && value > 0.0;
        if !positive_seconds(config.request_timeout_secs) {
            return Err(invalid("request_timeout_secs", "must be a positive number"));
        }
        if !positive_seconds(config.connect_timeout_secs) {
            return Err(invalid("connect_timeout_secs", "must be a positive number"));
        }
        let pace = match config.requests_per_minute {
            None => None,
            Some(rpm) => {
                let rpm = NonZeroU32::new(rpm)
                    .ok_or_else(|| invalid("requests_per_minute", "must be at least 1"))?;
                // A burst of one: requests are spread evenly over the minute.
                let quota = Quota::per_minute(rpm).allow_burst(NonZeroU32::MIN);
                Some(RateLimiter::direct(quota))
            }
        };
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs_f64(config.request_timeout_secs)))
            .timeout_connect(Some(Duration::from_secs_f64(config.connect_timeout_secs)))
            .max_idle_connections(config.max_concurrency.max(16))
            .max_idle_connections_per_host(config.max_concurrency)
            .build();
        Ok(OpenAiGenerator {
            endpoint: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            api_key: api_key.map(ApiKey),
            agent: ureq::Agent::new_with_config(agent_config),
            in_flight: Semaphore::new(config.max_concurrency),
            pace,
            cache: None,
            server_ignores_n: AtomicBool::new(!config.samples_in_one_request),
            counters: UsageCounters::default(),
            config,
        })
    }

    /// Answers are looked up in, and saved to, `cache`: completed answers are never
    /// requested again, so a killed run resumes where it stopped.
    pub fn with_cache(mut self, cache: ResponseCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// The `{base_url}/chat/completions` URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Totals since the generator was made.
    pub fn usage(&self) -> UsageReport {
        self.counters.report(self.config.prices)
    }

    /// Runs every prompt of every job, up to `max_concurrency` requests at a time, and
    /// returns one outcome per job in order. `on_prompt_done` is called after each prompt
    /// (for progress bars) with the number of prompts finished so far.
    ///
    /// Fails as a whole only when continuing is pointless: the server refused the
    /// credentials, or the cache cannot be written (answers would be bought and lost).
    pub fn generate_many(
        &self,
        jobs: &[LmmJob],
        on_prompt_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<LmmJobOutcome>, LmmClientError> {
        let images: Vec<PreparedImage> = jobs.iter().map(PreparedImage::new).collect();
        let units: Vec<(usize, usize)> = jobs
            .iter()
            .enumerate()
            .flat_map(|(job, request)| (0..request.prompts.len()).map(move |prompt| (job, prompt)))
            .collect();
        let results: Vec<OnceLock<PromptResult>> = units.iter().map(|_| OnceLock::new()).collect();
        let next_unit = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let fatal: Mutex<Option<LmmClientError>> = Mutex::new(None);
        // Set by a fatal error (refused credentials, a failing cache): nothing more is sent
        // in this run.
        let stopped = AtomicBool::new(false);

        let workers = self.config.max_concurrency.min(units.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        if stopped.load(Ordering::Relaxed) {
                            break;
                        }
                        let unit = next_unit.fetch_add(1, Ordering::Relaxed);
                        let Some(&(job, prompt)) = units.get(unit) else {
                            break;
                        };
                        match self.run_prompt(&images[job], &jobs[job].prompts[prompt], &stopped) {
                            Ok(result) => {
                                let _ = results[unit].set(result);
                            }
                            Err(error) => {
                                stopped.store(true, Ordering::Relaxed);
                                fatal
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(error);
                                break;
                            }
                        }
                        on_prompt_done(finished.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                });
            }
        });
        if let Some(cache) = &self.cache {
            cache.flush()?;
        }
        if let Some(error) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(error);
        }

        let mut outcomes: Vec<LmmJobOutcome> = jobs
            .iter()
            .map(|_| LmmJobOutcome {
                answers: Vec::new(),
                failures: Vec::new(),
            })
            .collect();
        for (&(job, _), result) in units.iter().zip(results) {
            let result = result.into_inner().unwrap_or_else(|| PromptResult {
                answers: Vec::new(),
                failure: None,
            });
            outcomes[job].answers.extend(result.answers);
            outcomes[job].failures.extend(result.failure);
        }
        Ok(outcomes)
    }

    /// All samples of one prompt: from the cache where possible, the rest from the server.
    fn run_prompt(
        &self,
        image: &PreparedImage<'_>,
        prompt: &PromptRequest,
        stopped: &AtomicBool,
    ) -> Result<PromptResult, LmmClientError> {
        let key = |sample_index| CacheKey {
            model: &self.config.model,
            prompt: &prompt.text,
            image_sha256: &image.sha256,
            temperature: prompt.temperature,
            max_tokens: prompt.max_tokens,
            image_detail: prompt.image_detail,
            sample_index,
        };
        let mut texts: Vec<Option<String>> = vec![None; prompt.samples as usize];
        if let Some(cache) = &self.cache {
            for (sample_index, text) in (0..prompt.samples).zip(texts.iter_mut()) {
                if let Some(answer) = cache.get(&key(sample_index))? {
                    *text = Some(answer.text);
                    UsageCounters::add(&self.counters.samples_from_cache, 1);
                }
            }
        }

        let mut failure = None;
        loop {
            let missing: Vec<u32> = (0..prompt.samples)
                .filter(|&sample| texts[sample as usize].is_none())
                .collect();
            if missing.is_empty() {
                break;
            }
            let n = if self.server_ignores_n.load(Ordering::Relaxed) {
                1
            } else {
                missing.len() as u32
            };
            match self.request_with_retries(image, prompt, n, stopped) {
                Ok(choices) => {
                    if choices.len() < n as usize
                        && !self.server_ignores_n.swap(true, Ordering::Relaxed)
                    {
                        tracing::info!(
                            asked = n,
                            got = choices.len(),
                            "the server returns fewer choices than n; asking one sample per request from now on"
                        );
                    }
                    for (choice, &sample_index) in choices.into_iter().zip(&missing) {
                        if let Some(cache) = &self.cache {
                            cache.insert(&key(sample_index), &choice)?;
                        }
                        texts[sample_index as usize] = Some(choice.text);
                    }
                }
                Err(error @ LmmClientError::Unauthorized { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(image = image.id, prompt = prompt.prompt_index, %error, "samples lost");
                    failure = Some(PromptFailure {
                        prompt_index: prompt.prompt_index,
                        missing_samples: missing.len() as u32,
                        error,
                    });
                    UsageCounters::add(&self.counters.samples_missing, missing.len() as u64);
                    break;
                }
            }
        }
        let answers = (0..prompt.samples)
            .zip(texts)
            .filter_map(|(sample_index, text)| {
                Some(LmmAnswer {
                    prompt_index: prompt.prompt_index,
                    sample_index,
                    text: text?,
                })
            })
            .collect();
        Ok(PromptResult { answers, failure })
    }

    /// One chat completion with `n` choices, retried on temporary failures. Returns at most
    /// `n` choices, and at least one.
    fn request_with_retries(
        &self,
        image: &PreparedImage<'_>,
        prompt: &PromptRequest,
        n: u32,
        stopped: &AtomicBool,
    ) -> Result<Vec<CachedAnswer>, LmmClientError> {
        let body = serde_json::to_string(&ChatRequest::new(
            &self.config.model,
            &prompt.text,
            image.data_url(),
            prompt.image_detail,
            prompt.max_tokens,
            prompt.temperature,
            n,
        ))
        .expect("a chat request always serialises");
        let mut attempt = 0;
        loop {
            if stopped.load(Ordering::Relaxed) {
                return Err(LmmClientError::GaveUp {
                    url: self.endpoint.clone(),
                    attempts: attempt,
                    last: "the run was stopped".into(),
                });
            }
            self.wait_for_pace();
            let outcome = {
                let _permit = self.in_flight.acquire();
                UsageCounters::add(&self.counters.requests_sent, 1);
                if attempt > 0 {
                    UsageCounters::add(&self.counters.retries, 1);
                }
                self.send_once(&body, n)
            };
            match outcome {
                Ok(choices) => {
                    UsageCounters::add(&self.counters.samples_received, choices.len() as u64);
                    return Ok(choices);
                }
                Err(Attempt::Final(error)) => {
                    UsageCounters::add(&self.counters.failed_requests, 1);
                    if matches!(error, LmmClientError::Unauthorized { .. }) {
                        stopped.store(true, Ordering::Relaxed);
                    }
                    return Err(error);
                }
                Err(Attempt::Temporary {
                    message,
                    retry_after,
                }) => {
                    if attempt >= self.config.retry.max_retries {
                        UsageCounters::add(&self.counters.failed_requests, 1);
                        return Err(LmmClientError::GaveUp {
                            url: self.endpoint.clone(),
                            attempts: attempt + 1,
                            last: message,
                        });
                    }
                    let wait = self.config.retry.delay(attempt, retry_after);
                    tracing::debug!(attempt, ?wait, %message, "retrying");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }

    /// Sends one request and reads its answer.
    fn send_once(&self, body: &str, n: u32) -> Result<Vec<CachedAnswer>, Attempt> {
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        if let Some(ApiKey(key)) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request
            .send(body)
            .map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = retry::retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            SystemTime::now(),
        );
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string();
        let text = match text {
            Ok(text) => text,
            Err(error) => {
                return Err(Attempt::Temporary {
                    message: format!("HTTP {status}, reading the body failed: {error}"),
                    retry_after,
                });
            }
        };
        match status {
            200..=299 => {}
            408 | 409 | 425 | 429 | 500..=599 => {
                return Err(Attempt::Temporary {
                    message: format!("HTTP {status}: {}", excerpt(&text)),
                    retry_after,
                });
            }
            401 | 403 => {
                return Err(Attempt::Final(LmmClientError::Unauthorized {
                    url: self.endpoint.clone(),
                    status,
                    body: excerpt(&text),
                }));
            }
            _ => {
                return Err(Attempt::Final(LmmClientError::Refused {
                    url: self.endpoint.clone(),
                    status,
                    body: excerpt(&text),
                }));
            }
        }
        let response: ChatResponse = serde_json::from_str(&text).map_err(|error| {
            // Truncated or garbled bodies happen behind flaky proxies: worth another try.
            Attempt::Temporary {
                message: format!("malformed response ({error}): {}", excerpt(&text)),
                retry_after: None,
            }
        })?;
        if let Some(usage) = response.usage {
            UsageCounters::add(&self.counters.prompt_tokens, usage.prompt_tokens);
            UsageCounters::add(&self.counters.completion_tokens, usage.completion_tokens);
        }
        let mut choices = response.choices;
        if choices.is_empty() {
            return Err(Attempt::Temporary {
                message: "the response holds no choices".into(),
                retry_after: None,
            });
        }
        // Servers usually list choices in order; `index` says so when they do not.
        choices.sort_by_key(|choice| choice.index.unwrap_or(u32::MAX));
        Ok(choices
            .into_iter()
            .take(n as usize)
            .map(|choice| CachedAnswer {
                text: choice.text(),
                finish_reason: choice.finish_reason,
            })
            .collect())
    }

    fn transport_error(&self, error: ureq::Error) -> Attempt {
        match error {
            ureq::Error::Timeout(_)
            | ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled => Attempt::Temporary {
                message: error.to_string(),
                retry_after: None,
            },
            other => Attempt::Final(LmmClientError::Refused {
                url: self.endpoint.clone(),
                status: 0,
                body: other.to_string(),
            }),
        }
    }

    fn wait_for_pace(&self) {
        let Some(pace) = &self.pace else {
            return;
        };
        while let Err(not_until) = pace.check() {
            std::thread::sleep(not_until.wait_time_from(pace.clock().now()));
        }
    }
}

impl LmmGenerator for OpenAiGenerator {
    /// Sends the prompts concurrently; samples that could not be had after the retries are
    /// left out (and logged), as the trait allows. Credentials and cache failures are errors.
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<Vec<LmmAnswer>> {
        let job = LmmJob {
            image: image.clone(),
            prompts: prompts.to_vec(),
        };
        let mut outcomes = self
            .generate_many(std::slice::from_ref(&job), &|_| {})
            .map_err(|error| g3_core::Error::stage(StageKind::LmmGenerator, error))?;
        Ok(outcomes
            .pop()
            .map(|outcome| outcome.answers)
            .unwrap_or_default())
    }
}

/// The result of one attempt that did not produce choices.
enum Attempt {
    /// Worth retrying (429, 5xx, timeouts, dropped connections, malformed bodies).
    Temporary {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help.
    Final(LmmClientError),
}

struct PromptResult {
    answers: Vec<LmmAnswer>,
    failure: Option<PromptFailure>,
}

/// An image's hash and (lazily) its data URL, computed once per job.
struct PreparedImage<'a> {
    id: &'a str,
    image: &'a ImageInput,
    sha256: [u8; 32],
    data_url: OnceLock<String>,
}

impl<'a> PreparedImage<'a> {
    fn new(job: &'a LmmJob) -> Self {
        PreparedImage {
            id: job.image.id(),
            image: &job.image,
            sha256: image_sha256(job.image.encoded()),
            data_url: OnceLock::new(),
        }
    }

    /// `data:{media type};base64,...`; unrecognised formats are sent as JPEG, the type
    /// servers are most lenient about.
    fn data_url(&self) -> &str {
        self.data_url.get_or_init(|| {
            let media_type = self.image.media_type().unwrap_or("image/jpeg");
            let encoded = base64::engine::general_purpose::STANDARD.encode(self.image.encoded());
            format!("data:{media_type};base64,{encoded}")
        })
    }
}

/// A counting semaphore: the global bound on requests in flight.
#[derive(Debug)]
struct Semaphore {
    available: Mutex<usize>,
    released: Condvar,
}

impl Semaphore {
    fn new(permits: usize) -> Self {
        Semaphore {
            available: Mutex::new(permits),
            released: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut available = self.available.lock().unwrap_or_else(|e| e.into_inner());
        while *available == 0 {
            available = self
                .released
                .wait(available)
                .unwrap_or_else(|e| e.into_inner());
        }
        *available -= 1;
        Permit(self)
    }
}

struct Permit<'a>(&'a Semaphore);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.available.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.released.notify_one();
    }
}

/// The first 300 characters of a server message, on one line.
fn excerpt(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((end, _)) => format!("{}...", &line[..end]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let generator =
            OpenAiGenerator::with_api_key(OpenAiConfig::default(), Some("sk-secret-123".into()))
                .unwrap();
        let debug = format!("{generator:?}");
        assert!(!debug.contains("sk-secret-123"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn a_missing_key_variable_is_named() {
        let config = OpenAiConfig {
            api_key_env: Some("G3_TEST_SURELY_UNSET_KEY".into()),
            ..OpenAiConfig::default()
        };
        let error = OpenAiGenerator::new(config).unwrap_err().to_string();
        assert!(error.contains("G3_TEST_SURELY_UNSET_KEY"), "{error}");
    }

    #[test]
    fn unusable_settings_are_refused_by_name() {
        let cases: [(OpenAiConfig, &str); 4] = [
            (
                OpenAiConfig::local("localhost:8000/v1", "llava"),
                "base_url",
            ),
            (
                OpenAiConfig {
                    max_concurrency: 0,
                    ..OpenAiConfig::local("http://localhost:8000/v1", "llava")
                },
                "max_concurrency",
            ),
            (
                OpenAiConfig {
                    requests_per_minute: Some(0),
                    ..OpenAiConfig::local("http://localhost:8000/v1", "llava")
                },
                "requests_per_minute",
            ),
            (
                OpenAiConfig {
                    request_timeout_secs: f64::NAN,
                    ..OpenAiConfig::local("http://localhost:8000/v1", "llava")
                },
                "request_timeout_secs",
            ),
        ];
        for (config, field) in cases {
            let error = OpenAiGenerator::new(config).unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
    }

    #[test]
    fn the_endpoint_joins_the_base_url_once() {
        let generator =
            OpenAiGenerator::new(OpenAiConfig::local("http://localhost:11434/v1/", "llava"))
                .unwrap();
        assert_eq!(
            generator.endpoint(),
            "http://localhost:11434/v1/chat/completions"
        );
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt("a\n  b"), "a b");
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), 303);
    }
}

//! An [`LmmGenerator`] for any server that speaks OpenAI's chat-completions API: hosted
//! GPT-4-class models, and local vLLM, llama.cpp server or Ollama serving LLaVA.
//!
//! G3 spends most of its money and wall time here (4 prompts × N samples per image), so the
//! client is built for long unattended runs: bounded concurrency and a requests-per-minute
//! pace, retries with backoff and jitter that honour `Retry-After`, a persistent answer
//! cache so a killed run resumes without paying twice, and token and cost accounting.

mod config;
mod error;
mod queue;
mod retry;
mod usage;
mod wire;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use g3_core::{
    GeneratedAnswers, GeneratorDescription, ImageInput, LmmAnswer, LmmGenerator, LmmUsage,
    LossCause, LostAnswers, PromptRequest, StageKind,
};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::cache::{CacheKey, CachedAnswer, ResponseCache, image_sha256};
pub use config::OpenAiConfig;
pub use error::LmmClientError;
use queue::Semaphore;
pub use retry::RetryPolicy;
use usage::RetryCause;
pub use usage::TokenPrices;
use usage::UsageCounters;
use wire::{ChatRequest, ChatResponse};

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

impl LmmJobOutcome {
    /// The answers, and the failures as lost answers with their causes.
    pub fn into_generated(self) -> GeneratedAnswers {
        GeneratedAnswers {
            answers: self.answers,
            lost: self
                .failures
                .into_iter()
                .map(|failure| LostAnswers {
                    prompt_index: failure.prompt_index,
                    samples: failure.missing_samples,
                    cause: failure.error.loss_cause(),
                    message: failure.error.to_string(),
                })
                .collect(),
        }
    }
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
        if api_key.is_some()
            && let Some(warning) = plain_http_key_warning(&config.base_url)
        {
            tracing::warn!("{warning}");
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
    pub fn usage(&self) -> LmmUsage {
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
        let (outcomes, fatal) = self.run_jobs(jobs, on_prompt_done);
        match fatal {
            Some(error) => Err(error),
            None => Ok(outcomes),
        }
    }

    /// Runs the jobs as [`generate_many`](Self::generate_many) does, and returns what was
    /// obtained even when a fatal error stopped the run.
    fn run_jobs(
        &self,
        jobs: &[LmmJob],
        on_prompt_done: &(dyn Fn(usize) + Sync),
    ) -> (Vec<LmmJobOutcome>, Option<LmmClientError>) {
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
        let mut fatal = fatal.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(cache) = &self.cache
            && let Err(error) = cache.flush()
        {
            fatal.get_or_insert(error.into());
        }

        let mut outcomes: Vec<LmmJobOutcome> = jobs
            .iter()
            .map(|_| LmmJobOutcome {
                answers: Vec::new(),
                failures: Vec::new(),
            })
            .collect();
        let mut missing = 0u64;
        for (&(job, prompt), result) in units.iter().zip(results) {
            let result = result.into_inner().unwrap_or_else(|| PromptResult {
                answers: Vec::new(),
                failure: None,
            });
            missing += u64::from(jobs[job].prompts[prompt].samples)
                .saturating_sub(result.answers.len() as u64);
            outcomes[job].answers.extend(result.answers);
            outcomes[job].failures.extend(result.failure);
        }
        UsageCounters::add(&self.counters.samples_missing, missing);
        (outcomes, fatal)
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
                    // The pipeline reports the photo; this is the per-prompt detail.
                    tracing::debug!(
                        "{}: prompt {}: {} samples lost: {error}",
                        image.id,
                        prompt.prompt_index,
                        missing.len()
                    );
                    failure = Some(PromptFailure {
                        prompt_index: prompt.prompt_index,
                        missing_samples: missing.len() as u32,
                        error,
                    });
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
        // What the previous attempt failed with, when this one is a retry.
        let mut retrying: Option<RetryCause> = None;
        loop {
            if stopped.load(Ordering::Relaxed) {
                return Err(LmmClientError::GaveUp {
                    url: self.endpoint.clone(),
                    attempts: attempt,
                    last: "the run was stopped".into(),
                    cause: LossCause::Stopped,
                });
            }
            self.wait_for_pace();
            let outcome = {
                let _permit = self.in_flight.acquire();
                UsageCounters::add(&self.counters.requests_sent, 1);
                if let Some(cause) = retrying {
                    self.counters.count_retry(cause);
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
                    cause,
                    unreachable,
                }) => {
                    if attempt >= self.config.retry.max_retries {
                        UsageCounters::add(&self.counters.failed_requests, 1);
                        return Err(LmmClientError::GaveUp {
                            url: self.endpoint.clone(),
                            attempts: attempt + 1,
                            last: message,
                            cause: if unreachable {
                                LossCause::Unreachable
                            } else {
                                LossCause::RetriesExhausted
                            },
                        });
                    }
                    let wait = self.config.retry.delay(attempt, retry_after);
                    tracing::debug!(attempt, ?wait, %message, "retrying");
                    std::thread::sleep(wait);
                    attempt += 1;
                    retrying = Some(cause);
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
                    cause: RetryCause::Connection,
                    unreachable: false,
                });
            }
        };
        match status {
            200..=299 => {}
            // OpenAI's "You exceeded your current quota": no retry brings credit back.
            429 if text.contains("insufficient_quota") => {
                return Err(Attempt::Final(LmmClientError::QuotaExhausted {
                    url: self.endpoint.clone(),
                    body: excerpt(&text),
                }));
            }
            408 | 409 | 425 | 429 | 500..=599 => {
                return Err(Attempt::Temporary {
                    message: format!("HTTP {status}: {}", excerpt(&text)),
                    retry_after,
                    cause: if status == 429 {
                        RetryCause::RateLimited
                    } else {
                        RetryCause::ServerError
                    },
                    unreachable: false,
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
                cause: RetryCause::MalformedResponse,
                unreachable: false,
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
                cause: RetryCause::MalformedResponse,
                unreachable: false,
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
        use std::io::ErrorKind;
        // Failures before a connection exists mean the server cannot be reached at all.
        let unreachable = match &error {
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
            ureq::Error::Timeout(which) => {
                matches!(which, ureq::Timeout::Connect | ureq::Timeout::Resolve)
            }
            ureq::Error::Io(io) => matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            ),
            _ => false,
        };
        let cause = match &error {
            ureq::Error::Timeout(_) => RetryCause::Timeout,
            _ => RetryCause::Connection,
        };
        match error {
            ureq::Error::Timeout(_)
            | ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled => Attempt::Temporary {
                message: error.to_string(),
                retry_after: None,
                cause,
                unreachable,
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
    /// Sends the prompts concurrently. Samples that could not be had after the retries, or
    /// because the server refused the credentials, are reported as lost with their cause;
    /// only a failing response cache is an error.
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let job = LmmJob {
            image: image.clone(),
            prompts: prompts.to_vec(),
        };
        let (mut outcomes, fatal) = self.run_jobs(std::slice::from_ref(&job), &|_| {});
        let outcome = outcomes.pop().unwrap_or(LmmJobOutcome {
            answers: Vec::new(),
            failures: Vec::new(),
        });
        match fatal {
            None => Ok(outcome.into_generated()),
            // Refused credentials stop every request: whatever is missing is lost to them.
            Some(error @ LmmClientError::Unauthorized { .. }) => {
                let message = error.to_string();
                let lost = prompts
                    .iter()
                    .filter_map(|prompt| {
                        let obtained = outcome
                            .answers
                            .iter()
                            .filter(|answer| answer.prompt_index == prompt.prompt_index)
                            .count() as u32;
                        let missing = prompt.samples.saturating_sub(obtained);
                        (missing > 0).then(|| LostAnswers {
                            prompt_index: prompt.prompt_index,
                            samples: missing,
                            cause: LossCause::Unauthorized,
                            message: message.clone(),
                        })
                    })
                    .collect();
                Ok(GeneratedAnswers {
                    answers: outcome.answers,
                    lost,
                })
            }
            Some(error) => Err(g3_core::Error::stage(StageKind::LmmGenerator, error)),
        }
    }

    fn describe(&self) -> GeneratorDescription {
        GeneratorDescription::model(format!(
            "{} at {} (OpenAI-compatible)",
            self.config.model, self.endpoint
        ))
    }

    fn usage(&self) -> Option<LmmUsage> {
        Some(OpenAiGenerator::usage(self))
    }
}

/// The result of one attempt that did not produce choices.
enum Attempt {
    /// Worth retrying (429, 5xx, timeouts, dropped connections, malformed bodies).
    Temporary {
        message: String,
        retry_after: Option<Duration>,
        cause: RetryCause,
        /// No connection could be made (refused, unknown host, connect timeout).
        unreachable: bool,
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

/// The warning for an API key that would travel unencrypted: `base_url` is plain `http://`
/// and its host is not this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn plain_http_key_warning(base_url: &str) -> Option<String> {
    let rest = base_url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        // An IPv6 literal: [::1]:8000.
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    (!loopback).then(|| {
        format!(
            "the API key will be sent unencrypted to {host} ({base_url} is plain http:// and not this machine): use https://, or set api_key_env = \"\" if the server needs no key"
        )
    })
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
    fn keys_over_plain_http_are_flagged_unless_the_host_is_this_machine() {
        for quiet in [
            "https://api.openai.com/v1",
            "http://localhost:8000/v1",
            "http://LOCALHOST/v1",
            "http://127.0.0.1:11434/v1",
            "http://127.1.2.3/v1",
            "http://[::1]:8000/v1",
            "http://user@localhost:8000/v1",
        ] {
            assert_eq!(plain_http_key_warning(quiet), None, "{quiet}");
        }
        for loud in [
            "http://10.0.0.5:8000/v1",
            "http://gpu-box:8000/v1",
            "http://0.0.0.0:8000/v1",
            "http://[2001:db8::1]:8000/v1",
            "http://localhost.example.com/v1",
        ] {
            let warning = plain_http_key_warning(loud).unwrap_or_default();
            assert!(warning.contains("unencrypted"), "{loud}: {warning}");
        }
    }

    #[test]
    fn errors_map_to_loss_causes() {
        let refused = |status| LmmClientError::Refused {
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert_eq!(refused(404).loss_cause(), LossCause::NotFound);
        assert_eq!(refused(400).loss_cause(), LossCause::Refused);
        let unauthorized = LmmClientError::Unauthorized {
            url: "u".into(),
            status: 401,
            body: String::new(),
        };
        assert_eq!(unauthorized.loss_cause(), LossCause::Unauthorized);
        let gave_up = LmmClientError::GaveUp {
            url: "u".into(),
            attempts: 3,
            last: "connection refused".into(),
            cause: LossCause::Unreachable,
        };
        assert_eq!(gave_up.loss_cause(), LossCause::Unreachable);
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt("a\n  b"), "a b");
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), 303);
    }
}

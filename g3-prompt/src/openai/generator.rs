//! The generator itself: settings checked once, the parts of a request put together
//! (transport, pace, concurrency limit, answer cache), and each prompt's samples obtained
//! from the cache or the server.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicBool, Ordering};

use g3_core::{
    GeneratedAnswers, GeneratorDescription, ImageInput, LmmGenerator, LmmUsage, LossCause,
    LostAnswers, PromptRequest, StageKind,
};

use super::config::OpenAiConfig;
use super::error::LmmClientError;
use super::image::PreparedImage;
use super::schedule::{LmmJob, LmmJobOutcome, PromptFailure, PromptResult, run_batch};
use super::transport::{Transport, plain_http_key_warning};
use super::usage::UsageCounters;
use crate::cache::ResponseCache;
use crate::layers::{ConcurrencyLimit, Pace, SampleSlots};

/// The OpenAI-compatible generator. Share one per run (it is `Sync`): the concurrency
/// limit, the pace and the usage counters are per generator.
///
/// It is built from the same parts as the generic layers ([`crate::CachedGenerator`],
/// [`crate::PacedGenerator`], [`crate::ConcurrencyLimitedGenerator`],
/// [`crate::RetryingGenerator`]), applied per HTTP request rather than per call: every
/// request, retries included, waits for the pace and a place under the limit, and the
/// cache sees each sample as soon as its request returns.
#[derive(Debug)]
pub struct OpenAiGenerator {
    pub(super) config: OpenAiConfig,
    pub(super) transport: Transport,
    pub(super) in_flight: ConcurrencyLimit,
    pub(super) pace: Option<Pace>,
    cache: Option<ResponseCache>,
    /// Set once a server returned fewer choices than `n`.
    server_ignores_n: AtomicBool,
    pub(super) counters: UsageCounters,
}

impl OpenAiGenerator {
    /// A generator for `config`, reading the API key from the configured variable.
    pub fn new(config: OpenAiConfig) -> Result<Self, LmmClientError> {
        let api_key = match &config.api_key_env {
            None => None,
            Some(variable) => match std::env::var(variable) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
                _ => {
                    return Err(LmmClientError::MissingApiKey {
                        variable: variable.clone(),
                    });
                }
            },
        };
        Self::with_api_key(config, api_key)
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
        let max_concurrency = NonZeroUsize::new(config.max_concurrency)
            .ok_or_else(|| invalid("max_concurrency", "must be at least 1"))?;
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
                Some(Pace::per_minute(NonZeroU32::new(rpm).ok_or_else(|| {
                    invalid("requests_per_minute", "must be at least 1")
                })?))
            }
        };
        Ok(OpenAiGenerator {
            transport: Transport::new(&config, api_key),
            in_flight: ConcurrencyLimit::new(max_concurrency),
            pace,
            cache: None,
            server_ignores_n: AtomicBool::new(!config.samples_in_one_request),
            counters: UsageCounters::default(),
            config,
        })
    }

    /// Answers are looked up in, and saved to, `cache`: completed answers are never
    /// requested again, so a killed run resumes where it stopped. Answers are keyed by the
    /// configured model name, as [`crate::CachedGenerator::with_model`] keys them.
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
        self.transport.endpoint()
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
        let batch = run_batch(
            jobs,
            self.config.max_concurrency,
            on_prompt_done,
            |image, prompt, stopped| self.run_prompt(image, prompt, stopped),
        );
        let mut fatal = batch.fatal;
        if let Some(cache) = &self.cache
            && let Err(error) = cache.flush()
        {
            fatal.get_or_insert(error.into());
        }
        UsageCounters::add(&self.counters.samples_missing, batch.samples_missing);
        (batch.outcomes, fatal)
    }

    /// All samples of one prompt: from the cache where possible, the rest from the server.
    fn run_prompt(
        &self,
        image: &PreparedImage<'_>,
        prompt: &PromptRequest,
        stopped: &AtomicBool,
    ) -> Result<PromptResult, LmmClientError> {
        let mut slots = match &self.cache {
            Some(cache) => SampleSlots::cached(prompt, cache, &self.config.model, &image.sha256)?,
            None => SampleSlots::new(prompt),
        };
        UsageCounters::add(
            &self.counters.samples_from_cache,
            u64::from(slots.answered()),
        );

        let mut failure = None;
        loop {
            let missing = slots.missing();
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
                        slots.fill(sample_index, choice)?;
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
        Ok(PromptResult {
            answers: slots.into_answers(),
            failure,
        })
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
        let outcome = outcomes.pop().unwrap_or_else(LmmJobOutcome::empty);
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
            self.config.model,
            self.transport.endpoint()
        ))
    }

    fn usage(&self) -> Option<LmmUsage> {
        Some(OpenAiGenerator::usage(self))
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
}

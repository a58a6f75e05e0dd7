//! What an [`LmmGenerator`](crate::LmmGenerator) reports besides its answers: the answers it
//! could not obtain and why, what it is, and what it spent.
//!
//! A generator separates two kinds of missing answers. An answer that arrived but says
//! nothing usable is data: the pipeline's parser rejects it and the prediction keeps it. An
//! answer that never arrived (the server was down, refused the key, gave up after its
//! retries) is *lost*: the pipeline must not pass a pool built without it off as G3's
//! output, so generators report every lost sample with a [`LossCause`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One sampled answer of an LMM to one prompt, as raw text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LmmAnswer {
    /// The [`PromptRequest::prompt_index`] this answers.
    pub prompt_index: usize,
    /// Which of that prompt's samples this is, from 0.
    pub sample_index: u32,
    /// The model's text.
    pub text: String,
}

/// Why a generator could not obtain some answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LossCause {
    /// The server could not be reached: connection refused, unknown host, no route.
    Unreachable,
    /// The server refused the credentials (HTTP 401 or 403): a missing, wrong or expired key.
    Unauthorized,
    /// The server does not know the endpoint or the model (HTTP 404).
    NotFound,
    /// The account's quota or credit is used up (HTTP 429 with `insufficient_quota`).
    QuotaExhausted,
    /// The server refused the request in a way retrying cannot fix (another 4xx).
    Refused,
    /// Temporary failures (rate limits, server errors, timeouts, malformed responses)
    /// outlasted the retries.
    RetriesExhausted,
    /// The server answered with fewer samples than asked and could not be asked again.
    ShortResponse,
    /// The generator was stopped before the answers came.
    Stopped,
    /// Anything else a generator reports.
    Other,
}

impl LossCause {
    /// Whether every later request would fail the same way until someone changes a setting
    /// or the server (unreachable, refused credentials, unknown model, no quota). A run that
    /// meets such a cause photo after photo stops instead of trying every photo.
    pub fn is_persistent(self) -> bool {
        matches!(
            self,
            LossCause::Unreachable
                | LossCause::Unauthorized
                | LossCause::NotFound
                | LossCause::QuotaExhausted
        )
    }

    /// A short description for reports ("the server is unreachable").
    pub fn describe(self) -> &'static str {
        match self {
            LossCause::Unreachable => "the LMM server is unreachable",
            LossCause::Unauthorized => "the LMM server refused the API key",
            LossCause::NotFound => "the LMM server does not know the endpoint or model",
            LossCause::QuotaExhausted => "the LMM account's quota is used up",
            LossCause::Refused => "the LMM server refused the request",
            LossCause::RetriesExhausted => "the LMM server kept failing after every retry",
            LossCause::ShortResponse => "the LMM server returned fewer answers than asked",
            LossCause::Stopped => "the generator was stopped",
            LossCause::Other => "the generator failed",
        }
    }

    /// The cause's name as in configuration and JSON files (`retries-exhausted`).
    pub fn name(self) -> &'static str {
        match self {
            LossCause::Unreachable => "unreachable",
            LossCause::Unauthorized => "unauthorized",
            LossCause::NotFound => "not-found",
            LossCause::QuotaExhausted => "quota-exhausted",
            LossCause::Refused => "refused",
            LossCause::RetriesExhausted => "retries-exhausted",
            LossCause::ShortResponse => "short-response",
            LossCause::Stopped => "stopped",
            LossCause::Other => "other",
        }
    }
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Samples of one prompt that a generator could not obtain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostAnswers {
    /// The [`PromptRequest::prompt_index`](crate::PromptRequest::prompt_index).
    pub prompt_index: usize,
    /// How many of the prompt's samples are missing.
    pub samples: u32,
    /// Why, as a category.
    pub cause: LossCause,
    /// Why, in the generator's words (the endpoint and the server's message).
    pub message: String,
}

/// What a generator produced for one image: the answers it obtained and the samples it lost.
///
/// Samples that are neither answered nor lost were declined: the generator had nothing to
/// say (the offline generator on a prompt without references). They are not failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedAnswers {
    /// The answers obtained, ordered by prompt then sample.
    pub answers: Vec<LmmAnswer>,
    /// The samples that could not be obtained, per prompt.
    pub lost: Vec<LostAnswers>,
}

impl GeneratedAnswers {
    /// How many samples were lost, over every prompt.
    pub fn lost_samples(&self) -> u64 {
        self.lost.iter().map(|lost| u64::from(lost.samples)).sum()
    }
}

impl From<Vec<LmmAnswer>> for GeneratedAnswers {
    /// Answers with nothing lost: what a generator that cannot fail returns.
    fn from(answers: Vec<LmmAnswer>) -> Self {
        GeneratedAnswers {
            answers,
            lost: Vec::new(),
        }
    }
}

/// What a generator is, for the user: whether a model answered matters for every number
/// that comes out of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorDescription {
    /// A short name (`openai-compatible gpt-4o at https://.../chat/completions`).
    pub name: String,
    /// Whether a large multimodal model is asked. False for stand-ins that answer without
    /// looking at the photo, whose results are not G3's.
    pub asks_model: bool,
    /// What a user should know about the answers, when they are not a model's.
    pub notice: Option<String>,
}

impl GeneratorDescription {
    /// A generator that asks a model called `name`.
    pub fn model(name: impl Into<String>) -> Self {
        GeneratorDescription {
            name: name.into(),
            asks_model: true,
            notice: None,
        }
    }
}

/// Requests sent again after a failure, by what failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryCounts {
    /// HTTP 429 (rate limited).
    pub rate_limited: u64,
    /// HTTP 5xx and other temporary statuses (408, 409, 425).
    pub server_error: u64,
    /// The request ran past its time limit.
    pub timeout: u64,
    /// The connection failed or dropped (refused, reset, unknown host).
    pub connection: u64,
    /// A 200 response without readable choices (truncated, garbled or empty).
    pub malformed_response: u64,
}

impl RetryCounts {
    /// Every retry, whatever its cause.
    pub fn total(&self) -> u64 {
        self.rate_limited
            + self.server_error
            + self.timeout
            + self.connection
            + self.malformed_response
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RetryCounts) {
        self.rate_limited += other.rate_limited;
        self.server_error += other.server_error;
        self.timeout += other.timeout;
        self.connection += other.connection;
        self.malformed_response += other.malformed_response;
    }
}

/// What a generator that talks to a server sent, received and cost, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LmmUsage {
    /// HTTP requests sent, retries included.
    pub requests_sent: u64,
    /// Of those, the ones sent again after a failure, by cause.
    pub retries: RetryCounts,
    /// Requests given up on after the last retry, or refused outright.
    pub failed_requests: u64,
    /// Sampled answers received from the server.
    pub samples_received: u64,
    /// Sampled answers served from a response cache (no request, no cost).
    pub samples_from_cache: u64,
    /// Samples asked for but not obtained.
    pub samples_missing: u64,
    /// Prompt tokens billed, as the server reported them.
    pub prompt_tokens: u64,
    /// Completion tokens billed.
    pub completion_tokens: u64,
    /// Cost at the configured prices; `None` when no price was set.
    pub cost: Option<f64>,
}

impl LmmUsage {
    /// Adds `other`'s counts to these (costs add when either has one).
    pub fn add(&mut self, other: &LmmUsage) {
        self.requests_sent += other.requests_sent;
        self.retries.add(&other.retries);
        self.failed_requests += other.failed_requests;
        self.samples_received += other.samples_received;
        self.samples_from_cache += other.samples_from_cache;
        self.samples_missing += other.samples_missing;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost = match (self.cost, other.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }

    /// The retries as `name: count` pairs, leaving out causes that never happened.
    pub fn retries_by_cause(&self) -> BTreeMap<&'static str, u64> {
        let retries = &self.retries;
        [
            ("rate limited", retries.rate_limited),
            ("server error", retries.server_error),
            ("timeout", retries.timeout),
            ("connection", retries.connection),
            ("malformed response", retries.malformed_response),
        ]
        .into_iter()
        .filter(|&(_, count)| count > 0)
        .collect()
    }
}

impl fmt::Display for LmmUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retries: Vec<String> = self
            .retries_by_cause()
            .into_iter()
            .map(|(cause, count)| format!("{count} {cause}"))
            .collect();
        write!(
            f,
            "requests: {} sent, {} retries",
            self.requests_sent,
            self.retries.total()
        )?;
        if !retries.is_empty() {
            write!(f, " ({})", retries.join(", "))?;
        }
        writeln!(f, ", {} failed", self.failed_requests)?;
        writeln!(
            f,
            "samples:  {} received, {} from cache, {} missing",
            self.samples_received, self.samples_from_cache, self.samples_missing
        )?;
        write!(
            f,
            "tokens:   {} prompt + {} completion",
            self.prompt_tokens, self.completion_tokens
        )?;
        match self.cost {
            Some(cost) => write!(f, "\ncost:     {cost:.4}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_counts_and_costs() {
        let mut total = LmmUsage {
            requests_sent: 3,
            retries: RetryCounts {
                rate_limited: 1,
                ..RetryCounts::default()
            },
            prompt_tokens: 100,
            ..LmmUsage::default()
        };
        total.add(&LmmUsage {
            requests_sent: 2,
            retries: RetryCounts {
                rate_limited: 1,
                timeout: 2,
                ..RetryCounts::default()
            },
            cost: Some(0.5),
            ..LmmUsage::default()
        });
        assert_eq!(total.requests_sent, 5);
        assert_eq!(total.retries.total(), 4);
        assert_eq!(total.cost, Some(0.5));
        let text = total.to_string();
        assert!(
            text.contains("5 sent, 4 retries (2 rate limited, 2 timeout)"),
            "{text}"
        );
        assert!(text.contains("cost:     0.5000"), "{text}");
        assert!(!LmmUsage::default().to_string().contains("cost"));
    }

    #[test]
    fn only_causes_that_no_retry_can_fix_are_persistent() {
        assert!(LossCause::Unreachable.is_persistent());
        assert!(LossCause::Unauthorized.is_persistent());
        assert!(LossCause::NotFound.is_persistent());
        assert!(LossCause::QuotaExhausted.is_persistent());
        assert!(!LossCause::RetriesExhausted.is_persistent());
        assert!(!LossCause::ShortResponse.is_persistent());
        let json = serde_json::to_string(&LossCause::RetriesExhausted).unwrap();
        assert_eq!(json, format!("\"{}\"", LossCause::RetriesExhausted.name()));
    }
}

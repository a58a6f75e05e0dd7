//! What a run sent, received and cost ([`LmmUsage`], shared with every generator through
//! [`g3_core::LmmGenerator::usage`]).

use std::sync::atomic::{AtomicU64, Ordering};

use g3_core::{LmmUsage, RetryCounts};
use serde::{Deserialize, Serialize};

/// Prices per million tokens, in whatever currency the user bills in. Zero (the default)
/// means "not configured": the report then shows tokens without a cost.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenPrices {
    /// Price of one million prompt (input) tokens; images count as input tokens.
    pub input_per_million: f64,
    /// Price of one million completion (output) tokens.
    pub output_per_million: f64,
}

impl TokenPrices {
    /// Whether any price was set.
    pub fn is_configured(&self) -> bool {
        self.input_per_million != 0.0 || self.output_per_million != 0.0
    }

    /// The cost of the given token counts.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_million
            + completion_tokens as f64 * self.output_per_million)
            / 1e6
    }
}

/// What a retried attempt failed with, for the usage report's retries by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryCause {
    RateLimited,
    ServerError,
    Timeout,
    Connection,
    MalformedResponse,
}

/// Counters shared by every request of a generator.
#[derive(Debug, Default)]
pub(crate) struct UsageCounters {
    pub requests_sent: AtomicU64,
    pub retries_rate_limited: AtomicU64,
    pub retries_server_error: AtomicU64,
    pub retries_timeout: AtomicU64,
    pub retries_connection: AtomicU64,
    pub retries_malformed_response: AtomicU64,
    pub failed_requests: AtomicU64,
    pub samples_received: AtomicU64,
    pub samples_from_cache: AtomicU64,
    pub samples_missing: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

impl UsageCounters {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    /// Counts one request sent again after a failure of kind `cause`.
    pub fn count_retry(&self, cause: RetryCause) {
        let counter = match cause {
            RetryCause::RateLimited => &self.retries_rate_limited,
            RetryCause::ServerError => &self.retries_server_error,
            RetryCause::Timeout => &self.retries_timeout,
            RetryCause::Connection => &self.retries_connection,
            RetryCause::MalformedResponse => &self.retries_malformed_response,
        };
        Self::add(counter, 1);
    }

    pub fn report(&self, prices: TokenPrices) -> LmmUsage {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let prompt_tokens = load(&self.prompt_tokens);
        let completion_tokens = load(&self.completion_tokens);
        LmmUsage {
            requests_sent: load(&self.requests_sent),
            retries: RetryCounts {
                rate_limited: load(&self.retries_rate_limited),
                server_error: load(&self.retries_server_error),
                timeout: load(&self.retries_timeout),
                connection: load(&self.retries_connection),
                malformed_response: load(&self.retries_malformed_response),
            },
            failed_requests: load(&self.failed_requests),
            samples_received: load(&self.samples_received),
            samples_from_cache: load(&self.samples_from_cache),
            samples_missing: load(&self.samples_missing),
            prompt_tokens,
            completion_tokens,
            cost: prices
                .is_configured()
                .then(|| prices.cost(prompt_tokens, completion_tokens)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_million_tokens() {
        let prices = TokenPrices {
            input_per_million: 2.5,
            output_per_million: 10.0,
        };
        assert!((prices.cost(1_000_000, 100_000) - 3.5).abs() < 1e-12);
        assert!(!TokenPrices::default().is_configured());
    }

    #[test]
    fn the_report_shows_cost_only_when_priced() {
        let counters = UsageCounters::default();
        UsageCounters::add(&counters.requests_sent, 3);
        UsageCounters::add(&counters.prompt_tokens, 2_000_000);
        counters.count_retry(RetryCause::RateLimited);
        counters.count_retry(RetryCause::Timeout);
        counters.count_retry(RetryCause::Timeout);
        let unpriced = counters.report(TokenPrices::default());
        assert_eq!(unpriced.cost, None);
        assert_eq!(unpriced.retries.timeout, 2);
        assert_eq!(unpriced.retries.total(), 3);
        assert!(!unpriced.to_string().contains("cost"));
        let priced = counters.report(TokenPrices {
            input_per_million: 1.0,
            output_per_million: 0.0,
        });
        assert_eq!(priced.cost, Some(2.0));
        assert!(priced.to_string().contains("cost:     2.0000"), "{priced}");
    }
}

//! What a run sent, received and cost.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Counters shared by every request of a generator.
#[derive(Debug, Default)]
pub(crate) struct UsageCounters {
    pub requests_sent: AtomicU64,
    pub retries: AtomicU64,
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

    pub fn report(&self, prices: TokenPrices) -> UsageReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let prompt_tokens = load(&self.prompt_tokens);
        let completion_tokens = load(&self.completion_tokens);
        UsageReport {
            requests_sent: load(&self.requests_sent),
            retries: load(&self.retries),
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

/// Totals since a generator was made, for the end-of-run summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// HTTP requests sent, retries included.
    pub requests_sent: u64,
    /// Of those, the ones sent again after a failure.
    pub retries: u64,
    /// Requests given up on after the last retry, or refused outright.
    pub failed_requests: u64,
    /// Sampled answers received from the server.
    pub samples_received: u64,
    /// Sampled answers served from the response cache (no request, no cost).
    pub samples_from_cache: u64,
    /// Samples asked for but not obtained.
    pub samples_missing: u64,
    /// Prompt tokens billed, as the server reported them.
    pub prompt_tokens: u64,
    /// Completion tokens billed.
    pub completion_tokens: u64,
    /// Cost at the configured [`TokenPrices`]; `None` when no price was set.
    pub cost: Option<f64>,
}

impl fmt::Display for UsageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests: {} sent ({} retries, {} failed)",
            self.requests_sent, self.retries, self.failed_requests
        )?;
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
        let unpriced = counters.report(TokenPrices::default());
        assert_eq!(unpriced.cost, None);
        assert!(!unpriced.to_string().contains("cost"));
        let priced = counters.report(TokenPrices {
            input_per_million: 1.0,
            output_per_million: 0.0,
        });
        assert_eq!(priced.cost, Some(2.0));
        assert!(priced.to_string().contains("cost:     2.0000"), "{priced}");
    }
}

//! When to try a failed operation again, and how long to wait first: one back-off policy
//! for every client in g3 that talks to a server (the LMM client in `g3-prompt`, the hub
//! client in `g3-hub`, and `g3-prompt`'s retry layer around any generator).
//!
//! The policy knows nothing about errors: the caller decides which failures are worth
//! another attempt and passes a server's requested wait (`Retry-After`) when there is one.
//! [`RetryPolicy::backoff`] then says, failure after failure, how long to wait or that the
//! retries are used up.
//!
//! ```
//! use std::time::Duration;
//! use g3_core::retry::{Jitter, RetryPolicy};
//!
//! let policy = RetryPolicy {
//!     max_retries: 2,
//!     initial_backoff_ms: 100,
//!     jitter: Jitter::None,
//!     ..RetryPolicy::default()
//! };
//! let mut backoff = policy.backoff();
//! assert_eq!(backoff.next_delay(None), Some(Duration::from_millis(100)));
//! // A server's own wait wins over the computed one.
//! assert_eq!(backoff.next_delay(Some(Duration::from_secs(1))), Some(Duration::from_secs(1)));
//! assert_eq!(backoff.next_delay(None), None); // two retries, then give up
//! assert_eq!(backoff.attempts(), 3);
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much of each computed wait is random.
///
/// Clients that failed together (a server restart) and wait the same time retry together
/// and fail together again; a random part spreads them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    /// The computed wait exactly: for a single client that is alone on its server (a file
    /// download), where predictable waits are worth more than spreading.
    None,
    /// A random wait in `[d/2, d]` ("equal jitter"): the random half spreads out clients
    /// that failed together, the fixed half keeps the wait growing.
    #[default]
    Equal,
}

/// Exponential backoff with jitter, and how many times to retry.
///
/// Retry `k` (from 0) waits `d = min(max_backoff, initial_backoff · 2^k)`, made random by
/// [`jitter`](Self::jitter). A server's `Retry-After` (or OpenAI's `retry-after-ms`)
/// replaces the computed wait, cut to [`max_retry_after_ms`](Self::max_retry_after_ms).
/// The defaults suit a paid API under rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 6).
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds (default 500).
    pub initial_backoff_ms: u64,
    /// Longest computed wait, in milliseconds (default 30,000).
    pub max_backoff_ms: u64,
    /// Longest wait a server's `Retry-After` may impose, in milliseconds (default 120,000);
    /// longer requests are cut to this.
    pub max_retry_after_ms: u64,
    /// The random part of computed waits (default [`Jitter::Equal`]).
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_retry_after_ms: 120_000,
            jitter: Jitter::Equal,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry + 1`, honouring the server's wish when it gave
    /// one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(Duration::from_millis(self.max_retry_after_ms));
        }
        let ceiling = self
            .initial_backoff_ms
            .saturating_mul(1u64 << retry.min(32))
            .min(self.max_backoff_ms);
        let millis = match self.jitter {
            Jitter::None => ceiling,
            Jitter::Equal => {
                let half = ceiling / 2;
                half + fastrand::u64(0..=ceiling - half)
            }
        };
        Duration::from_millis(millis)
    }

    /// The back-off state of one operation, before its first attempt.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            retries: 0,
        }
    }
}

/// The retries one operation has used, under a [`RetryPolicy`].
///
/// Call [`next_delay`](Self::next_delay) after each failure the caller judged worth
/// retrying: it returns the wait before the next attempt, or `None` once the policy's
/// retries are used up.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    retries: u32,
}

impl Backoff {
    /// The wait before the next attempt (the server's `retry_after` when it gave one, cut
    /// to the policy's limit), counting that retry; `None` when no retry is left.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.retries >= self.policy.max_retries {
            return None;
        }
        let wait = self.policy.delay(self.retries, retry_after);
        self.retries += 1;
        Some(wait)
    }

    /// Retries granted so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Attempts made so far, counting the one that just failed: the first attempt and
    /// every retry granted.
    pub fn attempts(&self) -> u32 {
        self.retries + 1
    }

    /// The policy this back-off follows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_jitter_band_up_to_the_cap() {
        let policy = RetryPolicy {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..RetryPolicy::default()
        };
        for _ in 0..200 {
            for (retry, ceiling) in [
                (0, 100),
                (1, 200),
                (2, 400),
                (3, 800),
                (4, 1000),
                (40, 1000),
            ] {
                let wait = policy.delay(retry, None).as_millis() as u64;
                assert!(
                    (ceiling / 2..=ceiling).contains(&wait),
                    "retry {retry}: {wait}"
                );
            }
        }
    }

    #[test]
    fn without_jitter_the_wait_is_the_ceiling() {
        let policy = RetryPolicy {
            initial_backoff_ms: 500,
            max_backoff_ms: 8000,
            jitter: Jitter::None,
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (0..7)
            .map(|retry| policy.delay(retry, None).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn the_server_wait_wins_but_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn a_backoff_grants_exactly_the_policy_s_retries() {
        let policy = RetryPolicy {
            max_retries: 3,
            initial_backoff_ms: 1,
            ..RetryPolicy::default()
        };
        let mut backoff = policy.backoff();
        assert_eq!(backoff.attempts(), 1);
        for granted in 1..=3 {
            assert!(backoff.next_delay(None).is_some());
            assert_eq!(backoff.retries(), granted);
        }
        assert_eq!(backoff.next_delay(None), None);
        assert_eq!(backoff.next_delay(None), None);
        assert_eq!((backoff.retries(), backoff.attempts()), (3, 4));
        let mut never = RetryPolicy {
            max_retries: 0,
            ..policy
        }
        .backoff();
        assert_eq!(never.next_delay(None), None);
        assert_eq!(never.attempts(), 1);
    }

    #[test]
    fn a_policy_without_jitter_reads_from_config_files() {
        let policy: RetryPolicy =
            serde_json::from_str(r#"{"max_retries": 2, "jitter": "none"}"#).unwrap();
        assert_eq!(policy.max_retries, 2);
        assert_eq!(policy.jitter, Jitter::None);
        assert_eq!(policy.initial_backoff_ms, 500);
        let default: RetryPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(default, RetryPolicy::default());
    }
}

//! When to try a request again, and how long to wait first.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Exponential backoff with jitter, and how many times to retry.
///
/// Attempt `k` (from 0) waits a random time in `[d/2, d]` with
/// `d = min(max_backoff, initial_backoff · 2^k)` ("equal jitter"): the random half spreads
/// out clients that failed together, the fixed half keeps the wait growing. A server's
/// `Retry-After` (or OpenAI's `retry-after-ms`) replaces the computed wait.
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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_retry_after_ms: 120_000,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt + 1`, honouring the server's wish when it gave one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(Duration::from_millis(self.max_retry_after_ms));
        }
        let ceiling = self
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(self.max_backoff_ms);
        let half = ceiling / 2;
        Duration::from_millis(half + fastrand::u64(0..=ceiling - half))
    }
}

/// The wait a response asks for: `retry-after-ms` (OpenAI, milliseconds), else `Retry-After`
/// in seconds or as an HTTP date. Unreadable values are ignored.
pub(crate) fn retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(milliseconds) = retry_after_ms.and_then(|value| value.trim().parse::<f64>().ok())
        && milliseconds.is_finite()
        && milliseconds >= 0.0
    {
        return Some(Duration::from_secs_f64(milliseconds / 1000.0));
    }
    let value = retry_after?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
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
            for (attempt, ceiling) in [
                (0, 100),
                (1, 200),
                (2, 400),
                (3, 800),
                (4, 1000),
                (40, 1000),
            ] {
                let wait = policy.delay(attempt, None).as_millis() as u64;
                assert!(
                    (ceiling / 2..=ceiling).contains(&wait),
                    "attempt {attempt}: {wait}"
                );
            }
        }
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
    fn retry_after_headers_are_read_in_every_form() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 18:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(Some("250"), Some("9"), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(None, Some("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(None, Some("1.5"), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(None, Some("Wed, 25 Nov 2026 18:00:07 GMT"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(None, Some("Wed, 25 Nov 2026 17:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("soon"), Some("later"), now), None);
        assert_eq!(retry_after(None, Some("-3"), now), None);
        assert_eq!(retry_after(None, None, now), None);
    }
}

//! One HTTP exchange with the server: the request body, the `POST` with its headers, and
//! the reading of the answer into choices or a classified failure ([`Attempt`]). Retries,
//! pacing and concurrency are the caller's (`request.rs`); this module only says which
//! failures are worth another attempt and how long the server asked to wait.

use std::time::{Duration, SystemTime};

use g3_core::ImageDetail;

use super::config::OpenAiConfig;
use super::error::LmmClientError;
use super::usage::{RetryCause, UsageCounters};
use super::wire::{ChatRequest, ChatResponse};
use crate::cache::CachedAnswer;

/// An API key read from the environment. Its `Debug` shows no key.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The endpoint, the key and the HTTP agent with the configured timeouts.
#[derive(Debug)]
pub(super) struct Transport {
    endpoint: String,
    api_key: Option<ApiKey>,
    agent: ureq::Agent,
}

/// The body of one chat completion asking for `n` choices.
pub(super) fn chat_body(
    model: &str,
    prompt: &str,
    image_data_url: &str,
    image_detail: ImageDetail,
    max_tokens: u32,
    temperature: f32,
    n: u32,
) -> String {
    serde_json::to_string(&ChatRequest::new(
        model,
        prompt,
        image_data_url,
        image_detail,
        max_tokens,
        temperature,
        n,
    ))
    .expect("a chat request always serialises")
}

impl Transport {
    /// A transport to `{base_url}/chat/completions` (the config is already validated).
    pub(super) fn new(config: &OpenAiConfig, api_key: Option<String>) -> Self {
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // The system's trusted roots (with a proxy's CA where one is installed), not a
            // bundled list that a TLS-inspecting proxy fails.
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .timeout_global(Some(Duration::from_secs_f64(config.request_timeout_secs)))
            .timeout_connect(Some(Duration::from_secs_f64(config.connect_timeout_secs)))
            .max_idle_connections(config.max_concurrency.max(16))
            .max_idle_connections_per_host(config.max_concurrency)
            .build();
        Transport {
            endpoint: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            api_key: api_key.map(ApiKey),
            agent: ureq::Agent::new_with_config(agent_config),
        }
    }

    /// The `{base_url}/chat/completions` URL requests go to.
    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one request and reads its answer; the tokens the server billed are added to
    /// `counters`, even for an answer that is then refused as malformed.
    pub(super) fn send(
        &self,
        body: &str,
        n: u32,
        counters: &UsageCounters,
    ) -> Result<Vec<CachedAnswer>, Attempt> {
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
        let retry_after = retry_after(
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
            UsageCounters::add(&counters.prompt_tokens, usage.prompt_tokens);
            UsageCounters::add(&counters.completion_tokens, usage.completion_tokens);
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
}

/// The result of one attempt that did not produce choices.
pub(super) enum Attempt {
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

/// The wait a response asks for: `retry-after-ms` (OpenAI, milliseconds), else `Retry-After`
/// in seconds or as an HTTP date. Unreadable values are ignored.
fn retry_after(
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

/// The warning for an API key that would travel unencrypted: `base_url` is plain `http://`
/// and its host is not this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub(super) fn plain_http_key_warning(base_url: &str) -> Option<String> {
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
pub(super) fn excerpt(text: &str) -> String {
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
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt("a\n  b"), "a b");
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), 303);
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

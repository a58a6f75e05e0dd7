//! Why the OpenAI-compatible client failed, and which [`LossCause`] each failure stands for.

use g3_core::LossCause;

use crate::cache::CacheError;

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
    /// The account's quota or credit is used up (HTTP 429 `insufficient_quota`): retrying
    /// cannot help until someone adds credit.
    #[error("{url}: the account's quota is used up (HTTP 429): {body}")]
    QuotaExhausted {
        /// The endpoint.
        url: String,
        /// The start of the server's explanation.
        body: String,
    },
    /// The server refused this request in a way retrying cannot fix (400, 404, 413...); a
    /// 404 usually means a wrong `base_url` or `model`.
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
        /// [`LossCause::Unreachable`] when the last attempt could not connect,
        /// [`LossCause::Stopped`] when the run was stopped, else
        /// [`LossCause::RetriesExhausted`].
        cause: LossCause,
    },
    /// The response cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl LmmClientError {
    /// The category of lost answers this error stands for.
    pub fn loss_cause(&self) -> LossCause {
        match self {
            LmmClientError::Unauthorized { .. } => LossCause::Unauthorized,
            LmmClientError::QuotaExhausted { .. } => LossCause::QuotaExhausted,
            LmmClientError::Refused { status: 404, .. } => LossCause::NotFound,
            LmmClientError::Refused { status: 0, .. } => LossCause::Unreachable,
            LmmClientError::Refused { .. } => LossCause::Refused,
            LmmClientError::GaveUp { cause, .. } => *cause,
            LmmClientError::MissingApiKey { .. }
            | LmmClientError::InvalidConfig { .. }
            | LmmClientError::Cache(_) => LossCause::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

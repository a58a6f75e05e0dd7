//! One chat completion, as the run asks for it: paced, under the concurrency limit, retried
//! on temporary failures as the shared [`RetryPolicy`](g3_core::retry::RetryPolicy) says
//! (a server's `Retry-After` wins), and counted in the usage report.

use std::sync::atomic::{AtomicBool, Ordering};

use g3_core::{LossCause, PromptRequest};

use super::error::LmmClientError;
use super::generator::OpenAiGenerator;
use super::image::PreparedImage;
use super::transport::{Attempt, chat_body};
use super::usage::{RetryCause, UsageCounters};
use crate::cache::CachedAnswer;

impl OpenAiGenerator {
    /// One chat completion with `n` choices, retried on temporary failures. Returns at most
    /// `n` choices, and at least one. Refused credentials set `stopped`, so that the other
    /// workers send nothing more; a set `stopped` ends the retries.
    pub(super) fn request_with_retries(
        &self,
        image: &PreparedImage<'_>,
        prompt: &PromptRequest,
        n: u32,
        stopped: &AtomicBool,
    ) -> Result<Vec<CachedAnswer>, LmmClientError> {
        let body = chat_body(
            &self.config.model,
            &prompt.text,
            image.data_url(),
            prompt.image_detail,
            prompt.max_tokens,
            prompt.temperature,
            n,
        );
        let mut backoff = self.config.retry.backoff();
        // What the previous attempt failed with, when this one is a retry.
        let mut retrying: Option<RetryCause> = None;
        loop {
            if stopped.load(Ordering::Relaxed) {
                return Err(LmmClientError::GaveUp {
                    url: self.transport.endpoint().to_owned(),
                    attempts: backoff.retries(),
                    last: "the run was stopped".into(),
                    cause: LossCause::Stopped,
                });
            }
            if let Some(pace) = &self.pace {
                pace.wait();
            }
            let outcome = {
                let _permit = self.in_flight.acquire();
                UsageCounters::add(&self.counters.requests_sent, 1);
                if let Some(cause) = retrying {
                    self.counters.count_retry(cause);
                }
                self.transport.send(&body, n, &self.counters)
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
                    let attempt = backoff.retries();
                    let Some(wait) = backoff.next_delay(retry_after) else {
                        UsageCounters::add(&self.counters.failed_requests, 1);
                        return Err(LmmClientError::GaveUp {
                            url: self.transport.endpoint().to_owned(),
                            attempts: backoff.attempts(),
                            last: message,
                            cause: if unreachable {
                                LossCause::Unreachable
                            } else {
                                LossCause::RetriesExhausted
                            },
                        });
                    };
                    tracing::debug!(attempt, ?wait, %message, "retrying");
                    std::thread::sleep(wait);
                    retrying = Some(cause);
                }
            }
        }
    }
}

//! Retries as a layer: lost samples asked for again, for generators that do not retry on
//! their own (a local model server that drops requests while it loads).

use g3_core::retry::RetryPolicy;
use g3_core::{
    GeneratedAnswers, GeneratorDescription, ImageInput, LmmGenerator, LmmUsage, LossCause,
    LostAnswers, PromptRequest,
};

use super::slots::{SampleSlots, ask_for, generated};
use crate::cache::CachedAnswer;

/// Which lost samples are worth asking for again.
type Retryable = Box<dyn Fn(&LostAnswers) -> bool + Send + Sync>;

/// `inner`, with the samples it reports lost for a temporary cause asked for again, with
/// waits between rounds as the shared [`RetryPolicy`] says (`Retry-After` does not exist at
/// this level: the policy's own back-off is used).
///
/// Each round asks `inner` only for the retryable lost samples, and files its answers under
/// the sample indices they replace. Samples still lost after the last round are reported
/// with the last round's cause. `Err` from `inner` is passed on at once: the trait keeps it
/// for failures that are not about the answers, which no retry fixes.
pub struct RetryingGenerator<G> {
    inner: G,
    policy: RetryPolicy,
    retryable: Retryable,
}

impl<G: std::fmt::Debug> std::fmt::Debug for RetryingGenerator<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryingGenerator")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<G> RetryingGenerator<G> {
    /// `inner` with retries under `policy`, of samples lost because temporary failures
    /// outlasted `inner`'s own retries ([`LossCause::RetriesExhausted`]), because a response
    /// was short ([`LossCause::ShortResponse`]) or for a cause `inner` did not name
    /// ([`LossCause::Other`]). [`retry_if`](Self::retry_if) chooses otherwise.
    pub fn new(inner: G, policy: RetryPolicy) -> Self {
        RetryingGenerator {
            inner,
            policy,
            retryable: Box::new(|lost| {
                matches!(
                    lost.cause,
                    LossCause::RetriesExhausted | LossCause::ShortResponse | LossCause::Other
                )
            }),
        }
    }

    /// Retries exactly the lost samples `retryable` accepts.
    pub fn retry_if(
        mut self,
        retryable: impl Fn(&LostAnswers) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retryable = Box::new(retryable);
        self
    }

    /// The wrapped generator.
    pub fn inner(&self) -> &G {
        &self.inner
    }

    /// When to retry and how long to wait.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<G: LmmGenerator> LmmGenerator for RetryingGenerator<G> {
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let first = self.inner.generate(image, prompts)?;
        let mut slots: Vec<SampleSlots<'_>> = prompts.iter().map(SampleSlots::new).collect();
        for answer in first.answers {
            let Some(slots) = slots
                .iter_mut()
                .find(|slots| slots.prompt().prompt_index == answer.prompt_index)
            else {
                tracing::warn!(
                    prompt = answer.prompt_index,
                    "the generator answered a prompt it was not asked; ignored"
                );
                continue;
            };
            let sample_index = answer.sample_index;
            let answer = CachedAnswer {
                text: answer.text,
                finish_reason: None,
            };
            // No cache behind these slots: filling cannot fail.
            let _ = slots.fill(sample_index, answer);
        }
        let mut lost = first.lost;
        let mut backoff = self.policy.backoff();
        loop {
            let (retry, mut keep): (Vec<LostAnswers>, Vec<LostAnswers>) =
                lost.into_iter().partition(|lost| (self.retryable)(lost));
            if retry.is_empty() {
                lost = keep;
                break;
            }
            let Some(wait) = backoff.next_delay(None) else {
                keep.extend(retry);
                lost = keep;
                break;
            };
            tracing::debug!(
                retry = backoff.retries(),
                ?wait,
                samples = retry.iter().map(|lost| lost.samples).sum::<u32>(),
                "asking for lost samples again"
            );
            std::thread::sleep(wait);
            // The first missing samples of each prompt, as many as were lost: samples the
            // generator declined (neither answered nor lost) are not asked for.
            let wanted: Vec<Vec<u32>> = slots
                .iter()
                .map(|slots| {
                    let count: u32 = retry
                        .iter()
                        .filter(|lost| lost.prompt_index == slots.prompt().prompt_index)
                        .map(|lost| lost.samples)
                        .sum();
                    let mut missing = slots.missing();
                    missing.truncate(count as usize);
                    missing
                })
                .collect();
            keep.extend(ask_for(&self.inner, image, &mut slots, &wanted)?);
            lost = keep;
        }
        let position = |prompt_index| {
            prompts
                .iter()
                .position(|prompt| prompt.prompt_index == prompt_index)
        };
        lost.sort_by_key(|lost| position(lost.prompt_index));
        Ok(generated(slots, lost))
    }

    fn describe(&self) -> GeneratorDescription {
        self.inner.describe()
    }

    fn usage(&self) -> Option<LmmUsage> {
        self.inner.usage()
    }
}

//! A requests-per-minute pace, shared by every caller of one generator.

use std::num::NonZeroU32;

use g3_core::{
    GeneratedAnswers, GeneratorDescription, ImageInput, LmmGenerator, LmmUsage, PromptRequest,
};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// At most so many starts per minute, spread evenly (a burst of one): servers that limit
/// requests per minute count them over short windows, so a burst at the top of the minute
/// is refused even when the minute's total is within the limit.
#[derive(Debug)]
pub(crate) struct Pace {
    limiter: DefaultDirectRateLimiter,
}

impl Pace {
    /// A pace of `per_minute` starts a minute.
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(NonZeroU32::MIN);
        Pace {
            limiter: RateLimiter::direct(quota),
        }
    }

    /// Blocks until the next start is allowed, and takes it.
    pub(crate) fn wait(&self) {
        while let Err(not_until) = self.limiter.check() {
            std::thread::sleep(not_until.wait_time_from(self.limiter.clock().now()));
        }
    }
}

/// `inner` with its calls paced: at most so many [`generate`](LmmGenerator::generate)
/// calls start per minute, over every caller, spread evenly over the minute. A call waits
/// for its turn before it reaches `inner`.
#[derive(Debug)]
pub struct PacedGenerator<G> {
    inner: G,
    pace: Pace,
}

impl<G> PacedGenerator<G> {
    /// `inner`, started at most `calls_per_minute` times a minute.
    pub fn new(inner: G, calls_per_minute: NonZeroU32) -> Self {
        PacedGenerator {
            inner,
            pace: Pace::per_minute(calls_per_minute),
        }
    }

    /// The wrapped generator.
    pub fn inner(&self) -> &G {
        &self.inner
    }
}

impl<G: LmmGenerator> LmmGenerator for PacedGenerator<G> {
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        self.pace.wait();
        self.inner.generate(image, prompts)
    }

    fn describe(&self) -> GeneratorDescription {
        self.inner.describe()
    }

    fn usage(&self) -> Option<LmmUsage> {
        self.inner.usage()
    }
}

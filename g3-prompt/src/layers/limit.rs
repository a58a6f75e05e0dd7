//! A bound on calls in flight, shared by every caller of one generator.

use std::num::NonZeroUsize;
use std::sync::{Condvar, Mutex};

use g3_core::{
    GeneratedAnswers, GeneratorDescription, ImageInput, LmmGenerator, LmmUsage, PromptRequest,
};

/// A counting semaphore: at most so many holders of a [`Permit`] at once.
#[derive(Debug)]
pub(crate) struct ConcurrencyLimit {
    available: Mutex<usize>,
    released: Condvar,
}

impl ConcurrencyLimit {
    /// At most `permits` holders at once.
    pub(crate) fn new(permits: NonZeroUsize) -> Self {
        ConcurrencyLimit {
            available: Mutex::new(permits.get()),
            released: Condvar::new(),
        }
    }

    /// Blocks until a permit is free, and holds it until the permit is dropped.
    pub(crate) fn acquire(&self) -> Permit<'_> {
        let mut available = self.available.lock().unwrap_or_else(|e| e.into_inner());
        while *available == 0 {
            available = self
                .released
                .wait(available)
                .unwrap_or_else(|e| e.into_inner());
        }
        *available -= 1;
        Permit(self)
    }
}

/// One place under a [`ConcurrencyLimit`], given back when dropped.
pub(crate) struct Permit<'a>(&'a ConcurrencyLimit);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.available.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.released.notify_one();
    }
}

/// `inner` with at most so many [`generate`](LmmGenerator::generate) calls in flight, over
/// every caller: for a server that answers one request at a time (llama.cpp with one slot)
/// shared by several pipeline workers. Further calls wait their turn.
#[derive(Debug)]
pub struct ConcurrencyLimitedGenerator<G> {
    inner: G,
    limit: ConcurrencyLimit,
}

impl<G> ConcurrencyLimitedGenerator<G> {
    /// `inner`, with at most `max_in_flight` calls at once.
    pub fn new(inner: G, max_in_flight: NonZeroUsize) -> Self {
        ConcurrencyLimitedGenerator {
            inner,
            limit: ConcurrencyLimit::new(max_in_flight),
        }
    }

    /// The wrapped generator.
    pub fn inner(&self) -> &G {
        &self.inner
    }
}

impl<G: LmmGenerator> LmmGenerator for ConcurrencyLimitedGenerator<G> {
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let _permit = self.limit.acquire();
        self.inner.generate(image, prompts)
    }

    fn describe(&self) -> GeneratorDescription {
        self.inner.describe()
    }

    fn usage(&self) -> Option<LmmUsage> {
        self.inner.usage()
    }
}

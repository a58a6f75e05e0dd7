//! The answer cache as a layer: any generator's answers are saved, and never asked for
//! again.

use std::sync::atomic::{AtomicU64, Ordering};

use g3_core::{
    GeneratedAnswers, GeneratorDescription, ImageInput, LmmGenerator, LmmUsage, PromptRequest,
    StageKind,
};

use super::slots::{SampleSlots, ask_for, generated};
use crate::cache::{ResponseCache, image_sha256};

/// `inner` behind a persistent [`ResponseCache`]: samples the cache holds are answered from
/// it, only the others are asked of `inner`, and every answer `inner` gives is saved as it
/// arrives, so a killed run resumes without asking twice.
///
/// Answers are keyed by a model name, the prompt, the image's SHA-256, the temperature, the
/// token limit, the detail level and the sample index. The model name is `inner`'s
/// [`describe`](LmmGenerator::describe) name unless [`with_model`](Self::with_model) says
/// otherwise; it must change whenever a setting that changes the answers does.
#[derive(Debug)]
pub struct CachedGenerator<G> {
    inner: G,
    cache: ResponseCache,
    model: String,
    /// Samples answered from the cache, for [`LmmGenerator::usage`].
    samples_from_cache: AtomicU64,
}

impl<G: LmmGenerator> CachedGenerator<G> {
    /// `inner` behind `cache`, its answers keyed by `inner.describe().name`.
    pub fn new(inner: G, cache: ResponseCache) -> Self {
        let model = inner.describe().name;
        CachedGenerator {
            inner,
            cache,
            model,
            samples_from_cache: AtomicU64::new(0),
        }
    }
}

impl<G> CachedGenerator<G> {
    /// Keys answers by `model` instead: the model's name as its server knows it (what the
    /// OpenAI client keys by, so one cache file serves both), or a name that includes the
    /// settings of a generator whose description does not.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// The model name answers are keyed by.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The wrapped generator.
    pub fn inner(&self) -> &G {
        &self.inner
    }

    /// The cache answers go to.
    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }
}

impl<G: LmmGenerator> LmmGenerator for CachedGenerator<G> {
    /// The cached samples, and what `inner` answers for the others (its lost samples
    /// included). Answers are committed to disk before this returns; a cache that cannot be
    /// read or written is an error, since answers would be bought and lost.
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let cache_error = |error| g3_core::Error::stage(StageKind::LmmGenerator, error);
        let image_sha256 = image_sha256(image.encoded());
        let mut slots = prompts
            .iter()
            .map(|prompt| SampleSlots::cached(prompt, &self.cache, &self.model, &image_sha256))
            .collect::<Result<Vec<_>, _>>()
            .map_err(cache_error)?;
        let hits: u32 = slots.iter().map(SampleSlots::answered).sum();
        self.samples_from_cache
            .fetch_add(u64::from(hits), Ordering::Relaxed);
        let wanted: Vec<Vec<u32>> = slots.iter().map(SampleSlots::missing).collect();
        let lost = ask_for(&self.inner, image, &mut slots, &wanted)?;
        self.cache.flush().map_err(cache_error)?;
        Ok(generated(slots, lost))
    }

    fn describe(&self) -> GeneratorDescription {
        self.inner.describe()
    }

    /// `inner`'s account with the samples answered from the cache added; an account of
    /// only those when `inner` keeps none and the cache answered something.
    fn usage(&self) -> Option<LmmUsage> {
        let hits = self.samples_from_cache.load(Ordering::Relaxed);
        match self.inner.usage() {
            Some(mut usage) => {
                usage.samples_from_cache += hits;
                Some(usage)
            }
            None => (hits > 0).then(|| LmmUsage {
                samples_from_cache: hits,
                ..LmmUsage::default()
            }),
        }
    }
}

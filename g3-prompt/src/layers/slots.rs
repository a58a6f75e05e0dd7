//! Which samples of one prompt are answered and which are still missing, with an optional
//! answer cache behind them: the bookkeeping every layer that asks a generator for *some*
//! samples of a prompt needs (the cache asks for those it lacks, the retry layer for those
//! that were lost, the OpenAI client for those a short response left out).
//!
//! A generator numbers the samples of the request it was given from 0; a layer that asked
//! for samples `[2, 4]` of a prompt receives samples 0 and 1 and files them as 2 and 4.

use g3_core::{
    GeneratedAnswers, ImageInput, LmmAnswer, LmmGenerator, LostAnswers, PromptRequest, StageKind,
};

use crate::cache::{CacheError, CacheKey, CachedAnswer, ResponseCache};

/// The samples of one prompt, each answered or missing.
pub(crate) struct SampleSlots<'a> {
    prompt: &'a PromptRequest,
    texts: Vec<Option<String>>,
    cache: Option<CacheBinding<'a>>,
}

/// A cache and the parts of the key that do not depend on the sample.
struct CacheBinding<'a> {
    cache: &'a ResponseCache,
    model: &'a str,
    image_sha256: &'a [u8; 32],
}

impl CacheBinding<'_> {
    fn key<'k>(&'k self, prompt: &'k PromptRequest, sample_index: u32) -> CacheKey<'k> {
        CacheKey {
            model: self.model,
            prompt: &prompt.text,
            image_sha256: self.image_sha256,
            temperature: prompt.temperature,
            max_tokens: prompt.max_tokens,
            image_detail: prompt.image_detail,
            sample_index,
        }
    }
}

impl<'a> SampleSlots<'a> {
    /// Every sample of `prompt` missing, and no cache.
    pub(crate) fn new(prompt: &'a PromptRequest) -> Self {
        SampleSlots {
            prompt,
            texts: vec![None; prompt.samples as usize],
            cache: None,
        }
    }

    /// The samples of `prompt` that `cache` holds for this model and image are answered;
    /// samples filled later are saved to it.
    pub(crate) fn cached(
        prompt: &'a PromptRequest,
        cache: &'a ResponseCache,
        model: &'a str,
        image_sha256: &'a [u8; 32],
    ) -> Result<Self, CacheError> {
        let binding = CacheBinding {
            cache,
            model,
            image_sha256,
        };
        let mut texts = Vec::with_capacity(prompt.samples as usize);
        for sample_index in 0..prompt.samples {
            let found = cache.get(&binding.key(prompt, sample_index))?;
            texts.push(found.map(|answer| answer.text));
        }
        Ok(SampleSlots {
            prompt,
            texts,
            cache: Some(binding),
        })
    }

    /// The prompt these samples answer.
    pub(crate) fn prompt(&self) -> &'a PromptRequest {
        self.prompt
    }

    /// How many samples are answered.
    pub(crate) fn answered(&self) -> u32 {
        self.texts.iter().filter(|text| text.is_some()).count() as u32
    }

    /// The samples still missing, in order.
    pub(crate) fn missing(&self) -> Vec<u32> {
        (0..self.prompt.samples)
            .filter(|&sample| self.texts[sample as usize].is_none())
            .collect()
    }

    /// Answers sample `sample_index` (saving it to the cache, when there is one). An index
    /// beyond the prompt's samples is ignored: no generator was asked for it.
    pub(crate) fn fill(
        &mut self,
        sample_index: u32,
        answer: CachedAnswer,
    ) -> Result<(), CacheError> {
        let Some(slot) = self.texts.get_mut(sample_index as usize) else {
            return Ok(());
        };
        if let Some(binding) = &self.cache {
            binding
                .cache
                .insert(&binding.key(self.prompt, sample_index), &answer)?;
        }
        *slot = Some(answer.text);
        Ok(())
    }

    /// The answered samples, in order.
    pub(crate) fn into_answers(self) -> Vec<LmmAnswer> {
        let prompt_index = self.prompt.prompt_index;
        (0..)
            .zip(self.texts)
            .filter_map(|(sample_index, text)| {
                Some(LmmAnswer {
                    prompt_index,
                    sample_index,
                    text: text?,
                })
            })
            .collect()
    }
}

/// Every slot's answered samples, prompt by prompt, with what was lost: a wrapper's answer.
pub(crate) fn generated(slots: Vec<SampleSlots<'_>>, lost: Vec<LostAnswers>) -> GeneratedAnswers {
    GeneratedAnswers {
        answers: slots
            .into_iter()
            .flat_map(SampleSlots::into_answers)
            .collect(),
        lost,
    }
}

/// Asks `inner` for samples `wanted[i]` of `slots[i]`'s prompt (prompts with nothing wanted
/// are left out; nothing at all wanted: `inner` is not called) and files its answers in
/// the slots. Returns the samples `inner` reported lost.
pub(crate) fn ask_for<G: LmmGenerator + ?Sized>(
    inner: &G,
    image: &ImageInput,
    slots: &mut [SampleSlots<'_>],
    wanted: &[Vec<u32>],
) -> g3_core::Result<Vec<LostAnswers>> {
    let requests: Vec<PromptRequest> = slots
        .iter()
        .zip(wanted)
        .filter(|(_, wanted)| !wanted.is_empty())
        .map(|(slots, wanted)| PromptRequest {
            samples: wanted.len() as u32,
            ..slots.prompt().clone()
        })
        .collect();
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let generated = inner.generate(image, &requests)?;
    for answer in &generated.answers {
        let target = slots
            .iter_mut()
            .zip(wanted)
            .find(|(slots, wanted)| {
                slots.prompt().prompt_index == answer.prompt_index && !wanted.is_empty()
            })
            .and_then(|(slots, wanted)| Some((slots, *wanted.get(answer.sample_index as usize)?)));
        let Some((slots, sample_index)) = target else {
            tracing::warn!(
                prompt = answer.prompt_index,
                sample = answer.sample_index,
                "the generator answered a sample it was not asked for; ignored"
            );
            continue;
        };
        let answer = CachedAnswer {
            text: answer.text.clone(),
            finish_reason: None,
        };
        slots
            .fill(sample_index, answer)
            .map_err(|error| g3_core::Error::stage(StageKind::LmmGenerator, error))?;
    }
    Ok(generated.lost)
}

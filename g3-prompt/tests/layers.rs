//! The generic layers around generators that are not the OpenAI client: the offline
//! generator behind the answer cache, a failing generator behind the retry layer, the pace
//! and the concurrency limit; and one cache file shared by the OpenAI client and the layer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use g3_core::retry::RetryPolicy;
use g3_core::{
    GeneratedAnswers, GeoPoint, ImageDetail, ImageInput, LmmAnswer, LmmGenerator, LossCause,
    LostAnswers, PromptRequest,
};
use g3_prompt::mock::{MockBehaviour, MockChatServer};
use g3_prompt::{
    CachedGenerator, ConcurrencyLimitedGenerator, DensityPeakGenerator, OpenAiConfig,
    OpenAiGenerator, PacedGenerator, ResponseCache, RetryingGenerator,
};

fn prompt(prompt_index: usize, samples: u32) -> PromptRequest {
    let similar = [(41.89, 12.49), (41.90, 12.50), (45.46, 9.19)]
        .into_iter()
        .map(|(lat, lon)| GeoPoint::new(lat, lon).unwrap())
        .collect();
    PromptRequest {
        prompt_index,
        text: format!("Where was this photo taken? Variant {prompt_index}."),
        samples,
        temperature: 1.2,
        max_tokens: 200,
        image_detail: ImageDetail::Low,
        similar,
        dissimilar: Vec::new(),
    }
}

fn image() -> ImageInput {
    ImageInput::from_bytes("query.jpg", vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])
}

/// Answers every sample as `inner` would, and records what it was asked: per call, the
/// (prompt, samples) pairs.
#[derive(Debug, Default)]
struct Recording<G> {
    inner: G,
    calls: Mutex<Vec<Vec<(usize, u32)>>>,
}

impl<G: LmmGenerator> LmmGenerator for Recording<G> {
    fn generate(
        &self,
        image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let asked = prompts
            .iter()
            .map(|prompt| (prompt.prompt_index, prompt.samples))
            .collect();
        self.calls.lock().unwrap().push(asked);
        self.inner.generate(image, prompts)
    }

    fn describe(&self) -> g3_core::GeneratorDescription {
        self.inner.describe()
    }
}

impl<G> Recording<G> {
    fn calls(&self) -> Vec<Vec<(usize, u32)>> {
        self.calls.lock().unwrap().clone()
    }
}

#[test]
fn the_cache_answers_a_repeated_request_without_asking_the_offline_generator() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("answers.redb");
    let prompts = [prompt(0, 3), prompt(1, 2)];
    let generator = CachedGenerator::new(
        Recording {
            inner: DensityPeakGenerator::default(),
            ..Recording::default()
        },
        ResponseCache::open(&path).unwrap(),
    );
    let first = generator.generate(&image(), &prompts).unwrap();
    assert_eq!(first.answers.len(), 5);
    assert!(first.lost.is_empty());
    assert_eq!(generator.inner().calls(), [vec![(0, 3), (1, 2)]]);
    assert_eq!(generator.usage(), None, "nothing came from the cache yet");

    let second = generator.generate(&image(), &prompts).unwrap();
    assert_eq!(second, first);
    assert_eq!(
        generator.inner().calls().len(),
        1,
        "the second call asked nothing"
    );
    assert_eq!(generator.usage().unwrap().samples_from_cache, 5);
    assert_eq!(
        generator.describe(),
        DensityPeakGenerator::default().describe()
    );

    // The answers are on disk: a new generator on the same file asks nothing either.
    drop(generator);
    let reopened = CachedGenerator::new(
        Recording {
            inner: DensityPeakGenerator::default(),
            ..Recording::default()
        },
        ResponseCache::open(&path).unwrap(),
    );
    assert_eq!(reopened.generate(&image(), &prompts).unwrap(), first);
    assert!(reopened.inner().calls().is_empty());
}

#[test]
fn the_cache_asks_only_for_the_samples_it_lacks_and_files_them_in_place() {
    let directory = tempfile::tempdir().unwrap();
    let generator = CachedGenerator::new(
        Recording {
            inner: DensityPeakGenerator::default(),
            ..Recording::default()
        },
        ResponseCache::open(directory.path().join("answers.redb")).unwrap(),
    );
    let cached = generator.generate(&image(), &[prompt(0, 2)]).unwrap();
    let more = generator
        .generate(&image(), &[prompt(0, 5), prompt(1, 1)])
        .unwrap();
    assert_eq!(
        generator.inner().calls(),
        [vec![(0, 2)], vec![(0, 3), (1, 1)]],
        "samples 2-4 of prompt 0 and all of prompt 1"
    );
    let order: Vec<(usize, u32)> = more
        .answers
        .iter()
        .map(|answer| (answer.prompt_index, answer.sample_index))
        .collect();
    assert_eq!(order, [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]);
    assert_eq!(more.answers[..2], cached.answers[..]);
}

#[test]
fn a_different_model_name_misses_the_cache() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("answers.redb");
    let prompts = [prompt(0, 2)];
    let first = CachedGenerator::new(
        DensityPeakGenerator::default(),
        ResponseCache::open(&path).unwrap(),
    )
    .with_model("density-25km");
    first.generate(&image(), &prompts).unwrap();
    drop(first);
    let other = CachedGenerator::new(
        Recording {
            inner: DensityPeakGenerator::default(),
            ..Recording::default()
        },
        ResponseCache::open(&path).unwrap(),
    )
    .with_model("density-50km");
    assert_eq!(other.model(), "density-50km");
    other.generate(&image(), &prompts).unwrap();
    assert_eq!(other.inner().calls(), [vec![(0, 2)]]);
}

/// Loses every sample with `cause` on its first `failures` calls, then answers them all.
#[derive(Debug)]
struct Flaky {
    failures: usize,
    cause: LossCause,
    calls: AtomicUsize,
}

impl Flaky {
    fn new(failures: usize, cause: LossCause) -> Self {
        Flaky {
            failures,
            cause,
            calls: AtomicUsize::new(0),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl LmmGenerator for Flaky {
    fn generate(
        &self,
        _image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        if call < self.failures {
            return Ok(GeneratedAnswers {
                answers: Vec::new(),
                lost: prompts
                    .iter()
                    .map(|prompt| LostAnswers {
                        prompt_index: prompt.prompt_index,
                        samples: prompt.samples,
                        cause: self.cause,
                        message: format!("call {call} failed"),
                    })
                    .collect(),
            });
        }
        let answers = prompts
            .iter()
            .flat_map(|prompt| {
                (0..prompt.samples).map(move |sample_index| LmmAnswer {
                    prompt_index: prompt.prompt_index,
                    sample_index,
                    text: format!("call {call}"),
                })
            })
            .collect::<Vec<_>>();
        Ok(answers.into())
    }
}

fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff_ms: 1,
        max_backoff_ms: 2,
        ..RetryPolicy::default()
    }
}

#[test]
fn the_retry_layer_retries_a_failing_generator_the_configured_number_of_times() {
    let generator = RetryingGenerator::new(
        Flaky::new(usize::MAX, LossCause::RetriesExhausted),
        quick_retries(3),
    );
    let generated = generator
        .generate(&image(), &[prompt(0, 5), prompt(1, 5)])
        .unwrap();
    assert_eq!(generator.inner().calls(), 1 + 3);
    assert!(generated.answers.is_empty());
    let lost: Vec<(usize, u32)> = generated
        .lost
        .iter()
        .map(|lost| (lost.prompt_index, lost.samples))
        .collect();
    assert_eq!(lost, [(0, 5), (1, 5)]);
    assert!(
        generated.lost[0].message.contains("call 3"),
        "the last round's message"
    );
}

#[test]
fn the_retry_layer_stops_retrying_once_the_samples_arrive() {
    let generator = RetryingGenerator::new(Flaky::new(2, LossCause::Other), quick_retries(5));
    let generated = generator.generate(&image(), &[prompt(0, 5)]).unwrap();
    assert_eq!(generator.inner().calls(), 3);
    assert!(generated.lost.is_empty());
    assert_eq!(generated.answers.len(), 5);
    assert!(
        generated
            .answers
            .iter()
            .all(|answer| answer.text == "call 2")
    );
}

#[test]
fn causes_the_caller_deems_persistent_are_not_retried() {
    let refused = RetryingGenerator::new(
        Flaky::new(usize::MAX, LossCause::Unauthorized),
        quick_retries(3),
    );
    let generated = refused.generate(&image(), &[prompt(0, 5)]).unwrap();
    assert_eq!(refused.inner().calls(), 1, "a refused key is never retried");
    assert_eq!(generated.lost[0].cause, LossCause::Unauthorized);

    // The caller decides: here even an unreachable server is worth waiting for.
    let patient = RetryingGenerator::new(Flaky::new(2, LossCause::Unreachable), quick_retries(3))
        .retry_if(|lost| lost.cause == LossCause::Unreachable);
    assert!(
        patient
            .generate(&image(), &[prompt(0, 5)])
            .unwrap()
            .lost
            .is_empty()
    );
    assert_eq!(patient.inner().calls(), 3);
}

/// Answers the first `answered` samples of each prompt and loses the rest, once; then
/// answers everything it is asked.
#[derive(Debug, Default)]
struct ShortOnce {
    answered: u32,
    calls: Mutex<Vec<Vec<(usize, u32)>>>,
}

impl LmmGenerator for ShortOnce {
    fn generate(
        &self,
        _image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let mut calls = self.calls.lock().unwrap();
        let first = calls.is_empty();
        calls.push(
            prompts
                .iter()
                .map(|p| (p.prompt_index, p.samples))
                .collect(),
        );
        let mut generated = GeneratedAnswers::default();
        for prompt in prompts {
            let answered = if first { self.answered } else { prompt.samples };
            for sample_index in 0..answered {
                generated.answers.push(LmmAnswer {
                    prompt_index: prompt.prompt_index,
                    sample_index,
                    text: format!("round {} sample {sample_index}", calls.len()),
                });
            }
            if answered < prompt.samples {
                generated.lost.push(LostAnswers {
                    prompt_index: prompt.prompt_index,
                    samples: prompt.samples - answered,
                    cause: LossCause::ShortResponse,
                    message: "short".into(),
                });
            }
        }
        Ok(generated)
    }
}

#[test]
fn a_retry_asks_only_for_the_lost_samples_and_files_them_after_the_answered_ones() {
    let generator = RetryingGenerator::new(
        ShortOnce {
            answered: 2,
            ..ShortOnce::default()
        },
        quick_retries(1),
    );
    let generated = generator.generate(&image(), &[prompt(3, 5)]).unwrap();
    assert_eq!(
        *generator.inner().calls.lock().unwrap(),
        [vec![(3, 5)], vec![(3, 3)]]
    );
    assert!(generated.lost.is_empty());
    let texts: Vec<(u32, &str)> = generated
        .answers
        .iter()
        .map(|answer| (answer.sample_index, answer.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            (0, "round 1 sample 0"),
            (1, "round 1 sample 1"),
            (2, "round 2 sample 0"),
            (3, "round 2 sample 1"),
            (4, "round 2 sample 2"),
        ]
    );
}

#[test]
fn the_pace_spreads_calls_over_the_minute() {
    // 600 a minute: one every 100 ms, the first at once.
    let generator = PacedGenerator::new(
        DensityPeakGenerator::default(),
        std::num::NonZeroU32::new(600).unwrap(),
    );
    let started = Instant::now();
    for _ in 0..4 {
        generator.generate(&image(), &[prompt(0, 1)]).unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
}

/// Sleeps in `generate`, recording the most calls it saw at once.
#[derive(Debug, Default)]
struct Slow {
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

impl LmmGenerator for Slow {
    fn generate(
        &self,
        _image: &ImageInput,
        _prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(GeneratedAnswers::default())
    }
}

#[test]
fn the_limit_holds_over_every_caller() {
    let generator =
        ConcurrencyLimitedGenerator::new(Slow::default(), std::num::NonZeroUsize::new(2).unwrap());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| generator.generate(&image(), &[]).unwrap());
        }
    });
    assert_eq!(generator.inner().most.load(Ordering::SeqCst), 2);
}

#[test]
fn the_openai_client_and_the_cache_layer_share_one_cache_file() {
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("answers.redb");
    let config = OpenAiConfig::local(server.base_url(), "mock-llava");
    let prompts = [prompt(0, 5), prompt(1, 5)];

    let client = OpenAiGenerator::new(config.clone())
        .unwrap()
        .with_cache(ResponseCache::open(&path).unwrap());
    let bought = client.generate(&image(), &prompts).unwrap();
    assert_eq!(server.log().requests_received, 2);
    drop(client);

    let layered = CachedGenerator::new(
        OpenAiGenerator::new(config).unwrap(),
        ResponseCache::open(&path).unwrap(),
    )
    .with_model("mock-llava");
    assert_eq!(layered.generate(&image(), &prompts).unwrap(), bought);
    assert_eq!(server.log().requests_received, 2, "nothing was asked again");
    let usage = layered.usage().unwrap();
    assert_eq!((usage.samples_from_cache, usage.requests_sent), (10, 0));
}

#[test]
fn declined_samples_stay_declined_behind_the_cache() {
    // The cache forwards prompts whole (references included), and what the offline
    // generator declines is neither cached nor reported lost.
    let directory = tempfile::tempdir().unwrap();
    let generator = CachedGenerator::new(
        DensityPeakGenerator::default(),
        ResponseCache::open(directory.path().join("answers.redb")).unwrap(),
    );
    let mut zero_shot = prompt(0, 2);
    zero_shot.similar.clear();
    let generated = generator
        .generate(&image(), &[zero_shot, prompt(1, 2)])
        .unwrap();
    let prompts: Vec<usize> = generated.answers.iter().map(|a| a.prompt_index).collect();
    assert_eq!(
        prompts,
        [1, 1],
        "the zero-shot prompt is declined, not lost"
    );
    assert!(generated.lost.is_empty());
}

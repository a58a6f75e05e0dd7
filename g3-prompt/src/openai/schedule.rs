//! The run of many prompts of many images on a bounded pool of workers: what a batch asks
//! ([`LmmJob`]), what it gets back ([`LmmJobOutcome`]), and the stop that a fatal error
//! (refused credentials, a failing cache) puts to every worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use g3_core::{GeneratedAnswers, ImageInput, LmmAnswer, LostAnswers, PromptRequest};

use super::error::LmmClientError;
use super::image::PreparedImage;

/// One image and the prompts to send with it.
#[derive(Debug, Clone)]
pub struct LmmJob {
    /// The query photo.
    pub image: ImageInput,
    /// Its rendered prompts (from a [`g3_core::PromptEnsemble`]).
    pub prompts: Vec<PromptRequest>,
}

/// What a job produced: the answers obtained and, per prompt, what could not be had.
#[derive(Debug)]
pub struct LmmJobOutcome {
    /// Answers ordered by prompt, then sample.
    pub answers: Vec<LmmAnswer>,
    /// Prompts with samples missing, and why.
    pub failures: Vec<PromptFailure>,
}

impl LmmJobOutcome {
    /// The answers, and the failures as lost answers with their causes.
    pub fn into_generated(self) -> GeneratedAnswers {
        GeneratedAnswers {
            answers: self.answers,
            lost: self
                .failures
                .into_iter()
                .map(|failure| LostAnswers {
                    prompt_index: failure.prompt_index,
                    samples: failure.missing_samples,
                    cause: failure.error.loss_cause(),
                    message: failure.error.to_string(),
                })
                .collect(),
        }
    }

    pub(super) fn empty() -> Self {
        LmmJobOutcome {
            answers: Vec::new(),
            failures: Vec::new(),
        }
    }
}

/// Samples of one prompt that could not be obtained.
#[derive(Debug)]
pub struct PromptFailure {
    /// The [`PromptRequest::prompt_index`].
    pub prompt_index: usize,
    /// How many samples are missing.
    pub missing_samples: u32,
    /// The last error.
    pub error: LmmClientError,
}

/// What one prompt came to: its answers, and its missing samples when some are.
pub(super) struct PromptResult {
    pub(super) answers: Vec<LmmAnswer>,
    pub(super) failure: Option<PromptFailure>,
}

/// What a batch came to: one outcome per job, in order.
pub(super) struct BatchResult {
    pub(super) outcomes: Vec<LmmJobOutcome>,
    /// Samples asked for and not obtained, over every job.
    pub(super) samples_missing: u64,
    /// The error that stopped the run, if one did.
    pub(super) fatal: Option<LmmClientError>,
}

/// Runs every prompt of every job through `run_prompt` on up to `workers` threads, taking
/// prompts in order. `run_prompt` gets the prompt's image and a stop flag it must honour
/// (and may set); an `Err` from it is fatal: it sets the flag, so no worker starts another
/// prompt, and is returned in [`BatchResult::fatal`] with whatever was obtained.
/// `on_prompt_done` hears the number of prompts finished so far after each one.
pub(super) fn run_batch(
    jobs: &[LmmJob],
    workers: usize,
    on_prompt_done: &(dyn Fn(usize) + Sync),
    run_prompt: impl Fn(
        &PreparedImage<'_>,
        &PromptRequest,
        &AtomicBool,
    ) -> Result<PromptResult, LmmClientError>
    + Sync,
) -> BatchResult {
    let images: Vec<PreparedImage> = jobs
        .iter()
        .map(|job| PreparedImage::new(&job.image))
        .collect();
    let units: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(job, request)| (0..request.prompts.len()).map(move |prompt| (job, prompt)))
        .collect();
    let results: Vec<OnceLock<PromptResult>> = units.iter().map(|_| OnceLock::new()).collect();
    let next_unit = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let fatal: Mutex<Option<LmmClientError>> = Mutex::new(None);
    // Set by a fatal error (refused credentials, a failing cache): nothing more is sent
    // in this run.
    let stopped = AtomicBool::new(false);

    std::thread::scope(|scope| {
        for _ in 0..workers.min(units.len()) {
            scope.spawn(|| {
                loop {
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    let unit = next_unit.fetch_add(1, Ordering::Relaxed);
                    let Some(&(job, prompt)) = units.get(unit) else {
                        break;
                    };
                    match run_prompt(&images[job], &jobs[job].prompts[prompt], &stopped) {
                        Ok(result) => {
                            let _ = results[unit].set(result);
                        }
                        Err(error) => {
                            stopped.store(true, Ordering::Relaxed);
                            fatal
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(error);
                            break;
                        }
                    }
                    on_prompt_done(finished.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });

    let mut outcomes: Vec<LmmJobOutcome> = jobs.iter().map(|_| LmmJobOutcome::empty()).collect();
    let mut samples_missing = 0u64;
    for (&(job, prompt), result) in units.iter().zip(results) {
        let result = result.into_inner().unwrap_or(PromptResult {
            answers: Vec::new(),
            failure: None,
        });
        samples_missing += u64::from(jobs[job].prompts[prompt].samples)
            .saturating_sub(result.answers.len() as u64);
        outcomes[job].answers.extend(result.answers);
        outcomes[job].failures.extend(result.failure);
    }
    BatchResult {
        outcomes,
        samples_missing,
        fatal: fatal.into_inner().unwrap_or_else(|e| e.into_inner()),
    }
}

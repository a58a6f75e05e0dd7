//! The pipeline's one policy for LMM answers that never arrived, and its account of what the
//! generator was asked, gave, lost and spent.
//!
//! A lost answer (the server was down, refused the key, gave up) is not a rejected one (an
//! answer that arrived and could not be read, which is data). By default a photo with any
//! lost answer gets no prediction: its pool would be a smaller ensemble than the one
//! configured, or only the retrieved top 1, and passing that off as G3's output would
//! corrupt every number computed from it. [`MinAnswers`] accepts partial pools explicitly.
//! When photo after photo loses its answers for a reason no retry fixes (the server is
//! unreachable, the key is refused, the model unknown, the quota used up), the pipeline
//! stops asking after [`AnswerPolicy::stop_after_failed_photos`] photos.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use g3_core::{GeneratedAnswers, GeneratorDescription, LmmUsage, LossCause};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How many of a photo's sampled answers must arrive when some are lost.
///
/// In TOML: `min_answers = "all"` (the default), a count (`min_answers = 15`) or a fraction
/// of the samples the ensemble asks for (`min_answers = 0.75`). The rule only applies to
/// photos with lost answers: answers a generator declines (the offline generator on a
/// zero-shot prompt) are not lost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum MinAnswers {
    /// Every answer: a photo with any lost answer fails.
    #[default]
    All,
    /// At least this many answers (a count above the samples asked means all).
    Count(u32),
    /// At least this fraction of the samples asked, rounded up; in `[0, 1]`.
    Fraction(f64),
}

impl MinAnswers {
    /// How many of `asked` answers must arrive.
    pub fn required(self, asked: u64) -> u64 {
        match self {
            MinAnswers::All => asked,
            MinAnswers::Count(count) => u64::from(count).min(asked),
            MinAnswers::Fraction(fraction) => {
                ((fraction.clamp(0.0, 1.0) * asked as f64).ceil() as u64).min(asked)
            }
        }
    }

    /// Refuses fractions outside `[0, 1]` (and NaN).
    pub fn validate(self) -> Result<()> {
        match self {
            MinAnswers::Fraction(fraction) if !(0.0..=1.0).contains(&fraction) => {
                Err(Error::InvalidPipeline(format!(
                    "generation.min_answers = {fraction}: a fraction must lie in [0, 1] (or give a count, or \"all\")"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The TOML/JSON forms of [`MinAnswers`].
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum MinAnswersRepr {
    Word(String),
    Count(u32),
    Fraction(f64),
}

impl Serialize for MinAnswers {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            MinAnswers::All => MinAnswersRepr::Word("all".into()),
            MinAnswers::Count(count) => MinAnswersRepr::Count(count),
            MinAnswers::Fraction(fraction) => MinAnswersRepr::Fraction(fraction),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MinAnswers {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        match MinAnswersRepr::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected \"all\", a count of answers (15) or a fraction of the samples (0.75)",
            )
        })? {
            MinAnswersRepr::Word(word) if word == "all" => Ok(MinAnswers::All),
            MinAnswersRepr::Word(word) => Err(serde::de::Error::custom(format!(
                "{word:?}: expected \"all\", a count of answers (15) or a fraction of the samples (0.75)"
            ))),
            MinAnswersRepr::Count(count) => Ok(MinAnswers::Count(count)),
            MinAnswersRepr::Fraction(fraction) => Ok(MinAnswers::Fraction(fraction)),
        }
    }
}

/// What the pipeline does with lost answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerPolicy {
    /// How many answers a photo with lost answers needs (default all).
    pub min_answers: MinAnswers,
    /// Stop asking the generator once this many photos in a row lost their answers for the
    /// same persistent cause ([`LossCause::is_persistent`]); later photos fail at once with
    /// [`Error::GenerationHalted`]. 0 never stops. Default 3.
    pub stop_after_failed_photos: usize,
}

impl Default for AnswerPolicy {
    fn default() -> Self {
        AnswerPolicy {
            min_answers: MinAnswers::All,
            stop_after_failed_photos: 3,
        }
    }
}

/// Why the pipeline stopped asking the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationHalt {
    /// What every photo of the streak lost its answers to.
    pub cause: LossCause,
    /// How many photos in a row failed that way.
    pub photos: usize,
    /// The generator's words for the last failure.
    pub message: String,
}

impl fmt::Display for GenerationHalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped asking the LMM after {} photos in a row failed because {}: {}",
            self.photos, self.cause, self.message
        )
    }
}

/// What the generator was asked, gave, lost and spent over a pipeline's life: the end-of-run
/// summary of `g3 run` and `g3 locate`, and `results.usage.json`. Its `Display` is the
/// summary's text (the halt, which callers report with what it left undone, is not in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationReport {
    /// The generator, and whether a model was asked at all.
    pub generator: GeneratorDescription,
    /// Photos whose prompts went to the generator.
    pub photos: u64,
    /// Of those, the photos that failed because answers were lost.
    pub failed_photos: u64,
    /// Sampled answers asked for.
    pub answers_asked: u64,
    /// Answers that arrived (readable or not).
    pub answers_obtained: u64,
    /// Of the answers that arrived, the ones no location could be read from.
    pub answers_rejected: u64,
    /// Answers that never arrived.
    pub answers_lost: u64,
    /// Lost answers by cause.
    pub lost_by_cause: BTreeMap<LossCause, u64>,
    /// Requests, retries, tokens and cost, when the generator keeps such an account.
    pub usage: Option<LmmUsage>,
    /// Set when the pipeline stopped asking the generator.
    pub halted: Option<GenerationHalt>,
}

impl GenerationReport {
    /// A report of nothing yet, for `generator`.
    pub fn new(generator: GeneratorDescription) -> Self {
        GenerationReport {
            generator,
            photos: 0,
            failed_photos: 0,
            answers_asked: 0,
            answers_obtained: 0,
            answers_rejected: 0,
            answers_lost: 0,
            lost_by_cause: BTreeMap::new(),
            usage: None,
            halted: None,
        }
    }

    /// Adds `other`'s counts to these (for totals over several runs).
    pub fn add(&mut self, other: &GenerationReport) {
        self.photos += other.photos;
        self.failed_photos += other.failed_photos;
        self.answers_asked += other.answers_asked;
        self.answers_obtained += other.answers_obtained;
        self.answers_rejected += other.answers_rejected;
        self.answers_lost += other.answers_lost;
        for (cause, count) in &other.lost_by_cause {
            *self.lost_by_cause.entry(*cause).or_default() += count;
        }
        self.usage = match (self.usage, other.usage) {
            (None, None) => None,
            (mine, theirs) => {
                let mut total = mine.unwrap_or_default();
                total.add(&theirs.unwrap_or_default());
                Some(total)
            }
        };
        if other.halted.is_some() {
            self.halted.clone_from(&other.halted);
        }
    }
}

impl fmt::Display for GenerationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "generator: {}", self.generator.name)?;
        write!(
            f,
            "answers:  {} asked, {} obtained ({} unreadable), {} lost",
            self.answers_asked, self.answers_obtained, self.answers_rejected, self.answers_lost
        )?;
        if !self.lost_by_cause.is_empty() {
            let causes: Vec<String> = self
                .lost_by_cause
                .iter()
                .map(|(cause, count)| format!("{count}: {cause}"))
                .collect();
            write!(f, " ({})", causes.join("; "))?;
        }
        write!(
            f,
            "\nphotos:   {} sent to the generator, {} failed for lost answers",
            self.photos, self.failed_photos
        )?;
        match &self.usage {
            Some(usage) => write!(f, "\n{usage}"),
            None => Ok(()),
        }
    }
}

/// The running account behind [`GenerationReport`], and the failure streak behind
/// [`AnswerPolicy::stop_after_failed_photos`]. Shared by the pipeline's worker threads.
#[derive(Debug, Default)]
pub(super) struct GenerationAccount {
    photos: AtomicU64,
    failed_photos: AtomicU64,
    asked: AtomicU64,
    obtained: AtomicU64,
    rejected: AtomicU64,
    lost_by_cause: Mutex<BTreeMap<LossCause, u64>>,
    streak: Mutex<Streak>,
    halt: OnceLock<GenerationHalt>,
}

/// Photos in a row that lost answers to one cause.
#[derive(Debug, Default)]
struct Streak {
    cause: Option<LossCause>,
    photos: usize,
}

impl GenerationAccount {
    /// The halt, once the pipeline stopped asking.
    pub(super) fn halted(&self) -> Option<&GenerationHalt> {
        self.halt.get()
    }

    /// Counts one photo's answers and judges it: `Err` when answers were lost beyond what
    /// `policy` accepts. `rejected` is how many arrived answers could not be read.
    pub(super) fn judge(
        &self,
        image_id: &str,
        asked: u64,
        generated: &GeneratedAnswers,
        rejected: u64,
        policy: &AnswerPolicy,
    ) -> Result<()> {
        let add = |counter: &AtomicU64, amount: u64| {
            counter.fetch_add(amount, Ordering::Relaxed);
        };
        add(&self.photos, 1);
        add(&self.asked, asked);
        add(&self.obtained, generated.answers.len() as u64);
        add(&self.rejected, rejected);
        let lost = generated.lost_samples();
        if lost > 0 {
            let mut by_cause = self.lost_by_cause.lock().unwrap_or_else(|e| e.into_inner());
            for entry in &generated.lost {
                *by_cause.entry(entry.cause).or_default() += u64::from(entry.samples);
            }
        }
        let obtained = generated.answers.len() as u64;
        let required = policy.min_answers.required(asked);
        // The cause that took most of the samples names the failure.
        let worst = generated.lost.iter().max_by_key(|entry| entry.samples);
        let worst = match worst {
            Some(worst) if lost > 0 && obtained < required => worst,
            _ => {
                self.streak.lock().unwrap_or_else(|e| e.into_inner()).cause = None;
                return Ok(());
            }
        };
        add(&self.failed_photos, 1);
        self.extend_streak(worst.cause, &worst.message, policy);
        Err(Error::AnswersLost {
            image_id: image_id.to_owned(),
            asked,
            obtained,
            required,
            cause: worst.cause,
            message: worst.message.clone(),
        })
    }

    /// One more photo failed for `cause`; halts after enough persistent failures in a row.
    fn extend_streak(&self, cause: LossCause, message: &str, policy: &AnswerPolicy) {
        let mut streak = self.streak.lock().unwrap_or_else(|e| e.into_inner());
        if streak.cause == Some(cause) {
            streak.photos += 1;
        } else {
            *streak = Streak {
                cause: Some(cause),
                photos: 1,
            };
        }
        if cause.is_persistent()
            && policy.stop_after_failed_photos > 0
            && streak.photos >= policy.stop_after_failed_photos
        {
            // The first halt stays: later photos are never sent, so none can replace it.
            let _ = self.halt.set(GenerationHalt {
                cause,
                photos: streak.photos,
                message: message.to_owned(),
            });
        }
    }

    /// The report so far, with the generator's own description and usage.
    pub(super) fn report(&self, generator: &dyn g3_core::LmmGenerator) -> GenerationReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let lost_by_cause = self
            .lost_by_cause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        GenerationReport {
            generator: generator.describe(),
            photos: load(&self.photos),
            failed_photos: load(&self.failed_photos),
            answers_asked: load(&self.asked),
            answers_obtained: load(&self.obtained),
            answers_rejected: load(&self.rejected),
            answers_lost: lost_by_cause.values().sum(),
            lost_by_cause,
            usage: generator.usage(),
            halted: self.halt.get().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use g3_core::{LmmAnswer, LostAnswers};

    use super::*;

    #[test]
    fn min_answers_reads_words_counts_and_fractions() {
        #[derive(Deserialize, Serialize)]
        struct Holder {
            min_answers: MinAnswers,
        }
        let read = |text: &str| toml::from_str::<Holder>(text).map(|holder| holder.min_answers);
        assert_eq!(read("min_answers = \"all\"").unwrap(), MinAnswers::All);
        assert_eq!(read("min_answers = 15").unwrap(), MinAnswers::Count(15));
        assert_eq!(
            read("min_answers = 0.75").unwrap(),
            MinAnswers::Fraction(0.75)
        );
        let error = read("min_answers = \"most\"").unwrap_err().to_string();
        assert!(
            error.contains("\"most\"") && error.contains("fraction"),
            "{error}"
        );
        assert!(MinAnswers::Fraction(1.5).validate().is_err());
        assert!(MinAnswers::Fraction(f64::NAN).validate().is_err());
        for value in [
            MinAnswers::All,
            MinAnswers::Count(3),
            MinAnswers::Fraction(0.5),
        ] {
            let text = toml::to_string(&Holder { min_answers: value }).unwrap();
            assert_eq!(read(&text).unwrap(), value, "{text}");
        }
    }

    #[test]
    fn required_answers_round_up_and_never_exceed_the_asked() {
        assert_eq!(MinAnswers::All.required(20), 20);
        assert_eq!(MinAnswers::Count(15).required(20), 15);
        assert_eq!(MinAnswers::Count(50).required(20), 20);
        assert_eq!(MinAnswers::Fraction(0.75).required(20), 15);
        assert_eq!(MinAnswers::Fraction(0.76).required(20), 16);
        assert_eq!(MinAnswers::Fraction(0.0).required(20), 0);
    }

    fn answers(obtained: usize, lost: u32, cause: LossCause) -> GeneratedAnswers {
        GeneratedAnswers {
            answers: (0..obtained)
                .map(|sample| LmmAnswer {
                    prompt_index: 0,
                    sample_index: sample as u32,
                    text: String::new(),
                })
                .collect(),
            lost: (lost > 0)
                .then(|| LostAnswers {
                    prompt_index: 1,
                    samples: lost,
                    cause,
                    message: "connection refused".into(),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn lost_answers_fail_a_photo_unless_enough_arrived() {
        let account = GenerationAccount::default();
        let strict = AnswerPolicy::default();
        let error = account
            .judge(
                "a.jpg",
                10,
                &answers(9, 1, LossCause::RetriesExhausted),
                0,
                &strict,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::AnswersLost {
                    obtained: 9,
                    required: 10,
                    ..
                }
            ),
            "{error}"
        );
        let partial = AnswerPolicy {
            min_answers: MinAnswers::Fraction(0.5),
            ..strict
        };
        account
            .judge(
                "b.jpg",
                10,
                &answers(5, 5, LossCause::RetriesExhausted),
                2,
                &partial,
            )
            .unwrap();
        // Declined answers (nothing lost) never fail a photo.
        account
            .judge("c.jpg", 10, &answers(3, 0, LossCause::Other), 0, &strict)
            .unwrap();
        let report = account.report(&g3_prompt::DensityPeakGenerator::default());
        assert_eq!(report.photos, 3);
        assert_eq!(report.failed_photos, 1);
        assert_eq!(report.answers_asked, 30);
        assert_eq!(report.answers_obtained, 17);
        assert_eq!(report.answers_rejected, 2);
        assert_eq!(report.answers_lost, 6);
        assert_eq!(report.lost_by_cause[&LossCause::RetriesExhausted], 6);
        assert!(report.halted.is_none(), "temporary causes never halt");
    }

    #[test]
    fn persistent_failures_in_a_row_halt_and_a_success_resets_the_streak() {
        let account = GenerationAccount::default();
        let policy = AnswerPolicy::default();
        let down = answers(0, 5, LossCause::Unreachable);
        for photo in ["a", "b"] {
            assert!(account.judge(photo, 5, &down, 0, &policy).is_err());
        }
        account
            .judge("ok", 5, &answers(5, 0, LossCause::Other), 0, &policy)
            .unwrap();
        for photo in ["c", "d"] {
            assert!(account.judge(photo, 5, &down, 0, &policy).is_err());
        }
        assert!(
            account.halted().is_none(),
            "the streak restarted after the success"
        );
        // Another cause restarts it too.
        assert!(
            account
                .judge("e", 5, &answers(0, 5, LossCause::Unauthorized), 0, &policy)
                .is_err()
        );
        assert!(account.halted().is_none());
        for photo in ["f", "g", "h"] {
            assert!(account.judge(photo, 5, &down, 0, &policy).is_err());
        }
        let halt = account.halted().expect("three unreachable photos in a row");
        assert_eq!((halt.cause, halt.photos), (LossCause::Unreachable, 3));
        assert!(halt.to_string().contains("connection refused"), "{halt}");
    }
}

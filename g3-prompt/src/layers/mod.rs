//! Behaviour that wraps a generator, as tower's layers wrap a service: each wrapper takes any
//! [`LmmGenerator`] and is one itself, so a local or offline generator gets the answer
//! cache, retries, a pace and a concurrency limit as the OpenAI client does.
//!
//! - [`CachedGenerator`]: answers found in a [`ResponseCache`](crate::ResponseCache) are
//!   never asked for again;
//! - [`RetryingGenerator`]: lost samples whose cause the caller deems temporary are asked
//!   for again under a [`RetryPolicy`](g3_core::retry::RetryPolicy);
//! - [`PacedGenerator`]: calls spread evenly over the minute;
//! - [`ConcurrencyLimitedGenerator`]: at most so many calls at once, over every caller.
//!
//! The OpenAI client works per HTTP request rather than per call, so it uses the same
//! mechanisms one level down: [`SampleSlots`] for its cache lookups, [`Pace`] and
//! [`ConcurrencyLimit`] around each request, and the shared retry policy for each request.
//!
//! ```
//! use std::num::NonZeroU32;
//! use g3_core::{ImageInput, LmmGenerator, PromptRequest};
//! use g3_prompt::{CachedGenerator, DensityPeakGenerator, PacedGenerator, ResponseCache};
//!
//! let directory = tempfile::tempdir()?;
//! let cache = ResponseCache::open(directory.path().join("answers.redb"))?;
//! let generator = CachedGenerator::new(
//!     PacedGenerator::new(DensityPeakGenerator::default(), NonZeroU32::new(600).unwrap()),
//!     cache,
//! );
//! let image = ImageInput::from_bytes("query.jpg", vec![0xFF, 0xD8, 0xFF]);
//! let prompts: Vec<PromptRequest> = Vec::new();
//! assert!(generator.generate(&image, &prompts)?.answers.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod limit;
mod pace;
mod retry;
mod slots;

pub use cache::CachedGenerator;
pub(crate) use limit::ConcurrencyLimit;
pub use limit::ConcurrencyLimitedGenerator;
pub(crate) use pace::Pace;
pub use pace::PacedGenerator;
pub use retry::RetryingGenerator;
pub(crate) use slots::SampleSlots;

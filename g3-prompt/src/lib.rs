//! Geo-diversification: prompts, large multimodal models and their answers.
//!
//! Today this crate holds the answer parsers, implementations of [`g3_core::AnswerParser`]:
//! [`RobustAnswerParser`] (JSON, labels, hemispheres, DMS; a typed reason when it finds
//! nothing) and [`ReferenceAnswerParser`] (G3's regex, with its (0, 0) fallback available
//! for faithful reproductions). The prompt ensembles ([`g3_core::PromptEnsemble`]) and LMM
//! clients ([`g3_core::LmmGenerator`]) come with their issue.
//!
//! ```
//! use g3_core::AnswerParser;
//! use g3_prompt::RobustAnswerParser;
//!
//! let answer = "```json\n{\"latitude\": 48.8584, \"longitude\": 2.2945}\n```";
//! let point = RobustAnswerParser.parse(answer)?;
//! assert_eq!((point.lat_deg(), point.lon_deg()), (48.8584, 2.2945));
//! assert!(RobustAnswerParser.parse("I'm sorry, I can't help with that.").is_err());
//! # Ok::<(), g3_core::RejectionReason>(())
//! ```
#![deny(missing_docs)]

mod parser;

pub use parser::{AnswerRejection, ReferenceAnswerParser, RobustAnswerParser, parse_coordinates};

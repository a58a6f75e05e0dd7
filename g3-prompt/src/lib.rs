//! Geo-diversification: prompts, large multimodal models and their answers.
//!
//! This crate will hold implementations of [`g3_core::PromptEnsemble`] (the paper's four
//! retrieval-augmented prompts), [`g3_core::LmmGenerator`] (an OpenAI-compatible client and
//! an offline generator) and [`g3_core::AnswerParser`]. The crate is empty until those land.
#![deny(missing_docs)]

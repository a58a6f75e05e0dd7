//! The facade's test fixtures (tiny models, fixture databases), and `g3 serve` started as a
//! process.
#![allow(dead_code)] // each test binary uses a different part

#[path = "../../../tests/support/mod.rs"]
mod fixtures;
pub mod serve;

pub use fixtures::*;

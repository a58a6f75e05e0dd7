//! Arbitrary model output through every answer parser: no panic, and every accepted
//! answer is a valid point that the robust parser reads back from its own rendering.
//!
//! Run with `cargo +nightly fuzz run answer_parser -- -max_total_time=300` from
//! `g3-prompt/`.
#![no_main]

use g3_core::AnswerParser;
use g3_prompt::{ReferenceAnswerParser, RobustAnswerParser, parse_coordinates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for parsed in [
        RobustAnswerParser.parse(&text),
        ReferenceAnswerParser::default().parse(&text),
    ] {
        if let Ok(point) = parsed {
            assert!((-90.0..=90.0).contains(&point.lat_deg()), "{point:?}");
            assert!((-180.0..180.0).contains(&point.lon_deg()), "{point:?}");
            let rendered = format!(
                r#"{{"latitude": {},"longitude": {}}}"#,
                point.lat_deg(),
                point.lon_deg()
            );
            assert_eq!(RobustAnswerParser.parse(&rendered), Ok(point));
        }
    }
    let _ = parse_coordinates(&text);
});

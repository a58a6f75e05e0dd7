//! Reading coordinates out of an LMM's answer.
//!
//! G3's reference takes the first two decimal numbers of the answer (regex `[-+]?\d+\.\d+`)
//! and substitutes (0, 0) when there are fewer, which silently turns every refusal into a
//! candidate in the Gulf of Guinea. [`RobustAnswerParser`] reads JSON (also inside code fences
//! or prose), labelled values ("latitude: ..."), hemispheres, degree signs and
//! degrees-minutes-seconds, validates ranges, and otherwise says why it found nothing.
//! [`ReferenceAnswerParser`] reproduces the reference exactly, for ablations.

use std::sync::LazyLock;

use g3_core::{AnswerParser, GeoPoint, RejectionReason};
use regex::Regex;
use serde_json::Value;

/// Why no location could be read from an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerRejection {
    /// The answer is empty or white space.
    #[error("the answer is empty")]
    Empty,
    /// The model declined to answer ("I'm sorry, I can't ...") and gave no coordinates.
    #[error("the model refused to answer")]
    Refusal,
    /// No number that could be a coordinate.
    #[error("no coordinates in the answer")]
    NoCoordinates,
    /// Only one coordinate-like number.
    #[error("only one coordinate in the answer ({value})")]
    OnlyOneCoordinate {
        /// The number found.
        value: f64,
    },
    /// A latitude outside [-90, 90].
    #[error("latitude {lat_deg} is outside [-90, 90]")]
    LatitudeOutOfRange {
        /// The value read.
        lat_deg: f64,
    },
    /// A longitude outside [-180, 180].
    #[error("longitude {lon_deg} is outside [-180, 180]")]
    LongitudeOutOfRange {
        /// The value read.
        lon_deg: f64,
    },
}

impl From<AnswerRejection> for RejectionReason {
    fn from(rejection: AnswerRejection) -> Self {
        RejectionReason(rejection.to_string())
    }
}

/// The parser g3-rs uses by default; see the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RobustAnswerParser;

impl AnswerParser for RobustAnswerParser {
    fn parse(&self, answer: &str) -> Result<GeoPoint, RejectionReason> {
        parse_coordinates(answer).map_err(RejectionReason::from)
    }
}

/// G3's reference parser: the first two matches of `[-+]?\d+\.\d+` as (latitude, longitude).
///
/// With `fallback: Some(point)` a failure yields that point, as the reference does with
/// (0, 0); with `None` it is rejected. Out-of-range numbers are rejected either way, since a
/// [`GeoPoint`] cannot hold them (the reference's later clean-up replaces them by 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReferenceAnswerParser {
    /// What a failed parse yields, if anything.
    pub fallback: Option<GeoPoint>,
}

impl AnswerParser for ReferenceAnswerParser {
    fn parse(&self, answer: &str) -> Result<GeoPoint, RejectionReason> {
        decimal_pair(answer, DecimalPair::First, self.fallback)
    }
}

/// GeoRanker's parser (`compile_prediction_candidates.py`): the *last* two matches of
/// `[-+]?\d+\.\d+` as (latitude, longitude), so that an answer that thinks aloud before its
/// JSON is read at its conclusion.
///
/// With `fallback: Some(point)` a failure (fewer than two numbers, or numbers out of range)
/// yields that point, as the reference does with (0, 0); with `None` (the default) it is
/// rejected and reported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GeoRankerAnswerParser {
    /// What a failed parse yields, if anything.
    pub fallback: Option<GeoPoint>,
}

impl AnswerParser for GeoRankerAnswerParser {
    fn parse(&self, answer: &str) -> Result<GeoPoint, RejectionReason> {
        decimal_pair(answer, DecimalPair::Last, self.fallback)
    }
}

/// Which two decimal numbers of an answer are the coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecimalPair {
    First,
    Last,
}

/// Two matches of `[-+]?\d+\.\d+` as (latitude, longitude), or `fallback` on failure.
fn decimal_pair(
    answer: &str,
    which: DecimalPair,
    fallback: Option<GeoPoint>,
) -> Result<GeoPoint, RejectionReason> {
    static DECIMAL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[-+]?\d+\.\d+").expect("valid regex"));
    let all: Vec<f64> = DECIMAL
        .find_iter(answer)
        .filter_map(|m| m.as_str().parse().ok())
        .collect();
    let numbers = match which {
        DecimalPair::First => &all[..all.len().min(2)],
        DecimalPair::Last => &all[all.len().saturating_sub(2)..],
    };
    let parsed = match numbers {
        [lat_deg, lon_deg] => checked_point(*lat_deg, *lon_deg),
        [value] => Err(AnswerRejection::OnlyOneCoordinate { value: *value }),
        _ => Err(AnswerRejection::NoCoordinates),
    };
    match (parsed, fallback) {
        (Ok(point), _) => Ok(point),
        (Err(_), Some(fallback)) => Ok(fallback),
        (Err(rejection), None) => Err(rejection.into()),
    }
}

/// Reads a location from free text; see [`RobustAnswerParser`]. Never panics.
pub fn parse_coordinates(answer: &str) -> Result<GeoPoint, AnswerRejection> {
    if answer.trim().is_empty() {
        return Err(AnswerRejection::Empty);
    }
    if let Some(result) = from_json_objects(answer) {
        return result;
    }
    if let Some(result) = from_labels(answer) {
        return result;
    }
    let tokens = coordinate_tokens(answer);
    let with_hemisphere = |axis: Axis| tokens.iter().find(|token| token.axis == Some(axis));
    if let (Some(lat), Some(lon)) = (
        with_hemisphere(Axis::Latitude),
        with_hemisphere(Axis::Longitude),
    ) {
        return checked_point(lat.value, lon.value);
    }
    match tokens.as_slice() {
        [first, second, ..] => checked_point(first.value, second.value),
        [only] => Err(AnswerRejection::OnlyOneCoordinate { value: only.value }),
        [] if looks_like_refusal(answer) => Err(AnswerRejection::Refusal),
        [] => Err(AnswerRejection::NoCoordinates),
    }
}

fn checked_point(lat_deg: f64, lon_deg: f64) -> Result<GeoPoint, AnswerRejection> {
    if !lat_deg.is_finite() || !(-90.0..=90.0).contains(&lat_deg) {
        return Err(AnswerRejection::LatitudeOutOfRange { lat_deg });
    }
    if !lon_deg.is_finite() || !(-180.0..=180.0).contains(&lon_deg) {
        return Err(AnswerRejection::LongitudeOutOfRange { lon_deg });
    }
    GeoPoint::new(lat_deg, lon_deg).map_err(|_| AnswerRejection::LatitudeOutOfRange { lat_deg })
}

fn looks_like_refusal(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    [
        "sorry",
        "cannot",
        "can't",
        "can not",
        "unable",
        "not possible",
        "i apologize",
        "impossible",
    ]
    .iter()
    .any(|cue| lower.contains(cue))
}

/// The first JSON object in the text (at any nesting depth) that holds a latitude and a
/// longitude; `None` when no object does.
fn from_json_objects(answer: &str) -> Option<Result<GeoPoint, AnswerRejection>> {
    for candidate in balanced_objects(answer) {
        if let Ok(value) = serde_json::from_str::<Value>(candidate)
            && let Some(result) = from_json_value(&value, 0)
        {
            return Some(result);
        }
    }
    None
}

fn from_json_value(value: &Value, depth: usize) -> Option<Result<GeoPoint, AnswerRejection>> {
    const MAX_DEPTH: usize = 8;
    let object = value.as_object()?;
    let find = |names: &[&str]| {
        object
            .iter()
            .find(|(key, _)| names.contains(&key.trim().to_lowercase().as_str()))
            .and_then(|(_, value)| json_number(value))
    };
    let lat = find(&["latitude", "lat"]);
    let lon = find(&["longitude", "lon", "lng", "long"]);
    if let (Some(lat), Some(lon)) = (lat, lon) {
        return Some(checked_point(lat, lon));
    }
    if depth < MAX_DEPTH {
        for nested in object.values() {
            if let Some(result) = from_json_value(nested, depth + 1) {
                return Some(result);
            }
        }
    }
    None
}

/// A JSON number, or a string holding one coordinate ("48.85", "48.85° N").
fn json_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => coordinate_tokens(text).first().map(|token| token.value),
        _ => None,
    }
}

/// Substrings from a `{` to its matching `}`, outermost first, ignoring braces in strings.
fn balanced_objects(text: &str) -> Vec<&str> {
    let mut objects = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = text[start..].find('{') {
        let open = start + offset;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        let mut close = None;
        for (index, byte) in bytes.iter().enumerate().skip(open) {
            match (*byte, in_string, escaped) {
                (_, true, true) => escaped = false,
                (b'\\', true, false) => escaped = true,
                (b'"', _, false) => in_string = !in_string,
                (b'{', false, _) => depth += 1,
                (b'}', false, _) => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(index);
                        break;
                    }
                }
                _ => {}
            }
        }
        match close {
            Some(close) => {
                objects.push(&text[open..=close]);
                start = open + 1;
            }
            None => break,
        }
    }
    objects
}

/// "latitude: 48.85 ... longitude: 2.35" in either order.
fn from_labels(answer: &str) -> Option<Result<GeoPoint, AnswerRejection>> {
    static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?i)\b(latitude|lat|longitude|long|lon|lng)\b["']?\s*(?:[:=]|is|of)?\s*"#)
            .expect("valid regex")
    });
    let mut lat = None;
    let mut lon = None;
    for label in LABELLED.captures_iter(answer) {
        let whole = label.get(0)?;
        let Some(token) = coordinate_tokens(&answer[whole.end()..]).into_iter().next() else {
            continue;
        };
        if token.start != 0 {
            continue; // the number must follow the label directly
        }
        let is_latitude = label[1].to_lowercase().starts_with("lat");
        let slot = if is_latitude { &mut lat } else { &mut lon };
        slot.get_or_insert(token.value);
    }
    Some(checked_point(lat?, lon?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Latitude,
    Longitude,
}

/// A number that may be a coordinate, with the sign its hemisphere gives it.
#[derive(Debug, Clone, Copy)]
struct CoordinateToken {
    /// Offset in the text where the token starts.
    start: usize,
    /// Signed decimal degrees.
    value: f64,
    /// Set when a hemisphere letter or word says which axis this is.
    axis: Option<Axis>,
}

/// Every number in the text that can be a coordinate: decimal degrees or
/// degrees-minutes-seconds, with an optional sign, degree sign and hemisphere. Numbers above
/// 180 in magnitude (years, counts) are left out.
fn coordinate_tokens(text: &str) -> Vec<CoordinateToken> {
    static COORDINATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"(?xi)
            (?P<before>\b[NSEW]\s*)?
            (?P<sign>[-+\u{2212}]\s*)?
            \b(?P<degrees>\d+(?:\.\d+)?)
            (?:\s*(?:°|º|˚|\u{00B0}|\bdeg(?:rees?)?\b))?
            (?:\s*(?P<minutes>\d+(?:\.\d+)?)\s*(?:'|′|’|\bmin\b))?
            (?:\s*(?P<seconds>\d+(?:\.\d+)?)\s*(?:"|″|”|''|\bsec\b))?
            (?:\s*(?P<after>\b(?:north|south|east|west|[NSEW])\b))?
            "#,
        )
        .expect("valid regex")
    });
    COORDINATE
        .captures_iter(text)
        .filter_map(|capture| {
            let whole = capture.get(0)?;
            let number = |name: &str| {
                capture
                    .name(name)
                    .and_then(|m| m.as_str().parse::<f64>().ok())
            };
            let mut value = number("degrees")?
                + number("minutes").unwrap_or(0.0) / 60.0
                + number("seconds").unwrap_or(0.0) / 3600.0;
            if !value.is_finite() || value > 180.0 {
                return None;
            }
            if capture
                .name("sign")
                .is_some_and(|sign| !sign.as_str().trim_start().starts_with('+'))
            {
                value = -value;
            }
            let hemisphere = capture
                .name("after")
                .or_else(|| capture.name("before"))
                .map(|m| m.as_str().trim().to_lowercase());
            let axis = match hemisphere.as_deref() {
                Some("n" | "north") => Some(Axis::Latitude),
                Some("s" | "south") => {
                    value = -value.abs();
                    Some(Axis::Latitude)
                }
                Some("e" | "east") => Some(Axis::Longitude),
                Some("w" | "west") => {
                    value = -value.abs();
                    Some(Axis::Longitude)
                }
                _ => None,
            };
            Some(CoordinateToken {
                start: whole.start(),
                value,
                axis,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn georanker_reads_the_last_two_decimals() {
        let parser = GeoRankerAnswerParser::default();
        let answer = r#"Maybe 12.5, 13.5 at first; {"latitude": 48.85,"longitude": 2.35}"#;
        let point = parser.parse(answer).unwrap();
        assert_eq!((point.lat_deg(), point.lon_deg()), (48.85, 2.35));
        let first = ReferenceAnswerParser::default().parse(answer).unwrap();
        assert_eq!((first.lat_deg(), first.lon_deg()), (12.5, 13.5));
        // Out of range or a single number: rejected, or the fallback when one is set.
        assert!(parser.parse("latitude 95.0, longitude 10.0").is_err());
        assert!(parser.parse("only 3.5").is_err());
        let zero = GeoPoint::new(0.0, 0.0).unwrap();
        let lenient = GeoRankerAnswerParser {
            fallback: Some(zero),
        };
        assert_eq!(lenient.parse("no idea").unwrap(), zero);
    }
}

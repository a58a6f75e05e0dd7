//! The answer parsers on realistic LMM answers, and properties over arbitrary text.

use g3_core::{AnswerParser, GeoPoint};
use g3_prompt::{AnswerRejection, ReferenceAnswerParser, RobustAnswerParser, parse_coordinates};
use proptest::prelude::*;

/// What the robust parser must return for an answer.
enum Expected {
    Point(f64, f64),
    Rejected(fn(&AnswerRejection) -> bool),
}
use Expected::{Point, Rejected};

fn refusal(r: &AnswerRejection) -> bool {
    *r == AnswerRejection::Refusal
}
fn nothing(r: &AnswerRejection) -> bool {
    *r == AnswerRejection::NoCoordinates
}
fn empty(r: &AnswerRejection) -> bool {
    *r == AnswerRejection::Empty
}
fn one(r: &AnswerRejection) -> bool {
    matches!(r, AnswerRejection::OnlyOneCoordinate { .. })
}
fn bad_latitude(r: &AnswerRejection) -> bool {
    matches!(r, AnswerRejection::LatitudeOutOfRange { .. })
}

const CASES: &[(&str, Expected)] = &[
    // The format the prompts ask for.
    (
        r#"{"latitude": 48.8584, "longitude": 2.2945}"#,
        Point(48.8584, 2.2945),
    ),
    (
        r#"{"latitude":-33.8568,"longitude":151.2153}"#,
        Point(-33.8568, 151.2153),
    ),
    (
        r#"{"latitude": 40.0, "longitude": -74.0}"#,
        Point(40.0, -74.0),
    ),
    (r#"{"latitude": 35, "longitude": 139}"#, Point(35.0, 139.0)),
    (
        r#"{ "longitude": 2.2945, "latitude": 48.8584 }"#,
        Point(48.8584, 2.2945),
    ),
    (r#"{"Latitude": 1.5, "Longitude": 2.5}"#, Point(1.5, 2.5)),
    (r#"{"lat": 1.5, "lon": 2.5}"#, Point(1.5, 2.5)),
    (r#"{"lat": 1.5, "lng": 2.5}"#, Point(1.5, 2.5)),
    (
        r#"{"latitude": "48.8584", "longitude": "2.2945"}"#,
        Point(48.8584, 2.2945),
    ),
    (
        r#"{"latitude": 1e1, "longitude": -2.5E1}"#,
        Point(10.0, -25.0),
    ),
    // Code fences and prose around JSON.
    (
        "```json\n{\"latitude\": 41.8902, \"longitude\": 12.4922}\n```",
        Point(41.8902, 12.4922),
    ),
    (
        "```\n{\"latitude\": 41.8902, \"longitude\": 12.4922}\n```",
        Point(41.8902, 12.4922),
    ),
    (
        "Here is my best guess:\n{\"latitude\": 51.5007, \"longitude\": -0.1246}",
        Point(51.5007, -0.1246),
    ),
    (
        "Based on the architecture, this looks like Prague. {\"latitude\": 50.0875, \"longitude\": 14.4213} I am fairly confident.",
        Point(50.0875, 14.4213),
    ),
    (
        "{\"location\": {\"latitude\": 19.4326, \"longitude\": -99.1332}, \"confidence\": \"medium\"}",
        Point(19.4326, -99.1332),
    ),
    (
        "{\"answer\": {\"coordinates\": {\"lat\": 37.7749, \"lon\": -122.4194}}}",
        Point(37.7749, -122.4194),
    ),
    (
        "The image shows {a busy street}. {\"latitude\": 13.7563, \"longitude\": 100.5018}",
        Point(13.7563, 100.5018),
    ),
    (
        "{\"city\": \"Paris {France}\", \"latitude\": 48.85, \"longitude\": 2.35}",
        Point(48.85, 2.35),
    ),
    // Broken JSON falls back to text.
    (
        "{'latitude': 45.4642, 'longitude': 9.19}",
        Point(45.4642, 9.19),
    ),
    (
        "{\"latitude\": 45.4642, \"longitude\": 9.19",
        Point(45.4642, 9.19),
    ),
    ("{latitude: 45.4642, longitude: 9.19}", Point(45.4642, 9.19)),
    (
        "{\"latitude\": 45.4642,, \"longitude\": 9.19}",
        Point(45.4642, 9.19),
    ),
    // Labelled values, either order.
    (
        "Latitude: 34.0522, Longitude: -118.2437",
        Point(34.0522, -118.2437),
    ),
    (
        "latitude = 34.0522\nlongitude = -118.2437",
        Point(34.0522, -118.2437),
    ),
    (
        "Longitude: -118.2437, Latitude: 34.0522",
        Point(34.0522, -118.2437),
    ),
    (
        "The longitude is 139.6917 and the latitude is 35.6895.",
        Point(35.6895, 139.6917),
    ),
    ("lat 55.7558, lon 37.6173", Point(55.7558, 37.6173)),
    ("Lat: -22.9068 / Lng: -43.1729", Point(-22.9068, -43.1729)),
    (
        "- **Latitude**: 64.1466\n- **Longitude**: -21.9426",
        Point(64.1466, -21.9426),
    ),
    (
        "| Latitude | Longitude |\n|---|---|\n| 59.3293 | 18.0686 |",
        Point(59.3293, 18.0686),
    ),
    // Plain pairs.
    ("48.8584, 2.2945", Point(48.8584, 2.2945)),
    ("(48.8584, 2.2945)", Point(48.8584, 2.2945)),
    ("[48.8584, 2.2945]", Point(48.8584, 2.2945)),
    ("48.8584 2.2945", Point(48.8584, 2.2945)),
    ("Coordinates: -1.2921, 36.8219", Point(-1.2921, 36.8219)),
    ("My guess is around 52, 13.", Point(52.0, 13.0)),
    ("+40.4168, -3.7038", Point(40.4168, -3.7038)),
    ("\u{2212}33.9249, 18.4241", Point(-33.9249, 18.4241)),
    // Hemispheres and degree signs.
    ("48.8584° N, 2.2945° E", Point(48.8584, 2.2945)),
    ("33.8688° S, 151.2093° E", Point(-33.8688, 151.2093)),
    ("40.7128°N 74.0060°W", Point(40.7128, -74.006)),
    ("22.9068 S, 43.1729 W", Point(-22.9068, -43.1729)),
    ("74.0060° W, 40.7128° N", Point(40.7128, -74.006)),
    ("N 60.1699, E 24.9384", Point(60.1699, 24.9384)),
    (
        "It is about 35.68 degrees north and 139.69 degrees east.",
        Point(35.68, 139.69),
    ),
    ("1.3521 North, 103.8198 East", Point(1.3521, 103.8198)),
    ("12.97 N 77.59 E (Bangalore)", Point(12.97, 77.59)),
    // Degrees, minutes, seconds.
    (
        "48°51'29.6\"N 2°17'40.2\"E",
        Point(
            48.0 + 51.0 / 60.0 + 29.6 / 3600.0,
            2.0 + 17.0 / 60.0 + 40.2 / 3600.0,
        ),
    ),
    (
        "40° 41′ 21″ N, 74° 2′ 40″ W",
        Point(
            40.0 + 41.0 / 60.0 + 21.0 / 3600.0,
            -(74.0 + 2.0 / 60.0 + 40.0 / 3600.0),
        ),
    ),
    (
        "33°51'S 151°12'E",
        Point(-(33.0 + 51.0 / 60.0), 151.0 + 12.0 / 60.0),
    ),
    (
        "27° 10' N, 78° 02' E",
        Point(27.0 + 10.0 / 60.0, 78.0 + 2.0 / 60.0),
    ),
    // Prose with a best guess after hedging.
    (
        "I can't be certain, but my best guess is 41.0082, 28.9784 (Istanbul).",
        Point(41.0082, 28.9784),
    ),
    (
        "This appears to be somewhere in Scandinavia. Best estimate: 59.91, 10.75.",
        Point(59.91, 10.75),
    ),
    (
        "Answer: {\"latitude\": 25.2048, \"longitude\": 55.2708}\nNote: the skyline resembles Dubai.",
        Point(25.2048, 55.2708),
    ),
    (
        "The photo was taken in 2019 near 46.2044, 6.1432.",
        Point(46.2044, 6.1432),
    ),
    // Refusals and empty answers: never (0, 0).
    (
        "I'm sorry, but I can't determine the location of this image.",
        Rejected(refusal),
    ),
    (
        "I cannot help with identifying locations.",
        Rejected(refusal),
    ),
    ("Unable to determine.", Rejected(refusal)),
    (
        "As an AI, it is impossible for me to know where this was taken.",
        Rejected(refusal),
    ),
    ("", Rejected(empty)),
    ("   \n ", Rejected(empty)),
    (
        "The image shows a beach with palm trees.",
        Rejected(nothing),
    ),
    (
        "{\"latitude\": null, \"longitude\": null}",
        Rejected(nothing),
    ),
    // Incomplete or impossible answers.
    ("The latitude is about 45.5.", Rejected(one)),
    (
        "{\"latitude\": 95.0, \"longitude\": 10.0}",
        Rejected(bad_latitude),
    ),
    ("Latitude: -120.5, Longitude: 40.1", Rejected(bad_latitude)),
];

#[test]
fn realistic_answers() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for (answer, expected) in CASES {
        let parsed = parse_coordinates(answer);
        let ok = match (expected, &parsed) {
            (Point(lat, lon), Ok(point)) => {
                (point.lat_deg() - lat).abs() < 1e-9 && (point.lon_deg() - lon).abs() < 1e-9
            }
            (Rejected(is_expected), Err(rejection)) => is_expected(rejection),
            _ => false,
        };
        if !ok {
            failures.push(format!("{answer:?} -> {parsed:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_reference_parser_reproduces_g3() {
    let parser = ReferenceAnswerParser::default();
    let point = parser
        .parse(r#"{"latitude": 48.85, "longitude": 2.35}"#)
        .unwrap();
    assert_eq!((point.lat_deg(), point.lon_deg()), (48.85, 2.35));
    // Integers are not decimals to the reference regex.
    assert!(parser.parse("48, 2").is_err());
    // The reference ignores hemispheres: 33.86° S comes out north.
    let south = parser.parse("33.86° S, 151.21° E").unwrap();
    assert_eq!(south.lat_deg(), 33.86);
    // With the reference's fallback, a refusal becomes (0, 0).
    let faithful = ReferenceAnswerParser {
        fallback: Some(GeoPoint::new(0.0, 0.0).unwrap()),
    };
    let zero = faithful.parse("I'm sorry, I can't.").unwrap();
    assert_eq!((zero.lat_deg(), zero.lon_deg()), (0.0, 0.0));
}

#[test]
fn rejections_become_readable_reasons() {
    let reason = RobustAnswerParser.parse("I'm sorry, I can't.").unwrap_err();
    assert_eq!(reason.to_string(), "the model refused to answer");
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC*") {
        let _ = parse_coordinates(&text);
        let _ = ReferenceAnswerParser::default().parse(&text);
    }

    #[test]
    fn never_panics_on_json_like_text(text in r#"[\{\}\[\]":,0-9.\-+eE NSEWlatongiude°'″]{0,80}"#) {
        let _ = parse_coordinates(&text);
    }

    #[test]
    fn any_formatted_point_reads_back(lat in -90.0..=90.0f64, lon in -180.0..180.0f64) {
        let point = GeoPoint::new(lat, lon).unwrap();
        for answer in [
            format!(r#"{{"latitude": {lat}, "longitude": {lon}}}"#),
            format!("{lat}, {lon}"),
            format!("Latitude: {lat}\nLongitude: {lon}"),
        ] {
            let parsed = parse_coordinates(&answer).unwrap();
            prop_assert!((parsed.lat_deg() - point.lat_deg()).abs() < 1e-9, "{}", answer);
            prop_assert!((parsed.lon_deg() - point.lon_deg()).abs() < 1e-9, "{}", answer);
        }
    }
}

/// Found by the fuzz target: serde_json's default float parser was one ULP off on
/// `2.2944999999999998`; the workspace enables its `float_roundtrip` feature.
#[test]
fn json_numbers_are_read_exactly() {
    let point = RobustAnswerParser
        .parse(r#"{"latitude": 48.858222222222224,"longitude": 2.2944999999999998}"#)
        .unwrap();
    assert_eq!(point.lat_deg(), 48.858222222222224);
    assert_eq!(point.lon_deg(), 2.2944999999999998);
}

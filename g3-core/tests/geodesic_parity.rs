//! WGS84 geodesic distances against geopy's `geodesic` (the distance G3's evaluation uses).
//!
//! Fixture: `tests/fixtures/geodesic_pairs.csv`, written by `tools/goldens/geodesic.py`
//! (geopy 2.5.0, geographiclib 2.1) with random, antipodal, near-polar, antimeridian,
//! sub-metre, equatorial and identical pairs.

use std::collections::BTreeMap;

use g3_core::{DistanceMetric, GeoPoint};

/// Relative tolerance. The acceptance bar is 1e-6; both sides run Karney's algorithm in
/// f64 and agree to about 4e-16, so anything above 1e-10 is a real regression.
/// Distances of zero must be exactly zero.
const MAX_RELATIVE_ERROR: f64 = 1e-10;

#[derive(serde::Deserialize)]
struct Pair {
    lat1: f64,
    lon1: f64,
    lat2: f64,
    lon2: f64,
    geodesic_km: f64,
    case: String,
}

#[test]
fn geodesic_matches_geopy_on_every_golden_pair() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geodesic_pairs.csv"
    );
    let mut reader = csv::Reader::from_path(path).expect("the geodesic fixture is committed");
    let mut worst_by_case: BTreeMap<String, f64> = BTreeMap::new();
    let mut count = 0;
    for (index, row) in reader.deserialize::<Pair>().enumerate() {
        let pair = row.unwrap();
        let from = GeoPoint::new(pair.lat1, pair.lon1).unwrap();
        let to = GeoPoint::new(pair.lat2, pair.lon2).unwrap();
        let ours = DistanceMetric::Geodesic.distance_km(from, to);
        let reversed = DistanceMetric::Geodesic.distance_km(to, from);
        let relative = if pair.geodesic_km == 0.0 {
            assert_eq!(ours, 0.0, "row {index} ({}): identical points", pair.case);
            0.0
        } else {
            (ours - pair.geodesic_km).abs() / pair.geodesic_km
        };
        assert!(
            relative <= MAX_RELATIVE_ERROR,
            "row {index} ({}): ours {ours} km, geopy {} km, relative error {relative:e}",
            pair.case,
            pair.geodesic_km
        );
        assert!(
            (ours - reversed).abs() <= 1e-9 * ours.max(1.0),
            "row {index}: not symmetric"
        );
        let worst = worst_by_case.entry(pair.case).or_default();
        *worst = worst.max(relative);
        count += 1;
    }
    assert!(
        count >= 500,
        "the fixture should hold at least 500 pairs, found {count}"
    );
    for case in [
        "random",
        "antipodal",
        "near-polar",
        "antimeridian",
        "sub-metre",
        "equatorial",
        "identical",
    ] {
        assert!(
            worst_by_case.contains_key(case),
            "the fixture lacks {case} pairs"
        );
    }
    println!("worst relative error by case: {worst_by_case:?}");
}

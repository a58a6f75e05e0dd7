//! The geocoder's nearest place against a full scan of the real GeoNames gazetteer, for
//! points over the whole globe (mostly ocean, where the candidate grid answers) and next to
//! places (where crowded cells fall back to the k-d tree), under both metrics.
//!
//! Needs `scripts/fetch-assets.sh` (the test command runs it); a missing gazetteer fails.

use g3_core::{DistanceMetric, GeoPoint};
use g3_data::{NearestPlaceMetric, ReverseGeocoder};

fn geocoder() -> ReverseGeocoder {
    ReverseGeocoder::load_default().unwrap_or_else(|error| {
        panic!(
            "{error}\nthe gazetteer comes from scripts/fetch-assets.sh (the test command runs it)"
        )
    })
}

/// A Fibonacci spiral over the sphere, then points a few hundred metres from every 800th
/// gazetteer place, then the poles and the antimeridian.
fn queries(geocoder: &ReverseGeocoder) -> Vec<GeoPoint> {
    let count = 300;
    let mut points: Vec<GeoPoint> = (0..count)
        .map(|index| {
            let lat = (1.0 - 2.0 * (index as f64 + 0.5) / count as f64)
                .asin()
                .to_degrees();
            let lon = (index as f64 * 137.507_764_050_037_85) % 360.0 - 180.0;
            GeoPoint::new(lat, lon).unwrap()
        })
        .collect();
    points.extend(geocoder.places().iter().step_by(800).map(|place| {
        let (lat, lon) = (place.location.lat_deg(), place.location.lon_deg());
        GeoPoint::new((lat + 0.003).min(90.0), (lon - 0.002).max(-180.0)).unwrap()
    }));
    for (lat, lon) in [
        (90.0, 0.0),
        (-90.0, 0.0),
        (0.0, 180.0),
        (-16.0, -180.0),
        (65.9, -169.0),
    ] {
        points.push(GeoPoint::new(lat, lon).unwrap());
    }
    points
}

#[test]
fn great_circle_nearest_equals_a_full_scan() {
    let geocoder = geocoder();
    for point in queries(&geocoder) {
        let found = geocoder.nearest(point);
        let best = geocoder
            .places()
            .iter()
            .map(|place| DistanceMetric::Haversine.distance_km(point, place.location))
            .fold(f64::INFINITY, f64::min);
        let found_haversine = DistanceMetric::Haversine.distance_km(point, found.place.location);
        assert!(
            (found_haversine - best).abs() < 1e-6 && (found.distance_km - best).abs() < 1e-6,
            "{point:?}: found {} at {found_haversine} km, the nearest is {best} km away",
            found.place.name
        );
    }
}

#[test]
fn planar_nearest_equals_a_full_scan() {
    let geocoder = geocoder().with_metric(NearestPlaceMetric::PlanarDegrees);
    let planar = |point: GeoPoint, other: GeoPoint| {
        (point.lat_deg() - other.lat_deg()).powi(2) + (point.lon_deg() - other.lon_deg()).powi(2)
    };
    for point in queries(&geocoder) {
        let found = geocoder.nearest(point);
        let best = geocoder
            .places()
            .iter()
            .map(|place| planar(point, place.location))
            .fold(f64::INFINITY, f64::min);
        assert_eq!(
            planar(point, found.place.location),
            best,
            "{point:?}: found {}",
            found.place.name
        );
    }
}

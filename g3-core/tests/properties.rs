//! Property tests of points and distances.

use g3_core::{
    DistanceMetric, GeoPoint, MEAN_EARTH_RADIUS_KM, WGS84_HALF_MERIDIAN_KM, normalize_longitude_deg,
};
use proptest::prelude::*;

fn any_point() -> impl Strategy<Value = GeoPoint> {
    (-90.0..=90.0f64, -1000.0..1000.0f64).prop_map(|(lat, lon)| GeoPoint::new(lat, lon).unwrap())
}

fn any_metric() -> impl Strategy<Value = DistanceMetric> {
    prop_oneof![
        Just(DistanceMetric::Geodesic),
        Just(DistanceMetric::Haversine)
    ]
}

proptest! {
    #[test]
    fn longitude_normalisation_is_idempotent_and_in_range(lon in -1e6..1e6f64) {
        let once = normalize_longitude_deg(lon);
        prop_assert!((-180.0..180.0).contains(&once), "{lon} -> {once}");
        prop_assert_eq!(normalize_longitude_deg(once).to_bits(), once.to_bits());
        // The wrapped value is the same meridian.
        let turns = (lon - once) / 360.0;
        prop_assert!((turns - turns.round()).abs() < 1e-9, "{lon} -> {once}");
    }

    #[test]
    fn a_point_survives_a_round_trip_through_text(point in any_point()) {
        prop_assert_eq!(point.to_string().parse::<GeoPoint>().unwrap(), point);
        let bare = format!("{},{}", point.lat_deg(), point.lon_deg());
        prop_assert_eq!(bare.parse::<GeoPoint>().unwrap(), point);
    }

    #[test]
    fn distance_is_symmetric(a in any_point(), b in any_point(), metric in any_metric()) {
        let forward = metric.distance_km(a, b);
        let backward = metric.distance_km(b, a);
        prop_assert!((forward - backward).abs() <= 1e-9 * forward.max(1.0), "{forward} vs {backward}");
    }

    #[test]
    fn distance_to_itself_is_zero(a in any_point(), metric in any_metric()) {
        prop_assert_eq!(metric.distance_km(a, a), 0.0);
    }

    #[test]
    fn distance_is_bounded_by_half_the_circumference(a in any_point(), b in any_point()) {
        let geodesic = DistanceMetric::Geodesic.distance_km(a, b);
        prop_assert!((0.0..=WGS84_HALF_MERIDIAN_KM * (1.0 + 1e-12)).contains(&geodesic), "{geodesic}");
        let haversine = DistanceMetric::Haversine.distance_km(a, b);
        let half_great_circle = std::f64::consts::PI * MEAN_EARTH_RADIUS_KM;
        prop_assert!((0.0..=half_great_circle * (1.0 + 1e-12)).contains(&haversine), "{haversine}");
        // The sphere is a good approximation of the ellipsoid: within 0.6%.
        prop_assert!((geodesic - haversine).abs() <= 0.006 * geodesic.max(1.0), "{geodesic} vs {haversine}");
    }
}

//! Distances between [`GeoPoint`]s in kilometres.

use geo::{Distance, Geodesic, Haversine};
use serde::{Deserialize, Serialize};

use crate::point::GeoPoint;

/// Mean Earth radius used by [`DistanceMetric::Haversine`], in km (IUGG mean radius R1,
/// the value the `geo` crate uses).
pub const MEAN_EARTH_RADIUS_KM: f64 = 6371.0088;

/// The longest geodesic on the WGS84 ellipsoid, pole to pole along a meridian, in km.
/// No [`DistanceMetric::Geodesic`] distance exceeds it.
pub const WGS84_HALF_MERIDIAN_KM: f64 = 20_003.931_458_625;

/// How to measure the distance between two points on the Earth.
///
/// A metric is a value, so configurations can name it and callers can pass it around:
///
/// ```
/// use g3_core::{DistanceMetric, GeoPoint};
///
/// let paris = GeoPoint::new(48.8566, 2.3522)?;
/// let london = GeoPoint::new(51.5074, -0.1278)?;
/// let km = DistanceMetric::Geodesic.distance_km(paris, london);
/// assert!((km - 343.9).abs() < 0.5);
/// # Ok::<(), g3_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DistanceMetric {
    /// Shortest path on the WGS84 ellipsoid (Karney's algorithm, accurate to nanometres).
    /// This is what G3's evaluation uses (geopy's `geodesic`), hence the default.
    #[default]
    Geodesic,
    /// Great-circle distance on a sphere of radius [`MEAN_EARTH_RADIUS_KM`]. About 20 times
    /// faster than [`DistanceMetric::Geodesic`] and up to about 0.5% off it.
    Haversine,
}

impl DistanceMetric {
    /// Distance between `from` and `to` in kilometres. Symmetric, zero for identical points.
    pub fn distance_km(self, from: GeoPoint, to: GeoPoint) -> f64 {
        let metres = match self {
            DistanceMetric::Geodesic => Geodesic.distance(from.to_geo(), to.to_geo()),
            DistanceMetric::Haversine => Haversine.distance(from.to_geo(), to.to_geo()),
        };
        metres / 1000.0
    }
}

impl GeoPoint {
    /// WGS84 geodesic distance to `other` in km; see [`DistanceMetric::Geodesic`].
    pub fn geodesic_distance_km(self, other: GeoPoint) -> f64 {
        DistanceMetric::Geodesic.distance_km(self, other)
    }

    /// Great-circle distance to `other` in km; see [`DistanceMetric::Haversine`].
    pub fn haversine_distance_km(self, other: GeoPoint) -> f64 {
        DistanceMetric::Haversine.distance_km(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn point(lat_deg: f64, lon_deg: f64) -> GeoPoint {
        GeoPoint::new(lat_deg, lon_deg).unwrap()
    }

    #[test]
    fn pole_to_pole_is_the_half_meridian() {
        let km = point(90.0, 0.0).geodesic_distance_km(point(-90.0, 0.0));
        assert_relative_eq!(km, WGS84_HALF_MERIDIAN_KM, max_relative = 1e-12);
    }

    #[test]
    fn haversine_uses_the_mean_radius() {
        let quarter = point(0.0, 0.0).haversine_distance_km(point(0.0, 90.0));
        assert_relative_eq!(
            quarter,
            MEAN_EARTH_RADIUS_KM * std::f64::consts::FRAC_PI_2,
            max_relative = 1e-12
        );
    }

    #[test]
    fn crossing_the_antimeridian_takes_the_short_way() {
        let km = point(0.0, 179.5).geodesic_distance_km(point(0.0, -179.5));
        assert!((km - 111.32).abs() < 0.01, "{km}");
    }

    #[test]
    fn metric_serialises_in_kebab_case() {
        assert_eq!(
            serde_json::to_string(&DistanceMetric::Haversine).unwrap(),
            "\"haversine\""
        );
    }
}

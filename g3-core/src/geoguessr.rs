//! The GeoGuessr score, as OSV-5M (CVPR 2024) and PIGEON report it: 5000 · exp(−d / 1492.7)
//! points per photo, d in km, averaged over photos. d is OSV-5M's haversine: a sphere of
//! radius 6371 km, `2R · atan2(√a, √(1 − a))`, whatever distance the accuracy thresholds use,
//! so that scores compare with published ones.

use crate::point::GeoPoint;

/// The score's distance scale in km.
pub const GEOGUESSR_SCALE_KM: f64 = 1492.7;

/// The most points a photo earns (an exact guess).
pub const GEOGUESSR_MAX_POINTS: f64 = 5000.0;

/// The Earth radius of OSV-5M's haversine, in km.
pub const OSV5M_EARTH_RADIUS_KM: f64 = 6371.0;

/// OSV-5M's haversine distance in km between two points.
pub fn osv5m_haversine_km(from: GeoPoint, to: GeoPoint) -> f64 {
    let (lat1, lat2) = (from.lat_deg().to_radians(), to.lat_deg().to_radians());
    let half_lat = (lat2 - lat1) / 2.0;
    let half_lon = (to.lon_deg() - from.lon_deg()).to_radians() / 2.0;
    let a = half_lat.sin().powi(2) + lat1.cos() * lat2.cos() * half_lon.sin().powi(2);
    OSV5M_EARTH_RADIUS_KM * 2.0 * a.sqrt().atan2((1.0 - a).sqrt())
}

/// Points for a guess `distance_km` away: 5000 · exp(−d / 1492.7).
pub fn geoguessr_points(distance_km: f64) -> f64 {
    GEOGUESSR_MAX_POINTS * (-distance_km / GEOGUESSR_SCALE_KM).exp()
}

/// Points for predicting `prediction` where the photo was taken at `truth`.
pub fn geoguessr_score(truth: GeoPoint, prediction: GeoPoint) -> f64 {
    geoguessr_points(osv5m_haversine_km(truth, prediction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_guess_scores_5000_and_the_scale_is_e_folding() {
        let paris = GeoPoint::new(48.8566, 2.3522).unwrap();
        assert_eq!(geoguessr_score(paris, paris), 5000.0);
        approx::assert_relative_eq!(
            geoguessr_points(GEOGUESSR_SCALE_KM),
            5000.0 / std::f64::consts::E,
            max_relative = 1e-15
        );
        // One degree of latitude on a 6371 km sphere.
        let north = GeoPoint::new(49.8566, 2.3522).unwrap();
        approx::assert_relative_eq!(
            osv5m_haversine_km(paris, north),
            OSV5M_EARTH_RADIUS_KM * 1f64.to_radians(),
            max_relative = 1e-12
        );
    }
}

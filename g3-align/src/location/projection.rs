//! Map projections that turn latitude/longitude into the 2-d input of the location encoder.
//!
//! G3 and GeoCLIP feed their random-Fourier-feature capsules different planar coordinates:
//! G3 uses Web Mercator (EPSG:3857), GeoCLIP the Equal Earth projection. Both are
//! reproduced here in the floating-point precision the reference computes them in, because
//! the σ = 2^8 capsule multiplies its input by numbers in the hundreds before taking sines:
//! an input rounding of 1e-7 already moves its output by about 1e-5.

use g3_core::GeoPoint;
use serde::{Deserialize, Serialize};

/// Turns points into the `[n, 2]` float32 input of a [`LocationEncoder`](super::LocationEncoder).
///
/// Implement it to try another projection; the encoder does not care which one produced its
/// input, only that values stay within a few units of zero (the RFF frequencies of the
/// pretrained weights assume inputs roughly in [-1, 1]).
pub trait Projection: Send + Sync {
    /// The encoder input for one point: two numbers, in the order the encoder was trained on.
    fn project(&self, point: GeoPoint) -> [f32; 2];

    /// The encoder input for many points, row-major `[n, 2]`.
    fn project_all(&self, points: &[GeoPoint]) -> Vec<f32> {
        points
            .iter()
            .flat_map(|point| self.project(*point))
            .collect()
    }
}

/// Web Mercator (EPSG:3857) as G3 feeds it: `[northing, easting] / 20037508.3427892`.
///
/// The reference casts latitude and longitude to float32, projects with pyproj in float64
/// (`x = R·λ`, `y = R·ln(tan(π/4 + φ/2))`, R = 6378137 m, which PROJ evaluates as
/// `R·asinh(tan φ)`), casts the result to float32 and divides by the half-circumference in
/// float32; this does the same, with PROJ's formula, and so matches pyproj bit for bit.
/// The output lies in [-1, 1] for both components.
///
/// Latitudes are clamped to ±[`MercatorProjection::MAX_LATITUDE_DEG`] (the limit of Web
/// Mercator maps, where the square map ends) so that the poles map to ±1 instead of infinity.
/// The reference does not clamp and produces an infinite northing, and so a NaN embedding, at
/// the poles; no photo in its datasets is taken beyond 85°.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MercatorProjection;

impl MercatorProjection {
    /// Radius of the sphere used by EPSG:3857, in metres (the WGS84 semi-major axis).
    pub const EARTH_RADIUS_M: f64 = 6_378_137.0;
    /// Half the equator of that sphere, in metres: the scale G3 divides by.
    pub const HALF_CIRCUMFERENCE_M: f64 = 20_037_508.342_789_2;
    /// Latitude at which a square Web Mercator map ends, in degrees: atan(sinh(π)).
    pub const MAX_LATITUDE_DEG: f64 = 85.051_128_779_806_59;
}

impl Projection for MercatorProjection {
    fn project(&self, point: GeoPoint) -> [f32; 2] {
        let lat_deg = f64::from(point.lat_deg() as f32)
            .clamp(-Self::MAX_LATITUDE_DEG, Self::MAX_LATITUDE_DEG);
        let lon_deg = f64::from(point.lon_deg() as f32);
        let easting_m = Self::EARTH_RADIUS_M * lon_deg.to_radians();
        let northing_m = Self::EARTH_RADIUS_M * lat_deg.to_radians().tan().asinh();
        let scale = Self::HALF_CIRCUMFERENCE_M as f32;
        [northing_m as f32 / scale, easting_m as f32 / scale]
    }
}

/// The Equal Earth projection (Šavrič, Patterson and Jenny, 2018) as GeoCLIP feeds it:
/// `[x, y] · 66.50336 / 180`, with θ = asin(√3/2 · sin φ),
/// `x = 2√3 λ cos θ / (3 (9 A4 θ⁸ + 7 A3 θ⁶ + 3 A2 θ² + A1))` and
/// `y = A4 θ⁹ + A3 θ⁷ + A2 θ³ + A1 θ`.
///
/// Computed in float32, operation by operation as GeoCLIP's PyTorch code does (Python
/// constants folded in float64 first, powers 2 and 3 as products, other powers with `powf`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EqualEarthProjection;

impl EqualEarthProjection {
    /// Polynomial coefficients of the projection.
    pub const A1: f64 = 1.340264;
    /// See [`EqualEarthProjection::A1`].
    pub const A2: f64 = -0.081106;
    /// See [`EqualEarthProjection::A1`].
    pub const A3: f64 = 0.000893;
    /// See [`EqualEarthProjection::A1`].
    pub const A4: f64 = 0.003796;
    /// GeoCLIP's scale factor, applied before dividing by 180.
    pub const SCALE_FACTOR: f64 = 66.50336;
}

impl Projection for EqualEarthProjection {
    fn project(&self, point: GeoPoint) -> [f32; 2] {
        use EqualEarthProjection as E;
        let degrees_to_radians = (std::f64::consts::PI / 180.0) as f32;
        let latitude = point.lat_deg() as f32 * degrees_to_radians;
        let longitude = point.lon_deg() as f32 * degrees_to_radians;
        let sqrt_3 = 3.0f32.sqrt();
        let theta = ((sqrt_3 / 2.0) * latitude.sin()).asin();
        let theta_2 = theta * theta;
        let theta_3 = theta * theta * theta;
        let denominator = 3.0
            * ((9.0 * E::A4) as f32 * theta.powf(8.0)
                + (7.0 * E::A3) as f32 * theta.powf(6.0)
                + (3.0 * E::A2) as f32 * theta_2
                + E::A1 as f32);
        let x = (2.0 * sqrt_3 * longitude * theta.cos()) / denominator;
        let y = E::A4 as f32 * theta.powf(9.0)
            + E::A3 as f32 * theta.powf(7.0)
            + E::A2 as f32 * theta_3
            + E::A1 as f32 * theta;
        let scale = E::SCALE_FACTOR as f32;
        [x * scale / 180.0, y * scale / 180.0]
    }
}

/// The projections a configuration or the command line can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProjectionKind {
    /// [`MercatorProjection`], G3's choice.
    #[default]
    Mercator,
    /// [`EqualEarthProjection`], GeoCLIP's choice.
    EqualEarth,
}

impl Projection for ProjectionKind {
    fn project(&self, point: GeoPoint) -> [f32; 2] {
        match self {
            ProjectionKind::Mercator => MercatorProjection.project(point),
            ProjectionKind::EqualEarth => EqualEarthProjection.project(point),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lat_deg: f64, lon_deg: f64) -> GeoPoint {
        GeoPoint::new(lat_deg, lon_deg).unwrap()
    }

    #[test]
    fn mercator_puts_northing_first_and_spans_minus_one_to_one() {
        assert_eq!(MercatorProjection.project(point(0.0, 0.0)), [0.0, 0.0]);
        let [northing, easting] = MercatorProjection.project(point(0.0, -180.0));
        assert_eq!(northing, 0.0);
        assert!((easting + 1.0).abs() < 1e-6);
        for lat in [90.0, -90.0] {
            let [northing, _] = MercatorProjection.project(point(lat, 0.0));
            assert!(
                northing.is_finite() && (northing.abs() - 1.0).abs() < 1e-6,
                "{northing}"
            );
        }
        let [northing, _] = MercatorProjection.project(point(45.0, 0.0));
        // ln(tan(67.5°)) / π
        assert!((northing - 0.280_549_4).abs() < 1e-6, "{northing}");
    }

    #[test]
    fn equal_earth_puts_easting_first_and_is_odd_symmetric() {
        let [x, y] = EqualEarthProjection.project(point(30.0, 60.0));
        let [x_mirror, y_mirror] = EqualEarthProjection.project(point(-30.0, -60.0));
        assert_eq!((x, y), (-x_mirror, -y_mirror));
        assert!(x > 0.0 && y > 0.0);
        // At the equator y = 0 and x is proportional to longitude.
        let [x_equator, y_equator] = EqualEarthProjection.project(point(0.0, 90.0));
        assert_eq!(y_equator, 0.0);
        let expected = 2.0 * 3f64.sqrt() * std::f64::consts::FRAC_PI_2
            / (3.0 * EqualEarthProjection::A1)
            * EqualEarthProjection::SCALE_FACTOR
            / 180.0;
        assert!((f64::from(x_equator) - expected).abs() < 1e-6);
    }

    #[test]
    fn projection_kind_dispatches_and_serialises() {
        let p = point(12.5, -45.0);
        assert_eq!(
            ProjectionKind::Mercator.project(p),
            MercatorProjection.project(p)
        );
        assert_eq!(
            ProjectionKind::EqualEarth.project(p),
            EqualEarthProjection.project(p)
        );
        assert_eq!(ProjectionKind::EqualEarth.project_all(&[p, p]).len(), 4);
        assert_eq!(
            serde_json::to_string(&ProjectionKind::EqualEarth).unwrap(),
            "\"equal-earth\""
        );
    }
}

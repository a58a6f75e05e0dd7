//! [`GeoPoint`]: a validated WGS84 latitude/longitude pair in degrees.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A position on the Earth as WGS84 latitude and longitude in degrees.
///
/// Every `GeoPoint` is valid: both coordinates are finite, the latitude lies in [-90, 90]
/// and the longitude has been normalised into [-180, 180) (so 180 becomes -180 and 190
/// becomes -170). Latitudes are never wrapped, because an out-of-range latitude is almost
/// always a data error (swapped columns) rather than a point past the pole.
///
/// Note the axis order: latitude first, as in G3's CSV files and prompts (`LAT, LON`), while
/// the `geo` crate's `Point::new(x, y)` takes longitude first. Conversions to `geo` types
/// happen inside this crate only.
///
/// ```
/// use g3_core::GeoPoint;
///
/// let paris: GeoPoint = "(48.8566, 2.3522)".parse()?;
/// assert_eq!(paris.lat_deg(), 48.8566);
/// let wrapped = GeoPoint::new(10.0, 190.0)?;
/// assert_eq!(wrapped.lon_deg(), -170.0);
/// assert!(GeoPoint::new(95.0, 0.0).is_err());
/// # Ok::<(), g3_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedGeoPoint")]
pub struct GeoPoint {
    #[serde(rename = "latitude")]
    lat_deg: f64,
    #[serde(rename = "longitude")]
    lon_deg: f64,
}

/// The serde form before validation; `lat`/`lon` are accepted as short names.
#[derive(Deserialize)]
struct UncheckedGeoPoint {
    #[serde(alias = "lat")]
    latitude: f64,
    #[serde(alias = "lon", alias = "lng")]
    longitude: f64,
}

impl TryFrom<UncheckedGeoPoint> for GeoPoint {
    type Error = Error;

    fn try_from(raw: UncheckedGeoPoint) -> Result<Self> {
        GeoPoint::new(raw.latitude, raw.longitude)
    }
}

impl GeoPoint {
    /// Validates and builds a point from latitude and longitude in degrees.
    ///
    /// Fails on non-finite values and on latitudes outside [-90, 90]; the longitude is
    /// normalised into [-180, 180).
    pub fn new(lat_deg: f64, lon_deg: f64) -> Result<Self> {
        if !lat_deg.is_finite() {
            return Err(Error::NonFiniteCoordinate {
                field: "latitude",
                value: lat_deg,
            });
        }
        if !lon_deg.is_finite() {
            return Err(Error::NonFiniteCoordinate {
                field: "longitude",
                value: lon_deg,
            });
        }
        if !(-90.0..=90.0).contains(&lat_deg) {
            return Err(Error::LatitudeOutOfRange { lat_deg });
        }
        Ok(GeoPoint {
            lat_deg,
            lon_deg: normalize_longitude_deg(lon_deg),
        })
    }

    /// Latitude in degrees, in [-90, 90]; positive north.
    pub fn lat_deg(&self) -> f64 {
        self.lat_deg
    }

    /// Longitude in degrees, in [-180, 180); positive east.
    pub fn lon_deg(&self) -> f64 {
        self.lon_deg
    }

    /// The `geo` crate's point for this position (x = longitude, y = latitude).
    pub(crate) fn to_geo(self) -> geo::Point<f64> {
        geo::Point::new(self.lon_deg, self.lat_deg)
    }
}

/// Maps any finite longitude into [-180, 180) degrees.
///
/// Values already in range are returned unchanged (bit for bit), so normalising twice
/// gives the same result as normalising once.
pub fn normalize_longitude_deg(lon_deg: f64) -> f64 {
    if (-180.0..180.0).contains(&lon_deg) {
        return lon_deg;
    }
    let wrapped = (lon_deg + 180.0).rem_euclid(360.0) - 180.0;
    // `rem_euclid` can round up to exactly 360 for tiny negative inputs.
    if wrapped >= 180.0 { -180.0 } else { wrapped }
}

impl fmt::Display for GeoPoint {
    /// Writes `(lat, lon)`; a precision (`{:.4}`) applies to both numbers. Without one the
    /// shortest text that parses back to the same point is written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(digits) => write!(
                f,
                "({:.*}, {:.*})",
                digits, self.lat_deg, digits, self.lon_deg
            ),
            None => write!(f, "({}, {})", self.lat_deg, self.lon_deg),
        }
    }
}

impl FromStr for GeoPoint {
    type Err = Error;

    /// Reads `"lat,lon"`, `"lat, lon"` or `"(lat, lon)"` in degrees; surrounding white space
    /// is ignored.
    fn from_str(input: &str) -> Result<Self> {
        let parse_error = |reason: &str| Error::ParsePoint {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        let inner = match (trimmed.strip_prefix('('), trimmed.strip_suffix(')')) {
            (Some(_), Some(_)) => &trimmed[1..trimmed.len() - 1],
            (None, None) => trimmed,
            _ => return Err(parse_error("unbalanced parentheses")),
        };
        let (lat_text, lon_text) = inner
            .split_once(',')
            .ok_or_else(|| parse_error("no comma between latitude and longitude"))?;
        let number = |text: &str, field: &str| {
            text.trim()
                .parse::<f64>()
                .map_err(|_| parse_error(&format!("{field} {:?} is not a number", text.trim())))
        };
        let lat_deg = number(lat_text, "latitude")?;
        let lon_deg = number(lon_text, "longitude")?;
        GeoPoint::new(lat_deg, lon_deg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longitude_is_normalised_into_half_open_range() {
        assert_eq!(normalize_longitude_deg(180.0), -180.0);
        assert_eq!(normalize_longitude_deg(-180.0), -180.0);
        assert_eq!(normalize_longitude_deg(190.0), -170.0);
        assert_eq!(normalize_longitude_deg(-190.0), 170.0);
        assert_eq!(normalize_longitude_deg(540.0), -180.0);
        // Just below -180: the wrap lands on +180 by rounding and must come back to -180.
        let just_below = f64::from_bits((-180.0f64).to_bits() + 1);
        assert_eq!(normalize_longitude_deg(just_below), -180.0);
        assert_eq!(normalize_longitude_deg(2.5), 2.5);
    }

    #[test]
    fn invalid_coordinates_are_rejected_with_the_field_named() {
        assert!(matches!(
            GeoPoint::new(90.000001, 0.0),
            Err(Error::LatitudeOutOfRange { .. })
        ));
        assert!(matches!(
            GeoPoint::new(f64::NAN, 0.0),
            Err(Error::NonFiniteCoordinate {
                field: "latitude",
                ..
            })
        ));
        assert!(matches!(
            GeoPoint::new(0.0, f64::INFINITY),
            Err(Error::NonFiniteCoordinate {
                field: "longitude",
                ..
            })
        ));
        assert!(GeoPoint::new(-90.0, 0.0).is_ok());
    }

    #[test]
    fn parses_both_text_forms() {
        let expected = GeoPoint::new(48.8566, 2.3522).unwrap();
        for text in [
            "48.8566,2.3522",
            " 48.8566, 2.3522 ",
            "(48.8566, 2.3522)",
            "(48.8566,2.3522)",
        ] {
            assert_eq!(text.parse::<GeoPoint>().unwrap(), expected, "{text}");
        }
        for bad in ["", "48.8", "(48.8, 2.3", "a, b", "48.8, 2.3)", "91, 0"] {
            assert!(bad.parse::<GeoPoint>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn display_round_trips_and_honours_precision() {
        let point = GeoPoint::new(-33.868820, 151.209296).unwrap();
        assert_eq!(point.to_string().parse::<GeoPoint>().unwrap(), point);
        assert_eq!(format!("{point:.2}"), "(-33.87, 151.21)");
    }

    #[test]
    fn serde_uses_full_names_and_validates() {
        let point = GeoPoint::new(1.5, -2.5).unwrap();
        let json = serde_json::to_string(&point).unwrap();
        assert_eq!(json, r#"{"latitude":1.5,"longitude":-2.5}"#);
        assert_eq!(serde_json::from_str::<GeoPoint>(&json).unwrap(), point);
        let short: GeoPoint = serde_json::from_str(r#"{"lat":1.5,"lon":357.5}"#).unwrap();
        assert_eq!(short, point);
        let error = serde_json::from_str::<GeoPoint>(r#"{"lat":100,"lon":0}"#).unwrap_err();
        assert!(error.to_string().contains("latitude 100"), "{error}");
    }
}

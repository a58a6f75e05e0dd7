//! The newer metrics against OSV-5M's definitions, on a golden computed by the committed
//! tools/goldens/geo_metrics.py (reverse_geocoder 1.5.1 for the places): the GeoGuessr score
//! per photo and on average, country / region / city hits with both points reverse-geocoded,
//! and the two threshold conventions on errors exactly on a threshold. Needs the gazetteer
//! (`g3 fetch geoclip`; the test command fetches it): missing, the test fails.

use std::path::{Path, PathBuf};

use g3::GeoPoint;
use g3::core::evaluation::{EvaluationColumns, EvaluationOptions, evaluate_predictions_csv};
use g3::core::geoguessr::{geoguessr_score, osv5m_haversine_km};
use g3::core::{AccuracyAccumulator, AccuracyThresholds, ThresholdConvention};
use g3::data::{
    COUNTRY_TABLE_ASSET, GAZETTEER_ASSET, NearestPlaceMetric, PlaceAccuracy, PlaceHits,
    ReverseGeocoder, place_accuracy_of_csv,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/geo_metrics")
        .join(name)
}

struct Row {
    truth: GeoPoint,
    prediction: GeoPoint,
    haversine_km: f64,
    score: f64,
    hits: PlaceHits,
}

fn rows() -> Vec<Row> {
    let mut reader = csv::Reader::from_path(fixture("pairs.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|header| header == name).unwrap();
    let [
        lat,
        lon,
        lat_pred,
        lon_pred,
        haversine,
        score,
        country,
        region,
        city,
    ] = [
        "lat",
        "lon",
        "lat_pred",
        "lon_pred",
        "haversine_km",
        "geoguessr_score",
        "country_hit",
        "region_hit",
        "city_hit",
    ]
    .map(column);
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let number = |index: usize| record[index].parse::<f64>().unwrap();
            Row {
                truth: GeoPoint::new(number(lat), number(lon)).unwrap(),
                prediction: GeoPoint::new(number(lat_pred), number(lon_pred)).unwrap(),
                haversine_km: number(haversine),
                score: number(score),
                hits: PlaceHits {
                    country: &record[country] == "1",
                    region: &record[region] == "1",
                    city: &record[city] == "1",
                },
            }
        })
        .collect()
}

fn summary() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("summary.json")).unwrap()).unwrap()
}

#[test]
fn geoguessr_scores_match_osv5m_per_photo_and_on_average() {
    let rows = rows();
    let summary = summary();
    assert_eq!(rows.len() as u64, summary["rows"].as_u64().unwrap());
    for row in &rows {
        let distance = osv5m_haversine_km(row.truth, row.prediction);
        approx::assert_relative_eq!(
            distance,
            row.haversine_km,
            max_relative = 1e-12,
            epsilon = 1e-9
        );
        approx::assert_relative_eq!(
            geoguessr_score(row.truth, row.prediction),
            row.score,
            max_relative = 1e-12
        );
    }
    // Through `g3 eval`'s evaluation of the same file.
    let options = EvaluationOptions {
        columns: EvaluationColumns {
            true_latitude: "lat".into(),
            true_longitude: "lon".into(),
            predicted_latitude: "lat_pred".into(),
            predicted_longitude: "lon_pred".into(),
            distance: "geodesic".into(),
        },
        ..EvaluationOptions::default()
    };
    let evaluation =
        evaluate_predictions_csv(&fixture("pairs.csv"), None, &options, &mut |_| {}).unwrap();
    approx::assert_relative_eq!(
        evaluation.report.mean_geoguessr_score.unwrap(),
        summary["mean_geoguessr_score"].as_f64().unwrap(),
        max_relative = 1e-12
    );
}

#[test]
fn the_conventions_differ_exactly_on_the_threshold_rows() {
    let rows = rows();
    let summary = summary();
    for (convention, key) in [
        (ThresholdConvention::Strict, "within_km_lt"),
        (ThresholdConvention::Inclusive, "within_km_le"),
    ] {
        let mut accumulator =
            AccuracyAccumulator::with_convention(AccuracyThresholds::default(), convention);
        for row in &rows {
            accumulator
                .push(osv5m_haversine_km(row.truth, row.prediction))
                .unwrap();
        }
        let report = accumulator.finish();
        for threshold in &report.thresholds {
            let expected = summary[key][format!("{}", threshold.threshold_km)]
                .as_u64()
                .unwrap();
            assert_eq!(
                threshold.within, expected,
                "{key} at {} km",
                threshold.threshold_km
            );
        }
    }
}

fn geocoder() -> ReverseGeocoder {
    let require = |asset: g3::core::assets::Asset| {
        asset
            .require()
            .unwrap_or_else(|error| panic!("{error} (the test command fetches it)"))
    };
    ReverseGeocoder::load_with_metric(
        &require(GAZETTEER_ASSET),
        Some(&require(COUNTRY_TABLE_ASSET)),
        NearestPlaceMetric::PlanarDegrees,
    )
    .unwrap()
}

#[test]
fn country_region_and_city_hits_match_osv5m_keys_on_every_pair() {
    let rows = rows();
    let summary = summary();
    let geocoder = geocoder();
    for (index, row) in rows.iter().enumerate() {
        let truth = geocoder.nearest(row.truth);
        let prediction = geocoder.nearest(row.prediction);
        assert_eq!(
            PlaceHits::of(&truth, &prediction),
            row.hits,
            "row {}: {:?} → {:?}",
            index + 2,
            truth.place,
            prediction.place
        );
    }
    let columns = EvaluationColumns {
        true_latitude: "lat".into(),
        true_longitude: "lon".into(),
        predicted_latitude: "lat_pred".into(),
        predicted_longitude: "lon_pred".into(),
        distance: "geodesic".into(),
    };
    let accuracy: PlaceAccuracy =
        place_accuracy_of_csv(&fixture("pairs.csv"), &columns, &geocoder).unwrap();
    let hits = &summary["hits"];
    assert_eq!(accuracy.rows, 200);
    assert_eq!(accuracy.country, hits["country"].as_u64().unwrap());
    assert_eq!(accuracy.region, hits["region"].as_u64().unwrap());
    assert_eq!(accuracy.city, hits["city"].as_u64().unwrap());
    assert_eq!(
        accuracy.country_percent(),
        summary["accuracy_pct"]["country"].as_f64().unwrap()
    );
}

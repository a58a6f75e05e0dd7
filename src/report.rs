//! `g3 report`: one self-contained HTML page of one or more runs (results files of `g3 run`):
//! the accuracy table (one row per run, for ablations), the error curves, a world map of
//! every photo (from its true place to its prediction, coloured by error class), the worst
//! predictions, and their candidate pools when the results hold them. Everything is inline
//! (SVG and CSS, no script, nothing fetched), so the file can be mailed or archived as is.

use std::fmt::Write as _;
use std::path::Path;

use g3_core::evaluation::{Evaluation, EvaluationOptions, evaluate_predictions_csv};
use g3_core::{Candidate, CandidateSource, GeoPoint};

use crate::error::{Error, Result};

/// Natural Earth's 1:110m country outlines (public domain, from the npm package
/// `world-atlas` 2.0.2 by `tools/assets/world_map.py`) as SVG path data in the
/// equirectangular viewBox `0 0 360 180`: (lat, lon) is at (lon + 180, 90 - lat).
pub const WORLD_MAP_PATH: &str = include_str!("web/world-110m.path");

/// Worst predictions listed (with their pools).
const WORST: usize = 10;

/// One photo of a run.
struct Photo {
    id: String,
    truth: GeoPoint,
    prediction: GeoPoint,
    error_km: f64,
    candidates: Option<Vec<Candidate>>,
}

/// One results file, scored.
struct Run {
    name: String,
    evaluation: Evaluation,
    photos: Vec<Photo>,
}

/// What a written report holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// Runs compared.
    pub runs: usize,
    /// Photos on the map (of the first run).
    pub photos: usize,
}

/// Writes the report of the results files `runs` (the first one drawn on the map, all of
/// them in the table and the curves) to `output`, atomically.
pub fn write_html_report(
    runs: &[&Path],
    output: &Path,
    options: &EvaluationOptions,
) -> Result<ReportSummary> {
    if runs.is_empty() {
        return Err(Error::InvalidPipeline(
            "no results file to report on".into(),
        ));
    }
    let runs = runs
        .iter()
        .map(|path| read_run(path, options))
        .collect::<Result<Vec<_>>>()?;
    let html = render(&runs, options)?;
    g3_core::atomic::write_atomically(output, html.as_bytes())?;
    Ok(ReportSummary {
        runs: runs.len(),
        photos: runs[0].photos.len(),
    })
}

fn read_run(path: &Path, options: &EvaluationOptions) -> Result<Run> {
    let evaluation = evaluate_predictions_csv(path, None, options, &mut |_| {})?;
    let csv_error = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    let headers = reader.headers().map_err(csv_error)?.clone();
    let column = |name: &str| headers.iter().position(|header| header == name);
    let columns = &options.columns;
    let (Some(id), Some(lat), Some(lon), Some(lat_pred), Some(lon_pred)) = (
        column("IMG_ID"),
        column(&columns.true_latitude),
        column(&columns.true_longitude),
        column(&columns.predicted_latitude),
        column(&columns.predicted_longitude),
    ) else {
        return Err(Error::InvalidPipeline(format!(
            "{}: a results file needs IMG_ID, {}, {}, {} and {} columns",
            path.display(),
            columns.true_latitude,
            columns.true_longitude,
            columns.predicted_latitude,
            columns.predicted_longitude
        )));
    };
    let pools = column("candidates");
    let mut photos = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let point = |lat: usize, lon: usize| {
            let parse = |index: usize| {
                record
                    .get(index)
                    .and_then(|value| value.trim().parse().ok())
            };
            GeoPoint::new(parse(lat)?, parse(lon)?).ok()
        };
        // Rows the evaluation skipped as invalid are left off the map too.
        let (Some(truth), Some(prediction)) = (point(lat, lon), point(lat_pred, lon_pred)) else {
            continue;
        };
        photos.push(Photo {
            id: record.get(id).unwrap_or_default().to_owned(),
            truth,
            prediction,
            error_km: options.metric.distance_km(truth, prediction),
            candidates: pools
                .and_then(|index| record.get(index))
                .and_then(|text| serde_json::from_str(text).ok()),
        });
    }
    Ok(Run {
        name: path.file_stem().map_or_else(
            || path.display().to_string(),
            |stem| stem.to_string_lossy().into_owned(),
        ),
        evaluation,
        photos,
    })
}

/// The error classes of the thresholds: `(label, colour)`, one more than thresholds.
fn error_classes(thresholds_km: &[f64]) -> Vec<(String, &'static str)> {
    const COLOURS: [&str; 7] = [
        "#2b8a3e", "#74b816", "#f59f00", "#f76707", "#e03131", "#a61e4d", "#5f3dc4",
    ];
    let names = ["street", "city", "region", "country", "continent"];
    let mut classes: Vec<(String, &str)> = thresholds_km
        .iter()
        .enumerate()
        .map(|(index, km)| {
            let name = if thresholds_km.len() == 5 {
                format!("{} (< {km} km)", names[index])
            } else {
                format!("< {km} km")
            };
            (name, COLOURS[index.min(COLOURS.len() - 2)])
        })
        .collect();
    let last = thresholds_km.last().copied().unwrap_or(0.0);
    classes.push((format!("≥ {last} km"), COLOURS[COLOURS.len() - 1]));
    classes
}

fn class_of(error_km: f64, thresholds_km: &[f64]) -> usize {
    thresholds_km
        .iter()
        .position(|&km| error_km < km)
        .unwrap_or(thresholds_km.len())
}

/// Text for HTML content and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn x(point: GeoPoint) -> f64 {
    point.lon_deg() + 180.0
}

fn y(point: GeoPoint) -> f64 {
    90.0 - point.lat_deg()
}

fn map_open(class: &str) -> String {
    format!(
        "<svg class=\"{class}\" viewBox=\"0 0 360 180\" xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"360\" height=\"180\" class=\"ocean\"/><path class=\"land\" d=\"{WORLD_MAP_PATH}\"/>"
    )
}

fn render(runs: &[Run], options: &EvaluationOptions) -> Result<String> {
    let thresholds: Vec<f64> = runs[0]
        .evaluation
        .report
        .thresholds
        .iter()
        .map(|threshold| threshold.threshold_km)
        .collect();
    let classes = error_classes(&thresholds);
    let mut html = String::new();
    let title = format!(
        "g3 report: {}",
        runs.iter()
            .map(|run| run.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );

    // The accuracy table, one row per run.
    let _ = write!(
        html,
        "<h2>Accuracy</h2><table class=\"accuracy\"><thead><tr><th>run</th><th>photos</th>"
    );
    for km in &thresholds {
        let _ = write!(html, "<th>&lt; {km} km</th>");
    }
    html.push_str("<th>median km</th><th>mean km</th></tr></thead><tbody>");
    for run in runs {
        let report = &run.evaluation.report;
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td>",
            escape(&run.name),
            report.rows
        );
        for threshold in &report.thresholds {
            let _ = write!(html, "<td>{:.1}%</td>", threshold.percent);
        }
        let km = |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
        let _ = write!(
            html,
            "<td>{}</td><td>{}</td></tr>",
            km(report.median_error_km),
            km(report.mean_error_km)
        );
    }
    html.push_str("</tbody></table>");
    let skipped: u64 = runs
        .iter()
        .map(|run| run.evaluation.report.skipped_rows)
        .sum();
    if skipped > 0 {
        let _ = write!(
            html,
            "<p class=\"note\">{skipped} rows could not be scored and are left out.</p>"
        );
    }

    // The error curves.
    html.push_str("<h2>Error curves</h2><div class=\"curves\">");
    for run in runs {
        if run.evaluation.sorted_distances_km.is_empty() {
            continue;
        }
        let svg = crate::plot::error_curve_svg(
            &run.evaluation.sorted_distances_km,
            &run.evaluation.report,
            &run.name,
        )?;
        // plotters writes an XML declaration-free <svg>: inline as is.
        let _ = write!(html, "<figure>{svg}</figure>");
    }
    html.push_str("</div>");

    // The map of the first run.
    let first = &runs[0];
    let _ = write!(
        html,
        "<h2>Every photo of {}: true place → prediction</h2>",
        escape(&first.name)
    );
    html.push_str(&map_open("world"));
    let mut order: Vec<&Photo> = first.photos.iter().collect();
    // Small errors on top: they are the short lines the long ones would hide.
    order.sort_by(|a, b| b.error_km.total_cmp(&a.error_km));
    for photo in &order {
        let class = class_of(photo.error_km, &thresholds);
        let colour = classes[class].1;
        let _ = write!(
            html,
            "<g class=\"photo\" data-class=\"{class}\"><title>{} — {:.1} km</title><line x1=\"{:.2}\" y1=\"{:.2}\" x2=\"{:.2}\" y2=\"{:.2}\" stroke=\"{colour}\"/><circle class=\"truth\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"0.9\"/><circle class=\"prediction\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"1.1\" fill=\"{colour}\"/></g>",
            escape(&photo.id),
            photo.error_km,
            x(photo.truth),
            y(photo.truth),
            x(photo.prediction),
            y(photo.prediction),
            x(photo.truth),
            y(photo.truth),
            x(photo.prediction),
            y(photo.prediction),
        );
    }
    html.push_str(
        "</svg><ul class=\"legend\"><li><span class=\"dot truth\"></span>true place</li>",
    );
    for (index, (label, colour)) in classes.iter().enumerate() {
        let count = first
            .photos
            .iter()
            .filter(|photo| class_of(photo.error_km, &thresholds) == index)
            .count();
        let _ = write!(
            html,
            "<li><span class=\"dot\" style=\"background:{colour}\"></span>{} ({count})</li>",
            escape(label)
        );
    }
    html.push_str("</ul>");

    // The worst predictions, with their pools.
    let _ = write!(
        html,
        "<h2>The {WORST} largest errors of {}</h2>",
        escape(&first.name)
    );
    html.push_str("<table class=\"worst\"><thead><tr><th>photo</th><th>true place</th><th>prediction</th><th>error km</th></tr></thead><tbody>");
    for photo in order.iter().take(WORST) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.4}, {:.4}</td><td>{:.4}, {:.4}</td><td>{:.1}</td></tr>",
            escape(&photo.id),
            photo.truth.lat_deg(),
            photo.truth.lon_deg(),
            photo.prediction.lat_deg(),
            photo.prediction.lon_deg(),
            photo.error_km
        );
    }
    html.push_str("</tbody></table>");
    for photo in order.iter().take(WORST) {
        let Some(candidates) = &photo.candidates else {
            continue;
        };
        let _ = write!(
            html,
            "<details class=\"pool\"><summary>{}: {} candidates</summary>",
            escape(&photo.id),
            candidates.len()
        );
        html.push_str(&map_open("pool-map"));
        let _ = write!(
            html,
            "<circle class=\"truth\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"2\"><title>true place</title></circle>",
            x(photo.truth),
            y(photo.truth)
        );
        for candidate in candidates {
            let (kind, colour) = source_style(&candidate.source);
            let _ = write!(
                html,
                "<circle class=\"candidate\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"1.4\" fill=\"{colour}\"><title>{kind}, score {}</title></circle>",
                x(candidate.location),
                y(candidate.location),
                candidate
                    .score
                    .map_or_else(|| "–".to_owned(), |score| format!("{score:.4}"))
            );
        }
        html.push_str("</svg></details>");
    }
    let _ = write!(
        html,
        "<p class=\"note\">Errors are {} distances. Map: Natural Earth 1:110m (public domain).</p></body></html>",
        match options.metric {
            g3_core::DistanceMetric::Geodesic => "geodesic (WGS84)",
            _ => "great-circle",
        }
    );
    Ok(html)
}

/// A candidate's source as a word and a colour (the same as the `g3 serve` page's).
pub fn source_style(source: &CandidateSource) -> (&'static str, &'static str) {
    match source {
        CandidateSource::Generated { .. } => ("generated by the LMM", "#e8590c"),
        CandidateSource::Retrieved { .. } => ("a retrieved neighbour", "#1c7ed6"),
        CandidateSource::Gallery { .. } => ("GPS gallery", "#37b24d"),
        _ => ("another stage", "#7048e8"),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#212529}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #dee2e6;padding:.3rem .6rem;text-align:right}\
th:first-child,td:first-child{text-align:left}\
.curves{display:flex;flex-wrap:wrap;gap:1rem}.curves figure{margin:0;flex:1 1 480px;max-width:540px}.curves svg{width:100%;height:auto}\
svg.world{width:100%;height:auto;border:1px solid #ced4da}svg.pool-map{width:540px;height:auto}\
.ocean{fill:#e7f5ff}.land{fill:#f1f3f5;stroke:#adb5bd;stroke-width:.15}\
line{stroke-width:.35;opacity:.7}.truth{fill:#212529}.prediction{stroke:#fff;stroke-width:.15}\
.candidate{stroke:#fff;stroke-width:.2;opacity:.85}\
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}\
.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;margin-right:.3rem;vertical-align:middle}\
.dot.truth{background:#212529}.note{color:#868e96;font-size:.9rem}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes_follow_the_thresholds() {
        let thresholds = [1.0, 25.0, 200.0, 750.0, 2500.0];
        assert_eq!(class_of(0.5, &thresholds), 0);
        assert_eq!(class_of(25.0, &thresholds), 2);
        assert_eq!(class_of(9000.0, &thresholds), 5);
        let classes = error_classes(&thresholds);
        assert_eq!(classes.len(), 6);
        assert_eq!(classes[1].0, "city (< 25 km)");
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}

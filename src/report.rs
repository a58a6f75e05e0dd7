//! `g3 report`: one self-contained HTML page of one or more runs (results files of `g3 run`):
//! the accuracy table (one row per run, for ablations), the error curves, a world map of
//! every photo (from its true place to its prediction, coloured by error class), the worst
//! predictions, and their candidate pools when the results hold them. Everything is inline
//! (SVG and CSS, no script, nothing fetched), so the file can be mailed or archived as is.

use std::fmt::Write as _;
use std::path::Path;

use g3_core::evaluation::{Evaluation, EvaluationOptions, evaluate_predictions_csv};
use g3_core::{Candidate, CandidateSource, GeoPoint, ThresholdConvention};
use g3_data::PlaceAccuracy;

use crate::error::{Error, Result};

/// Natural Earth's 1:110m country outlines (public domain, from the npm package
/// `world-atlas` 2.0.2 by `tools/assets/world_map.py`) as SVG path data in the
/// equirectangular viewBox `0 0 360 180`: (lat, lon) is at (lon + 180, 90 - lat).
pub const WORLD_MAP_PATH: &str = include_str!("web/world-110m.path");

/// Worst predictions listed per run (with their pools).
const WORST: usize = 10;

/// The runs' colours (curves, table swatches), in order; repeated past eight runs.
const RUN_COLOURS: [(u8, u8, u8); 8] = [
    (0x1c, 0x7e, 0xd6),
    (0xe8, 0x59, 0x0c),
    (0x2b, 0x8a, 0x3e),
    (0xae, 0x3e, 0xc9),
    (0xc9, 0x2a, 0x2a),
    (0x0c, 0x85, 0x99),
    (0x86, 0x8e, 0x96),
    (0xf5, 0x9f, 0x00),
];

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
    label: String,
    evaluation: Evaluation,
    places: Option<PlaceAccuracy>,
    photos: Vec<Photo>,
}

/// A results file to report on, with the label it is shown under.
#[derive(Debug, Clone, Copy)]
pub struct RunFile<'a> {
    /// The results file of `g3 run`.
    pub path: &'a Path,
    /// Its label; `None` takes the shortest part of its path that tells it from the
    /// others' ([`run_labels`]).
    pub label: Option<&'a str>,
}

/// How a report scores its runs.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Distances, thresholds and their convention.
    pub evaluation: EvaluationOptions,
    /// Leave out country, region and city accuracy (which need the GeoNames gazetteer).
    pub no_places: bool,
}

/// What a written report holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// The runs' labels, in order.
    pub labels: Vec<String>,
    /// Photos on the maps, summed over the runs.
    pub photos: usize,
}

/// The label of each results file: the shortest tail of its path (extension dropped) that
/// no other file shares, so that `g3/results.csv` and `img2loc/results.csv` read `g3/results`
/// and `img2loc/results`, and `ablation.csv` beside them reads `ablation`. The same path
/// given twice gets `#2`.
pub fn run_labels(paths: &[&Path]) -> Vec<String> {
    let parts: Vec<Vec<String>> = paths
        .iter()
        .map(|path| {
            let mut parts: Vec<String> = path
                .with_extension("")
                .components()
                .filter_map(|part| match part {
                    std::path::Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            if parts.is_empty() {
                parts.push(path.display().to_string());
            }
            parts
        })
        .collect();
    let tail =
        |parts: &[String], depth: usize| parts[parts.len() - depth.min(parts.len())..].join("/");
    let mut labels: Vec<String> = Vec::with_capacity(paths.len());
    for (index, own) in parts.iter().enumerate() {
        let mut depth = 1;
        while depth < own.len()
            && parts
                .iter()
                .enumerate()
                .any(|(other, theirs)| other != index && tail(theirs, depth) == tail(own, depth))
        {
            depth += 1;
        }
        let label = tail(own, depth);
        let repeats = labels
            .iter()
            .filter(|earlier| **earlier == label || earlier.starts_with(&format!("{label} #")));
        let label = match repeats.count() {
            0 => label,
            seen => format!("{label} #{}", seen + 1),
        };
        labels.push(label);
    }
    labels
}

/// Writes the report of the results files `runs` to `output`, atomically: the accuracy
/// table (one row per run), every run's error curve on one chart and each on its own, then
/// for every run its map and its largest errors.
pub fn write_html_report(
    runs: &[RunFile<'_>],
    output: &Path,
    options: &ReportOptions,
) -> Result<ReportSummary> {
    if runs.is_empty() {
        return Err(Error::InvalidPipeline(
            "no results file to report on".into(),
        ));
    }
    let paths: Vec<&Path> = runs.iter().map(|run| run.path).collect();
    let derived = run_labels(&paths);
    let labels: Vec<String> = runs
        .iter()
        .zip(derived)
        .map(|(run, derived)| run.label.map_or(derived, str::to_owned))
        .collect();
    if let Some(repeated) = labels
        .iter()
        .enumerate()
        .find(|(index, label)| labels[..*index].contains(label))
    {
        return Err(Error::InvalidInput(format!(
            "two runs are labelled {:?}: give each --label a different name",
            repeated.1
        )));
    }
    let labeller = if options.no_places {
        None
    } else {
        Some(g3_data::load_place_labeller().map_err(|error| {
            Error::InvalidInput(format!(
                "country, region and city accuracy need the GeoNames gazetteer ({error}); run `g3 fetch geoclip`, or leave them out (--no-places)"
            ))
        })?)
    };
    let runs = runs
        .iter()
        .zip(&labels)
        .map(|(run, label)| read_run(run.path, label, options, labeller.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let html = render(&runs, &options.evaluation)?;
    g3_core::atomic::write_atomically(output, html.as_bytes())?;
    Ok(ReportSummary {
        labels,
        photos: runs.iter().map(|run| run.photos.len()).sum(),
    })
}

fn read_run(
    path: &Path,
    label: &str,
    options: &ReportOptions,
    labeller: Option<&g3_data::ReverseGeocoder>,
) -> Result<Run> {
    let evaluation = evaluate_predictions_csv(path, None, &options.evaluation, &mut |_| {})?;
    let places = match labeller {
        Some(labeller) => Some(
            g3_data::place_accuracy_of_csv(path, &options.evaluation.columns, labeller)
                .map_err(|error| Error::Data(Box::new(error)))?,
        ),
        None => None,
    };
    let options = &options.evaluation;
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
        label: label.to_owned(),
        evaluation,
        places,
        photos,
    })
}

/// The error classes of the thresholds: `(label, colour)`, one more than thresholds.
fn error_classes(thresholds_km: &[f64], symbol: &str) -> Vec<(String, &'static str)> {
    const COLOURS: [&str; 7] = [
        "#2b8a3e", "#74b816", "#f59f00", "#f76707", "#e03131", "#a61e4d", "#5f3dc4",
    ];
    let names = ["street", "city", "region", "country", "continent"];
    let mut classes: Vec<(String, &str)> = thresholds_km
        .iter()
        .enumerate()
        .map(|(index, km)| {
            let name = if thresholds_km.len() == 5 {
                format!("{} ({symbol} {km} km)", names[index])
            } else {
                format!("{symbol} {km} km")
            };
            (name, COLOURS[index.min(COLOURS.len() - 2)])
        })
        .collect();
    let last = thresholds_km.last().copied().unwrap_or(0.0);
    let beyond = if symbol == "<" { "≥" } else { ">" };
    classes.push((format!("{beyond} {last} km"), COLOURS[COLOURS.len() - 1]));
    classes
}

fn class_of(error_km: f64, thresholds_km: &[f64], convention: ThresholdConvention) -> usize {
    thresholds_km
        .iter()
        .position(|&km| convention.within(error_km, km))
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

/// SVG path data of the great circle from `from` to `to` on the equirectangular map: the
/// short way round the globe, sampled every degree or so and cut where it crosses the
/// antimeridian (a `M` starts the part on the other side).
fn great_circle_path(from: GeoPoint, to: GeoPoint) -> String {
    let unit = |point: GeoPoint| {
        let (lat, lon) = (point.lat_deg().to_radians(), point.lon_deg().to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    };
    let (a, b) = (unit(from), unit(to));
    let dot = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]).clamp(-1.0, 1.0);
    let angle = dot.acos();
    let steps = (angle.to_degrees().ceil() as usize).max(1);
    let mut path = String::new();
    let mut previous: Option<(f64, f64)> = None;
    for step in 0..=steps {
        let t = step as f64 / steps as f64;
        // Spherical linear interpolation; a straight line where the points (nearly) coincide.
        let (wa, wb) = if angle < 1e-9 {
            (1.0 - t, t)
        } else {
            (
                ((1.0 - t) * angle).sin() / angle.sin(),
                (t * angle).sin() / angle.sin(),
            )
        };
        let v = [0, 1, 2].map(|i| wa * a[i] + wb * b[i]);
        let lat = v[2].atan2((v[0] * v[0] + v[1] * v[1]).sqrt()).to_degrees();
        let lon = if step == 0 {
            from.lon_deg()
        } else if step == steps {
            to.lon_deg()
        } else {
            v[1].atan2(v[0]).to_degrees()
        };
        let (px, py) = (lon + 180.0, 90.0 - lat);
        match previous {
            None => {
                let _ = write!(path, "M{px:.2} {py:.2}");
            }
            Some((x, y)) if (px - x).abs() > 180.0 => {
                // Crossing the antimeridian: on to the edge, then on from the other edge.
                let edge = if x > 180.0 { 360.0 } else { 0.0 };
                let crossing = (y + py) / 2.0;
                let _ = write!(
                    path,
                    "L{edge:.2} {crossing:.2}M{:.2} {crossing:.2}L{px:.2} {py:.2}",
                    360.0 - edge
                );
            }
            Some(_) => {
                let _ = write!(path, "L{px:.2} {py:.2}");
            }
        }
        previous = Some((px, py));
    }
    path
}

fn colour_hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn run_colour(index: usize) -> (u8, u8, u8) {
    RUN_COLOURS[index % RUN_COLOURS.len()]
}

fn render(runs: &[Run], options: &EvaluationOptions) -> Result<String> {
    let thresholds: Vec<f64> = options.thresholds.as_km().to_vec();
    let symbol = options.convention.symbol();
    let classes = error_classes(&thresholds, symbol);
    let mut html = String::new();
    let title = format!(
        "g3 report: {}",
        runs.iter()
            .map(|run| run.label.as_str())
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
    let with_places = runs.iter().any(|run| run.places.is_some());
    html.push_str(
        "<h2>Accuracy</h2><table class=\"accuracy\"><thead><tr><th>run</th><th>photos</th>",
    );
    for km in &thresholds {
        let _ = write!(html, "<th>{} {km} km</th>", escape(symbol));
    }
    html.push_str("<th>median km</th><th>mean km</th><th>GeoGuessr</th>");
    if with_places {
        html.push_str("<th>country</th><th>region</th><th>city</th>");
    }
    html.push_str("</tr></thead><tbody>");
    for (index, run) in runs.iter().enumerate() {
        let report = &run.evaluation.report;
        let _ = write!(
            html,
            "<tr><td><span class=\"swatch\" style=\"background:{}\"></span><a href=\"#run-{}\">{}</a></td><td>{}</td>",
            colour_hex(run_colour(index)),
            index + 1,
            escape(&run.label),
            report.rows
        );
        for threshold in &report.thresholds {
            let _ = write!(html, "<td>{:.1}%</td>", threshold.percent);
        }
        let number =
            |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
        let _ = write!(
            html,
            "<td>{}</td><td>{}</td><td>{}</td>",
            number(report.median_error_km),
            number(report.mean_error_km),
            number(report.mean_geoguessr_score)
        );
        if with_places {
            match &run.places {
                Some(places) => {
                    let _ = write!(
                        html,
                        "<td>{:.1}%</td><td>{:.1}%</td><td>{:.1}%</td>",
                        places.country_percent(),
                        places.region_percent(),
                        places.city_percent()
                    );
                }
                None => html.push_str("<td>–</td><td>–</td><td>–</td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    let _ = write!(
        html,
        "<p class=\"note\">An error counts within a threshold when it is {} it ({}). GeoGuessr: the mean of 5000·exp(−d / 1492.7 km) per photo, as OSV-5M reports it.{}</p>",
        match options.convention {
            ThresholdConvention::Strict => "strictly below",
            ThresholdConvention::Inclusive => "at most",
        },
        match options.convention {
            ThresholdConvention::Strict => "G3's, GeoRanker's and OSV-5M's convention",
            ThresholdConvention::Inclusive => "GeoCLIP's convention",
        },
        if with_places {
            " Country, region and city: both the true place and the prediction reverse-geocoded with GeoNames cities1000, compared on OSV-5M's keys (country code; + first-level area; + second-level area and place name)."
        } else {
            ""
        }
    );
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

    // Every run's curve on one chart, then each on its own.
    html.push_str("<h2>Error curves</h2>");
    let series: Vec<crate::plot::CurveSeries<'_>> = runs
        .iter()
        .enumerate()
        .map(|(index, run)| crate::plot::CurveSeries {
            label: &run.label,
            sorted_distances_km: &run.evaluation.sorted_distances_km,
            colour: run_colour(index),
        })
        .collect();
    if series.iter().any(|run| !run.sorted_distances_km.is_empty()) {
        let overlay = crate::plot::error_curves_svg(
            &series,
            &thresholds,
            "Share of photos within each error",
        )?;
        let _ = write!(html, "<figure class=\"overlay\">{overlay}</figure>");
    }
    html.push_str("<h3>Each run</h3><div class=\"curves\">");
    for run in runs {
        if run.evaluation.sorted_distances_km.is_empty() {
            continue;
        }
        let svg = crate::plot::error_curve_svg(
            &run.evaluation.sorted_distances_km,
            &run.evaluation.report,
            &run.label,
        )?;
        let _ = write!(html, "<figure>{svg}</figure>");
    }
    html.push_str("</div>");

    for (index, run) in runs.iter().enumerate() {
        render_run(
            &mut html,
            index,
            run,
            &thresholds,
            options.convention,
            &classes,
        );
    }
    let _ = write!(
        html,
        "<p class=\"note\">Errors are {} distances; lines on the maps follow the great circle. Map: Natural Earth 1:110m (public domain).</p></body></html>",
        match options.metric {
            g3_core::DistanceMetric::Geodesic => "geodesic (WGS84)",
            _ => "great-circle",
        }
    );
    Ok(html)
}

/// One run's section: its map of every photo and its largest errors with their pools.
fn render_run(
    html: &mut String,
    index: usize,
    run: &Run,
    thresholds: &[f64],
    convention: ThresholdConvention,
    classes: &[(String, &str)],
) {
    let _ = write!(
        html,
        "<section class=\"run\" id=\"run-{}\"><h2><span class=\"swatch\" style=\"background:{}\"></span>{}: every photo, true place → prediction</h2>",
        index + 1,
        colour_hex(run_colour(index)),
        escape(&run.label)
    );
    html.push_str(&map_open("world"));
    let mut order: Vec<&Photo> = run.photos.iter().collect();
    // Small errors on top: they are the short lines the long ones would hide.
    order.sort_by(|a, b| b.error_km.total_cmp(&a.error_km));
    for photo in &order {
        let class = class_of(photo.error_km, thresholds, convention);
        let colour = classes[class].1;
        let _ = write!(
            html,
            "<g class=\"photo\" data-class=\"{class}\"><title>{} — {:.1} km</title><path class=\"track\" d=\"{}\" stroke=\"{colour}\"/><circle class=\"truth\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"0.9\"/><circle class=\"prediction\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"1.1\" fill=\"{colour}\"/></g>",
            escape(&photo.id),
            photo.error_km,
            great_circle_path(photo.truth, photo.prediction),
            x(photo.truth),
            y(photo.truth),
            x(photo.prediction),
            y(photo.prediction),
        );
    }
    html.push_str(
        "</svg><ul class=\"legend\"><li><span class=\"dot truth\"></span>true place</li>",
    );
    for (class_index, (label, colour)) in classes.iter().enumerate() {
        let count = run
            .photos
            .iter()
            .filter(|photo| class_of(photo.error_km, thresholds, convention) == class_index)
            .count();
        let _ = write!(
            html,
            "<li><span class=\"dot\" style=\"background:{colour}\"></span>{} ({count})</li>",
            escape(label)
        );
    }
    html.push_str("</ul>");

    let _ = write!(
        html,
        "<h3>The {} largest errors of {}</h3>",
        WORST.min(order.len()),
        escape(&run.label)
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
    html.push_str("</section>");
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
.curves{display:flex;flex-wrap:wrap;gap:1rem}.curves figure{margin:0;flex:1 1 540px;max-width:540px}.curves svg{width:100%;height:auto}\
figure.overlay{margin:0}figure.overlay svg{width:100%;height:auto}\
.swatch{display:inline-block;width:.9rem;height:.9rem;border-radius:2px;margin-right:.4rem;vertical-align:middle}\
section.run{border-top:2px solid #dee2e6;margin-top:2rem}\
svg.world{width:100%;height:auto;border:1px solid #ced4da}svg.pool-map{width:540px;height:auto}\
.ocean{fill:#e7f5ff}.land{fill:#f1f3f5;stroke:#adb5bd;stroke-width:.15}\
.track{fill:none;stroke-width:.35;opacity:.7}.truth{fill:#212529}.prediction{stroke:#fff;stroke-width:.15}\
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
        let strict = ThresholdConvention::Strict;
        assert_eq!(class_of(0.5, &thresholds, strict), 0);
        assert_eq!(class_of(25.0, &thresholds, strict), 2);
        assert_eq!(
            class_of(25.0, &thresholds, ThresholdConvention::Inclusive),
            1
        );
        assert_eq!(class_of(9000.0, &thresholds, strict), 5);
        let classes = error_classes(&thresholds, "<");
        assert_eq!(classes.len(), 6);
        assert_eq!(classes[1].0, "city (< 25 km)");
        assert_eq!(classes[5].0, "≥ 2500 km");
        assert_eq!(error_classes(&thresholds, "≤")[5].0, "> 2500 km");
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn labels_are_the_shortest_distinct_tails_of_the_paths() {
        let labels = run_labels(&[
            Path::new("runs/g3/results.csv"),
            Path::new("runs/img2loc/results.csv"),
            Path::new("runs/ablation.csv"),
        ]);
        assert_eq!(labels, ["g3/results", "img2loc/results", "ablation"]);
        let labels = run_labels(&[Path::new("a/x/results.csv"), Path::new("b/x/results.csv")]);
        assert_eq!(labels, ["a/x/results", "b/x/results"]);
        let labels = run_labels(&[Path::new("results.csv"), Path::new("results.csv")]);
        assert_eq!(labels, ["results", "results #2"]);
    }

    #[test]
    fn tracks_go_the_short_way_round_and_are_cut_at_the_antimeridian() {
        let fiji = GeoPoint::new(-17.7, 178.0).unwrap();
        let samoa = GeoPoint::new(-13.8, -172.0).unwrap();
        let path = great_circle_path(fiji, samoa);
        // Two parts: Fiji to the right edge, the left edge to Samoa; never across the map.
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert!(path.starts_with("M358.00 107.70"), "{path}");
        assert!(path.contains("L360.00") && path.contains("M0.00"), "{path}");
        assert!(path.ends_with("L8.00 103.80"), "{path}");
        // Paris to Tokyo stays in one piece, bowing north of both ends.
        let path = great_circle_path(
            GeoPoint::new(48.86, 2.35).unwrap(),
            GeoPoint::new(35.68, 139.65).unwrap(),
        );
        assert_eq!(path.matches('M').count(), 1, "{path}");
        let northmost = path
            .split(['M', 'L'])
            .filter(|point| !point.is_empty())
            .map(|point| point.split(' ').nth(1).unwrap().parse::<f64>().unwrap())
            .fold(f64::INFINITY, f64::min);
        assert!(90.0 - northmost > 60.0, "{path}");
    }
}

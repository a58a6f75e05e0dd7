//! Scoring a predictions CSV: the distance of every row and the accuracy table (`g3 eval`).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use csv::ByteRecord;
use serde::{Deserialize, Serialize};

use crate::accuracy::{
    AccuracyAccumulator, AccuracyReport, AccuracyThresholds, ThresholdConvention,
};
use crate::atomic::AtomicFile;
use crate::distance::DistanceMetric;
use crate::error::{Error, Result, RowProblem};
use crate::point::GeoPoint;
use crate::table::{find_column, header_names, line_of_record, read_point};

/// Column names of a predictions file. The defaults are those G3's scripts write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationColumns {
    /// True latitude in degrees (default `LAT`).
    pub true_latitude: String,
    /// True longitude in degrees (default `LON`).
    pub true_longitude: String,
    /// Predicted latitude in degrees (default `LAT_pred`).
    pub predicted_latitude: String,
    /// Predicted longitude in degrees (default `LON_pred`).
    pub predicted_longitude: String,
    /// Column written with the error in km (default `geodesic`); replaced if present.
    pub distance: String,
}

impl Default for EvaluationColumns {
    fn default() -> Self {
        EvaluationColumns {
            true_latitude: "LAT".into(),
            true_longitude: "LON".into(),
            predicted_latitude: "LAT_pred".into(),
            predicted_longitude: "LON_pred".into(),
            distance: "geodesic".into(),
        }
    }
}

/// How to score a predictions file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationOptions {
    /// Accuracy thresholds in km (default: the paper's 1, 25, 200, 750, 2500).
    pub thresholds: AccuracyThresholds,
    /// How errors are measured (default: WGS84 geodesic, as G3's evaluation with geopy).
    pub metric: DistanceMetric,
    /// Column names.
    pub columns: EvaluationColumns,
    /// Count and report invalid rows instead of stopping at the first one. Skipped rows are
    /// still written to the output, with an empty distance.
    pub skip_invalid: bool,
    /// Whether an error on a threshold counts as within it (default: strictly below, as
    /// G3's evaluation; GeoCLIP's counts `<=`).
    pub convention: ThresholdConvention,
}

/// A row that was skipped because it could not be scored.
#[derive(Debug)]
pub struct SkippedRow {
    /// The 1-based line where the row starts.
    pub line: u64,
    /// Why it was skipped.
    pub problem: RowProblem,
}

/// The outcome of scoring a predictions file.
#[derive(Debug)]
pub struct Evaluation {
    /// Accuracy over the scored rows; `skipped_rows` counts the others.
    pub report: AccuracyReport,
    /// The first [`Evaluation::SKIPPED_EXAMPLES`] skipped rows, to show the user what went wrong.
    pub skipped_examples: Vec<SkippedRow>,
    /// Every scored row's error in km, ascending (the cumulative error curve `g3 eval --plot`
    /// draws).
    pub sorted_distances_km: Vec<f64>,
}

impl Evaluation {
    /// How many skipped rows are kept as examples.
    pub const SKIPPED_EXAMPLES: usize = 10;
}

/// Scores every row of the predictions CSV at `input`, streaming: memory holds one row plus
/// one `f64` per row for the median.
///
/// With `output`, every input row is written there in input order with the distance column
/// added (or replaced), through a temporary file renamed into place when all rows are done,
/// so a failed run never leaves a half-written file. `on_progress` receives the number of
/// input bytes read so far, every few thousand rows.
pub fn evaluate_predictions_csv(
    input: &Path,
    output: Option<&Path>,
    options: &EvaluationOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Evaluation> {
    let file = File::open(input).map_err(|source| Error::Io {
        path: input.to_path_buf(),
        source,
    })?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let Some(output) = output else {
        return evaluate_stream(input, reader, None::<io::Sink>, options, on_progress);
    };
    let temporary = AtomicFile::create(output)?;
    let writer = BufWriter::with_capacity(1 << 20, temporary.file());
    let evaluation = evaluate_stream(input, reader, Some(writer), options, on_progress)?;
    temporary.commit()?;
    Ok(evaluation)
}

/// Where the four coordinates and the distance live in a row.
struct ColumnIndices {
    true_latitude: usize,
    true_longitude: usize,
    predicted_latitude: usize,
    predicted_longitude: usize,
    /// `None` when the distance column is appended.
    distance: Option<usize>,
}

fn evaluate_stream<R: Read, W: Write>(
    path: &Path,
    input: R,
    output: Option<W>,
    options: &EvaluationOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Evaluation> {
    let csv_error = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = reader.byte_headers().map_err(csv_error)?.clone();
    let columns = &options.columns;
    let names = header_names(&header);
    let find = |column: &str| find_column(path, &names, column);
    let indices = ColumnIndices {
        true_latitude: find(&columns.true_latitude)?,
        true_longitude: find(&columns.true_longitude)?,
        predicted_latitude: find(&columns.predicted_latitude)?,
        predicted_longitude: find(&columns.predicted_longitude)?,
        distance: names.iter().position(|name| name == &columns.distance),
    };

    let mut writer = output.map(|output| {
        csv::WriterBuilder::new()
            .flexible(false)
            .from_writer(output)
    });
    if let Some(writer) = writer.as_mut() {
        let mut out_header = header.clone();
        if indices.distance.is_none() {
            out_header.push_field(columns.distance.as_bytes());
        }
        writer.write_byte_record(&out_header).map_err(csv_error)?;
    }

    let output_width = header.len() + usize::from(indices.distance.is_none());
    let mut accumulator =
        AccuracyAccumulator::with_convention(options.thresholds.clone(), options.convention);
    let mut skipped_examples = Vec::new();
    let mut record = ByteRecord::new();
    let mut out_record = ByteRecord::new();
    let mut number_text = String::new();
    let mut rows: u64 = 0;
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = || {
            let position = record.position().expect("the csv reader sets positions");
            line_of_record(path, position)
        };
        let distance_km = match score_row(&record, header.len(), &indices, options) {
            Ok((distance_km, points)) => {
                accumulator.push_with_geoguessr_points(distance_km, points)?;
                Some(distance_km)
            }
            Err(problem) if options.skip_invalid => {
                accumulator.record_skipped();
                if skipped_examples.len() < Evaluation::SKIPPED_EXAMPLES {
                    skipped_examples.push(SkippedRow {
                        line: line(),
                        problem,
                    });
                }
                None
            }
            Err(problem) => {
                return Err(Error::InvalidRow {
                    path: path.to_path_buf(),
                    line: line(),
                    problem,
                });
            }
        };
        if let Some(writer) = writer.as_mut() {
            number_text.clear();
            if let Some(distance_km) = distance_km {
                use std::fmt::Write as _;
                let _ = write!(number_text, "{distance_km}");
            }
            build_output_row(
                &record,
                &indices,
                output_width,
                number_text.as_bytes(),
                &mut out_record,
            );
            writer.write_byte_record(&out_record).map_err(csv_error)?;
        }
        rows += 1;
        if rows.is_multiple_of(8192) {
            on_progress(reader.position().byte());
        }
    }
    if let Some(mut writer) = writer {
        writer.flush().map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    on_progress(reader.position().byte());
    let mut sorted_distances_km = accumulator.distances_km().to_vec();
    sorted_distances_km.sort_by(f64::total_cmp);
    Ok(Evaluation {
        report: accumulator.finish(),
        skipped_examples,
        sorted_distances_km,
    })
}

/// The input row with the distance put in its column; short rows are padded with empty
/// fields and long rows cut, so the output stays rectangular (only invalid rows, which are
/// written with an empty distance, can be short or long).
fn build_output_row(
    record: &ByteRecord,
    indices: &ColumnIndices,
    output_width: usize,
    distance: &[u8],
    out: &mut ByteRecord,
) {
    out.clear();
    let distance_index = indices.distance.unwrap_or(output_width - 1);
    for index in 0..output_width {
        if index == distance_index {
            out.push_field(distance);
        } else {
            out.push_field(record.get(index).unwrap_or_default());
        }
    }
}

/// The error in km of one row and its GeoGuessr points, or what is wrong with it.
fn score_row(
    record: &ByteRecord,
    header_len: usize,
    indices: &ColumnIndices,
    options: &EvaluationOptions,
) -> std::result::Result<(f64, f64), RowProblem> {
    if record.len() != header_len {
        return Err(RowProblem::FieldCount {
            expected: header_len,
            found: record.len(),
        });
    }
    let columns = &options.columns;
    let truth = read_point(
        record,
        (indices.true_latitude, &columns.true_latitude),
        (indices.true_longitude, &columns.true_longitude),
    )?;
    let predicted = read_point(
        record,
        (indices.predicted_latitude, &columns.predicted_latitude),
        (indices.predicted_longitude, &columns.predicted_longitude),
    )?;
    Ok(score_pair(truth, predicted, options.metric))
}

/// A prediction's error in km under `metric` and its GeoGuessr points: what every
/// evaluation (of a CSV, or of pairs in memory) records for a row.
fn score_pair(truth: GeoPoint, predicted: GeoPoint, metric: DistanceMetric) -> (f64, f64) {
    (
        metric.distance_km(truth, predicted),
        crate::geoguessr::geoguessr_score(truth, predicted),
    )
}

/// Scores (truth, prediction) pairs held in memory exactly as
/// [`evaluate_predictions_csv`] scores a file's rows (same distance, GeoGuessr points,
/// thresholds and convention; the options' column names and `skip_invalid` do not apply:
/// points are valid by construction). For callers whose predictions never touch a file, such
/// as the Python bindings.
pub fn evaluate_points(
    pairs: impl IntoIterator<Item = (GeoPoint, GeoPoint)>,
    options: &EvaluationOptions,
) -> Result<AccuracyReport> {
    let mut accumulator =
        AccuracyAccumulator::with_convention(options.thresholds.clone(), options.convention);
    for (truth, predicted) in pairs {
        let (distance_km, points) = score_pair(truth, predicted, options.metric);
        accumulator.push_with_geoguessr_points(distance_km, points)?;
    }
    Ok(accumulator.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_memory_score_as_the_rows_of_a_file() {
        let rows = [
            (48.8566, 2.3522, 48.85, 2.35),
            (35.6762, 139.6503, 34.6937, 135.5023),
            (-33.8688, 151.2093, 40.7128, -74.006),
            (0.0, 179.9, 0.0, -179.9),
        ];
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("predictions.csv");
        let mut text = String::from("LAT,LON,LAT_pred,LON_pred\n");
        for (lat, lon, lat_pred, lon_pred) in rows {
            text.push_str(&format!("{lat},{lon},{lat_pred},{lon_pred}\n"));
        }
        std::fs::write(&path, text).unwrap();
        for convention in [ThresholdConvention::Strict, ThresholdConvention::Inclusive] {
            let options = EvaluationOptions {
                convention,
                ..EvaluationOptions::default()
            };
            let from_file = evaluate_predictions_csv(&path, None, &options, &mut |_| {})
                .unwrap()
                .report;
            let pairs = rows.map(|(lat, lon, lat_pred, lon_pred)| {
                (
                    GeoPoint::new(lat, lon).unwrap(),
                    GeoPoint::new(lat_pred, lon_pred).unwrap(),
                )
            });
            assert_eq!(evaluate_points(pairs, &options).unwrap(), from_file);
        }
    }
}

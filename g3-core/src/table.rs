//! Reading CSV tables of coordinates: shared by evaluation, geocoding, galleries, feature
//! caches and the commands, so every reader reports bad rows the same way (file, line,
//! column).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use csv::ByteRecord;

use crate::error::{Error, Result, RowProblem};
use crate::point::GeoPoint;

/// The header's column names, trimmed.
pub fn header_names(header: &ByteRecord) -> Vec<String> {
    header
        .iter()
        .map(|name| String::from_utf8_lossy(name).trim().to_owned())
        .collect()
}

/// Index of `column` in `names`, or an error listing the header.
pub fn find_column(path: &Path, names: &[String], column: &str) -> Result<usize> {
    names
        .iter()
        .position(|name| name == column)
        .ok_or_else(|| Error::MissingColumn {
            path: path.to_path_buf(),
            column: column.to_owned(),
            found: names.to_vec(),
        })
}

/// Reads every point of a CSV file with latitude and longitude columns in degrees (other
/// columns are ignored), in file order. A bad row is an error naming its line and column.
///
/// Holds 16 bytes per row; for files too large for that, stream with the `csv` crate.
pub fn read_points_csv(
    path: &Path,
    latitude_column: &str,
    longitude_column: &str,
) -> Result<Vec<GeoPoint>> {
    let csv_error = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(Error::io(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let names = header_names(reader.byte_headers().map_err(csv_error)?);
    let latitude = (find_column(path, &names, latitude_column)?, latitude_column);
    let longitude = (
        find_column(path, &names, longitude_column)?,
        longitude_column,
    );
    let mut points = Vec::new();
    let mut record = ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let point =
            read_point(&record, latitude, longitude).map_err(|problem| Error::InvalidRow {
                path: path.to_path_buf(),
                line: record
                    .position()
                    .map_or(0, |position| line_of_record(path, position)),
                problem,
            })?;
        points.push(point);
    }
    Ok(points)
}

/// The point in the given (index, name) latitude and longitude columns of `record`.
pub fn read_point(
    record: &ByteRecord,
    (latitude_index, latitude_column): (usize, &str),
    (longitude_index, longitude_column): (usize, &str),
) -> std::result::Result<GeoPoint, RowProblem> {
    let lat_deg = read_number(record, latitude_index, latitude_column)?;
    let lon_deg = read_number(record, longitude_index, longitude_column)?;
    GeoPoint::new(lat_deg, lon_deg).map_err(|source| RowProblem::InvalidPoint {
        latitude_column: latitude_column.to_owned(),
        longitude_column: longitude_column.to_owned(),
        source: Box::new(source),
    })
}

/// The number in column `index` (named `column` in messages) of `record`.
pub fn read_number(
    record: &ByteRecord,
    index: usize,
    column: &str,
) -> std::result::Result<f64, RowProblem> {
    let raw = record.get(index).unwrap_or_default().trim_ascii();
    if raw.is_empty() {
        return Err(RowProblem::MissingValue {
            column: column.to_owned(),
        });
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .ok_or_else(|| RowProblem::NotANumber {
            column: column.to_owned(),
            value: String::from_utf8_lossy(raw).into_owned(),
        })
}

/// The 1-based line on which the record at `position` starts.
///
/// The csv crate's byte offsets are exact but its line counter falls behind after blank
/// lines, so for the few rows that get reported the file is scanned again up to the record.
/// Falls back to the csv crate's count if the file cannot be read again.
pub fn line_of_record(path: &Path, position: &csv::Position) -> u64 {
    crate::text_file::line_number_at(path, position.byte()).unwrap_or(position.line())
}

/// `text` as one CSV field: quoted (with quotes doubled) when it holds a separator, a quote
/// or a line break, as is otherwise. For CSV lines written by hand, where a `csv::Writer`
/// would be more machinery than the line.
pub fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod csv_field_tests {
    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("two\nlines"), "\"two\nlines\"");
    }
}

//! Streaming readers for the metadata CSVs of MP16-Pro (training), IM2GPS3K and YFCC4K
//! (evaluation): one typed record at a time, so a 4.7M-row file needs no more memory than a
//! 3K-row one.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use g3_core::GeoPoint;
use serde::{Deserialize, Serialize};

use crate::description::{LocationLevel, LocationNames};
use crate::error::{DataError, Result};

/// Which dataset a metadata file belongs to; picks the reference's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MP16-Pro: `IMG_ID, LAT, LON` and Nominatim's location levels.
    Mp16Pro,
    /// IM2GPS3K: `IMG_ID, LAT, LON` and scene labels.
    Im2gps3k,
    /// YFCC4K: `IMG_ID, LAT, LON` and scene labels.
    Yfcc4k,
}

/// How a metadata file is read. [`MetadataOptions::for_dataset`] gives the reference's
/// settings; every filter is an explicit field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetadataOptions {
    /// Image id column (default `IMG_ID`).
    pub image_id_column: String,
    /// Latitude column in degrees (default `LAT`).
    pub latitude_column: String,
    /// Longitude column in degrees (default `LON`).
    pub longitude_column: String,
    /// Skip rows whose `country` is empty, as G3's MP16-Pro loader does (default false;
    /// true for MP16-Pro).
    pub drop_rows_without_country: bool,
    /// Replace `/` by `_` in image ids, as G3 names MP16-Pro's images inside its tar shards
    /// (default false; true for MP16-Pro).
    pub slashes_to_underscores: bool,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            image_id_column: "IMG_ID".into(),
            latitude_column: "LAT".into(),
            longitude_column: "LON".into(),
            drop_rows_without_country: false,
            slashes_to_underscores: false,
        }
    }
}

impl MetadataOptions {
    /// The reference's settings for `dataset`.
    pub fn for_dataset(dataset: DatasetKind) -> Self {
        let mp16_pro = dataset == DatasetKind::Mp16Pro;
        MetadataOptions {
            drop_rows_without_country: mp16_pro,
            slashes_to_underscores: mp16_pro,
            ..MetadataOptions::default()
        }
    }
}

/// One row of a metadata file.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataRecord {
    /// The 1-based line where the row starts.
    pub line: u64,
    /// The image id (after the `/` → `_` option).
    pub image_id: String,
    /// Where the photo was taken.
    pub location: GeoPoint,
    /// The location levels present in the file (MP16-Pro); empty strings elsewhere.
    pub names: LocationNames,
    header: Arc<csv::StringRecord>,
    fields: csv::StringRecord,
}

impl MetadataRecord {
    /// Any column of the row by header name (scene labels, user columns...).
    pub fn get(&self, column: &str) -> Option<&str> {
        let index = self.header.iter().position(|name| name == column)?;
        self.fields.get(index)
    }

    /// The header of the file the record comes from.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.header.iter()
    }
}

/// A streaming reader; iterate it for records. A malformed row is an error naming the file
/// and line; iteration can go on past it.
#[derive(Debug)]
pub struct MetadataReader {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    header: Arc<csv::StringRecord>,
    image_id: usize,
    latitude: usize,
    longitude: usize,
    levels: Vec<(LocationLevel, usize)>,
    options: MetadataOptions,
    dropped: u64,
    /// Set after an I/O error, which would repeat forever.
    finished: bool,
    /// Numbers rows as an editor does (the csv crate's count lags after blank lines).
    lines: g3_core::LineCounter,
}

impl MetadataReader {
    /// Opens `path` and checks its header for the id, latitude and longitude columns (and
    /// `country` when rows without one are dropped). A UTF-8 byte-order mark is ignored.
    pub fn open(path: impl AsRef<Path>, options: MetadataOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|error| DataError::io(&path, error))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let raw_header = reader
            .headers()
            .map_err(|error| DataError::csv(&path, &error))?;
        let header: csv::StringRecord = raw_header
            .iter()
            .map(|name| name.trim_start_matches('\u{feff}').trim())
            .collect();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(DataError::Empty { path });
        }
        let find = |column: &str| {
            header
                .iter()
                .position(|name| name == column)
                .ok_or_else(|| DataError::MissingColumn {
                    path: path.clone(),
                    column: column.to_string(),
                    found: header.iter().collect::<Vec<_>>().join(", "),
                })
        };
        let image_id = find(&options.image_id_column)?;
        let latitude = find(&options.latitude_column)?;
        let longitude = find(&options.longitude_column)?;
        if options.drop_rows_without_country {
            find("country")?;
        }
        let levels = LocationLevel::ALL
            .iter()
            .filter_map(|&level| {
                Some((
                    level,
                    header.iter().position(|name| name == level.column())?,
                ))
            })
            .collect();
        Ok(MetadataReader {
            reader,
            header: Arc::new(header),
            image_id,
            latitude,
            longitude,
            levels,
            options,
            dropped: 0,
            finished: false,
            lines: g3_core::LineCounter::open(&path)
                .map_err(|error| DataError::io(&path, error))?,
            path,
        })
    }

    /// Rows skipped so far by the `drop_rows_without_country` filter.
    pub fn dropped_rows(&self) -> u64 {
        self.dropped
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The editor's line number of a record the parser just read.
    fn line_of(&mut self, position: Option<&csv::Position>) -> Option<u64> {
        let position = position?;
        Some(
            self.lines
                .line_at(position.byte())
                .unwrap_or(position.line()),
        )
    }

    fn parse(&self, fields: csv::StringRecord, line: u64) -> Result<MetadataRecord> {
        let row_error = |message: String| DataError::Row {
            path: self.path.clone(),
            line,
            message,
        };
        let number = |index: usize, column: &str| -> Result<f64> {
            let text = fields.get(index).unwrap_or("").trim();
            text.parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .ok_or_else(|| row_error(format!("column {column}: {text:?} is not a number")))
        };
        let lat_deg = number(self.latitude, &self.options.latitude_column)?;
        let lon_deg = number(self.longitude, &self.options.longitude_column)?;
        let location = GeoPoint::new(lat_deg, lon_deg).map_err(|error| {
            row_error(format!(
                "columns {}/{}: {error}",
                self.options.latitude_column, self.options.longitude_column
            ))
        })?;
        let mut image_id = fields.get(self.image_id).unwrap_or("").trim().to_string();
        if image_id.is_empty() {
            return Err(row_error(format!(
                "column {}: the image id is empty",
                self.options.image_id_column
            )));
        }
        if self.options.slashes_to_underscores {
            image_id = image_id.replace('/', "_");
        }
        let mut names = LocationNames::default();
        for &(level, index) in &self.levels {
            let value = fields.get(index).unwrap_or("").trim().to_string();
            match level {
                LocationLevel::Neighbourhood => names.neighbourhood = value,
                LocationLevel::City => names.city = value,
                LocationLevel::County => names.county = value,
                LocationLevel::State => names.state = value,
                LocationLevel::Region => names.region = value,
                LocationLevel::Country => names.country = value,
                LocationLevel::CountryCode => names.country_code = value,
                LocationLevel::Continent => names.continent = value,
            }
        }
        Ok(MetadataRecord {
            line,
            image_id,
            location,
            names,
            header: Arc::clone(&self.header),
            fields,
        })
    }
}

impl Iterator for MetadataReader {
    type Item = Result<MetadataRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let mut fields = csv::StringRecord::new();
            match self.reader.read_record(&mut fields) {
                Ok(false) => return None,
                Err(error) => {
                    let line = self.line_of(error.position()).unwrap_or(1);
                    let error = DataError::csv_at(&self.path, &error, line);
                    // An I/O error will not go away: stop after reporting it.
                    self.finished = matches!(error, DataError::Io { .. });
                    return Some(Err(error));
                }
                Ok(true) => {}
            }
            let line = self.line_of(fields.position()).unwrap_or(0);
            if self.options.drop_rows_without_country {
                let country = self
                    .levels
                    .iter()
                    .find(|(level, _)| *level == LocationLevel::Country)
                    .and_then(|&(_, index)| fields.get(index))
                    .unwrap_or("");
                if country.trim().is_empty() {
                    self.dropped += 1;
                    continue;
                }
            }
            return Some(self.parse(fields, line));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp16_pro_preset_applies_the_reference_filters() {
        let options = MetadataOptions::for_dataset(DatasetKind::Mp16Pro);
        assert!(options.drop_rows_without_country && options.slashes_to_underscores);
        let options = MetadataOptions::for_dataset(DatasetKind::Yfcc4k);
        assert!(!options.drop_rows_without_country && !options.slashes_to_underscores);
    }
}

//! [`EntryMetadata`]: what the database knows about each entry besides its vector.

use std::path::{Path, PathBuf};

use g3_core::{GeoPoint, LineCounter};

use crate::column::Column;
use crate::error::{IndexError, Result};

/// Per-entry metadata, row for row with the vectors: a stable `u64` key, the location where
/// the image was taken, and any number of named text fields (city, country, image id...).
///
/// Held in flat columns so that a database of millions of entries opens by memory-mapping
/// them instead of parsing them.
pub struct EntryMetadata {
    keys: Column<u64>,
    /// `[lat_deg, lon_deg]` per row.
    locations: Column<f64>,
    text_columns: Vec<String>,
    /// Row-major `row * text_columns.len() + column` → byte range
    /// `text_offsets[i]..text_offsets[i + 1]` of `text`.
    text_offsets: Column<u64>,
    text: Column<u8>,
}

/// Builds [`EntryMetadata`] row by row.
#[derive(Debug, Clone, Default)]
pub struct EntryMetadataBuilder {
    keys: Vec<u64>,
    locations: Vec<f64>,
    text_columns: Vec<String>,
    text_offsets: Vec<u64>,
    text: Vec<u8>,
}

impl EntryMetadataBuilder {
    /// A builder whose rows carry the given text fields, in this order.
    pub fn new(text_columns: Vec<String>) -> Self {
        EntryMetadataBuilder {
            text_columns,
            text_offsets: vec![0],
            ..EntryMetadataBuilder::default()
        }
    }

    /// Appends one entry; `texts` holds one value per text column.
    pub fn push(&mut self, key: u64, location: GeoPoint, texts: &[&str]) -> Result<()> {
        check_text_count(texts, &self.text_columns)?;
        self.keys.push(key);
        self.locations
            .extend_from_slice(&[location.lat_deg(), location.lon_deg()]);
        for text in texts {
            self.text.extend_from_slice(text.as_bytes());
            self.text_offsets.push(self.text.len() as u64);
        }
        Ok(())
    }

    /// Finishes, checking that no key repeats.
    pub fn build(self) -> Result<EntryMetadata> {
        check_unique_keys(&self.keys)?;
        Ok(EntryMetadata {
            keys: Column::Owned(self.keys),
            locations: Column::Owned(self.locations),
            text_columns: self.text_columns,
            text_offsets: Column::Owned(self.text_offsets),
            text: Column::Owned(self.text),
        })
    }
}

/// Which CSV columns hold what, for [`EntryMetadata::from_csv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataCsvOptions {
    /// Latitude column in degrees (MP16-Pro: `LAT`).
    pub lat_column: String,
    /// Longitude column in degrees (MP16-Pro: `LON`).
    pub lon_column: String,
    /// Column of unsigned integer keys; `None` keys each entry by its row (0-based, the
    /// row of its vector in the embeddings file), as the reference does.
    pub key_column: Option<String>,
    /// Columns kept as text fields; `None` keeps every column that is not the latitude,
    /// longitude or key.
    pub text_columns: Option<Vec<String>>,
}

impl Default for MetadataCsvOptions {
    fn default() -> Self {
        MetadataCsvOptions {
            lat_column: "LAT".into(),
            lon_column: "LON".into(),
            key_column: None,
            text_columns: None,
        }
    }
}

impl EntryMetadata {
    /// Metadata keyed by row (0, 1, 2, ...) with locations only.
    pub fn from_locations(locations: &[GeoPoint]) -> Self {
        let mut builder = EntryMetadataBuilder::new(Vec::new());
        for (row, location) in locations.iter().enumerate() {
            builder.keys.push(row as u64);
            builder
                .locations
                .extend_from_slice(&[location.lat_deg(), location.lon_deg()]);
        }
        EntryMetadata {
            keys: Column::Owned(builder.keys),
            locations: Column::Owned(builder.locations),
            text_columns: Vec::new(),
            text_offsets: Column::Owned(vec![0]),
            text: Column::Owned(Vec::new()),
        }
    }

    /// Reads a metadata CSV with a header row (UTF-8, optional BOM, `,` separated); a bad row
    /// is an error naming its line and column. (For CSVs too large to hold, stream them with
    /// [`MetadataCsvReader`] into a [`DatabaseWriter`](crate::DatabaseWriter).)
    pub fn from_csv(path: &Path, options: &MetadataCsvOptions) -> Result<Self> {
        let mut reader = MetadataCsvReader::open(path, options)?;
        let mut builder = EntryMetadataBuilder::new(reader.text_columns().to_vec());
        reader.for_each_entry(|key, location, texts| builder.push(key, location, texts))?;
        builder.build()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keys.as_slice().len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Key of the entry at `row`; panics when `row >= len()`, like slice indexing.
    pub fn key(&self, row: usize) -> u64 {
        self.keys.as_slice()[row]
    }

    /// Every key, by row.
    pub fn keys(&self) -> &[u64] {
        self.keys.as_slice()
    }

    /// Location of the entry at `row`; panics when `row >= len()`.
    pub fn location(&self, row: usize) -> GeoPoint {
        let pair = &self.locations.as_slice()[2 * row..2 * row + 2];
        GeoPoint::new(pair[0], pair[1]).expect("locations are validated when built and when opened")
    }

    /// Names of the text fields, in order.
    pub fn text_columns(&self) -> &[String] {
        &self.text_columns
    }

    /// The text field `column` of the entry at `row`; `None` when there is no such column.
    /// Panics when `row >= len()`.
    pub fn text(&self, row: usize, column: &str) -> Option<&str> {
        let column = self.text_columns.iter().position(|c| c == column)?;
        let cell = row * self.text_columns.len() + column;
        let offsets = self.text_offsets.as_slice();
        let range = offsets[cell] as usize..offsets[cell + 1] as usize;
        // Opening checked that the text is UTF-8 and every offset a character boundary.
        std::str::from_utf8(&self.text.as_slice()[range]).ok()
    }

    pub(crate) fn columns(&self) -> MetadataColumns<'_> {
        MetadataColumns {
            keys: self.keys.as_bytes(),
            locations: self.locations.as_bytes(),
            text_offsets: self.text_offsets.as_bytes(),
            text: self.text.as_bytes(),
        }
    }

    /// Reassembles metadata from verified, memory-mapped columns, checking what the
    /// manifest's checksums cannot: that the columns agree with each other and with `count`.
    pub(crate) fn from_mapped(
        count: usize,
        text_columns: Vec<String>,
        keys: (Column<u64>, &Path),
        locations: (Column<f64>, &Path),
        text_offsets: (Column<u64>, &Path),
        text: (Column<u8>, &Path),
        check_contents: bool,
    ) -> Result<Self> {
        let expect_len = |found: usize, expected: usize, path: &Path| {
            if found == expected {
                Ok(())
            } else {
                Err(IndexError::corrupt(
                    path,
                    format!("holds {found} values, expected {expected}"),
                ))
            }
        };
        expect_len(keys.0.as_slice().len(), count, keys.1)?;
        let overflow = |path: &Path| {
            IndexError::corrupt(path, format!("{count} rows overflow the address space"))
        };
        let location_values = count.checked_mul(2).ok_or_else(|| overflow(locations.1))?;
        expect_len(locations.0.as_slice().len(), location_values, locations.1)?;
        if !check_contents {
            // Lengths above; the contents were checked when the stamp was made.
            return Ok(EntryMetadata {
                keys: keys.0,
                locations: locations.0,
                text_columns,
                text_offsets: text_offsets.0,
                text: text.0,
            });
        }
        for (row, pair) in locations.0.as_slice().chunks_exact(2).enumerate() {
            GeoPoint::new(pair[0], pair[1])
                .map_err(|error| IndexError::corrupt(locations.1, format!("row {row}: {error}")))?;
        }
        let offsets_expected = count
            .checked_mul(text_columns.len())
            .and_then(|cells| cells.checked_add(1))
            .ok_or_else(|| overflow(text_offsets.1))?;
        expect_len(
            text_offsets.0.as_slice().len(),
            offsets_expected,
            text_offsets.1,
        )?;
        let bytes = text.0.as_slice();
        let as_text = std::str::from_utf8(bytes)
            .map_err(|error| IndexError::corrupt(text.1, format!("not UTF-8: {error}")))?;
        let offsets = text_offsets.0.as_slice();
        let well_formed = offsets[0] == 0
            && offsets.last() == Some(&(bytes.len() as u64))
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets
                .iter()
                .all(|&o| as_text.is_char_boundary(o as usize));
        if !well_formed {
            return Err(IndexError::corrupt(
                text_offsets.1,
                "text offsets are not increasing character boundaries within the text file",
            ));
        }
        Ok(EntryMetadata {
            keys: keys.0,
            locations: locations.0,
            text_columns,
            text_offsets: text_offsets.0,
            text: text.0,
        })
    }
}

/// Reads a metadata CSV (header row; UTF-8, optional BOM, `,` separated) one entry at a
/// time, so that millions of rows never sit in memory at once. A bad row is an error naming
/// its line and column.
pub struct MetadataCsvReader {
    path: PathBuf,
    options: MetadataCsvOptions,
    reader: csv::Reader<std::fs::File>,
    lines: LineCounter,
    lat_index: usize,
    lon_index: usize,
    key_index: Option<usize>,
    text_indices: Vec<usize>,
    text_columns: Vec<String>,
}

impl MetadataCsvReader {
    /// Opens `path` and finds the columns `options` names in its header.
    pub fn open(path: &Path, options: &MetadataCsvOptions) -> Result<Self> {
        let bad = |line: Option<u64>, message: String| IndexError::BadInput {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .from_path(path)
            .map_err(|error| bad(None, error.to_string()))?;
        let headers = reader
            .headers()
            .map_err(|error| bad(Some(1), error.to_string()))?
            .clone();
        let header_names: Vec<String> = headers
            .iter()
            .enumerate()
            .map(|(index, name)| {
                if index == 0 {
                    name.trim_start_matches('\u{feff}').to_string()
                } else {
                    name.to_string()
                }
            })
            .collect();
        let find = |name: &str| {
            header_names.iter().position(|h| h == name).ok_or_else(|| {
                bad(
                    Some(1),
                    format!("no column {name:?} (the header has {header_names:?})"),
                )
            })
        };
        let lat_index = find(&options.lat_column)?;
        let lon_index = find(&options.lon_column)?;
        let key_index = options.key_column.as_deref().map(find).transpose()?;
        let text_indices: Vec<usize> = match &options.text_columns {
            Some(names) => names.iter().map(|n| find(n)).collect::<Result<_>>()?,
            None => (0..header_names.len())
                .filter(|i| *i != lat_index && *i != lon_index && Some(*i) != key_index)
                .collect(),
        };
        let text_columns = text_indices
            .iter()
            .map(|&i| header_names[i].clone())
            .collect();
        Ok(MetadataCsvReader {
            path: path.to_path_buf(),
            options: options.clone(),
            reader,
            lines: LineCounter::open(path).map_err(IndexError::io(path))?,
            lat_index,
            lon_index,
            key_index,
            text_indices,
            text_columns,
        })
    }

    /// The text fields each entry carries, in order.
    pub fn text_columns(&self) -> &[String] {
        &self.text_columns
    }

    /// Calls `entry(key, location, texts)` for every row, in order, and returns how many
    /// there were. Keys come from the key column, else count rows from 0.
    pub fn for_each_entry(
        &mut self,
        mut entry: impl FnMut(u64, GeoPoint, &[&str]) -> Result<()>,
    ) -> Result<u64> {
        let path = self.path.clone();
        let options = &self.options;
        let bad = |line: Option<u64>, message: String| IndexError::BadInput {
            path: path.clone(),
            line,
            message,
        };
        let lines = &mut self.lines;
        let mut record = csv::StringRecord::new();
        let mut row = 0u64;
        loop {
            let more = self.reader.read_record(&mut record);
            let byte = record.position().map(|p| p.byte()).unwrap_or(0);
            let line_of = |lines: &mut LineCounter| lines.line_at(byte).ok();
            match more {
                Ok(false) => break,
                Ok(true) => {}
                Err(error) => {
                    let line = error.position().and_then(|p| lines.line_at(p.byte()).ok());
                    return Err(bad(line, error.to_string()));
                }
            }
            let field = |index: usize, name: &str, lines: &mut LineCounter| {
                record
                    .get(index)
                    .ok_or_else(|| bad(line_of(lines), format!("the row has no {name:?} field")))
            };
            let number = |index: usize, name: &str, lines: &mut LineCounter| -> Result<f64> {
                let text = field(index, name, lines)?;
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(line_of(lines), format!("{name} {text:?} is not a number")))
            };
            let lat = number(self.lat_index, &options.lat_column, lines)?;
            let lon = number(self.lon_index, &options.lon_column, lines)?;
            let location = GeoPoint::new(lat, lon).map_err(|error| {
                bad(
                    line_of(lines),
                    format!("{}/{}: {error}", options.lat_column, options.lon_column),
                )
            })?;
            let key = match (self.key_index, &options.key_column) {
                (Some(index), Some(name)) => {
                    let text = field(index, name, lines)?;
                    text.trim().parse::<u64>().map_err(|_| {
                        bad(
                            line_of(lines),
                            format!("key {name} {text:?} is not an unsigned integer"),
                        )
                    })?
                }
                _ => row,
            };
            let texts: Vec<&str> = self
                .text_indices
                .iter()
                .map(|&index| record.get(index).unwrap_or(""))
                .collect();
            entry(key, location, &texts)?;
            row += 1;
        }
        Ok(row)
    }
}

/// The raw bytes of each metadata column, for saving.
pub(crate) struct MetadataColumns<'a> {
    pub(crate) keys: &'a [u8],
    pub(crate) locations: &'a [u8],
    pub(crate) text_offsets: &'a [u8],
    pub(crate) text: &'a [u8],
}

/// An entry must carry one value per text column.
pub(crate) fn check_text_count(texts: &[&str], text_columns: &[String]) -> Result<()> {
    if texts.len() != text_columns.len() {
        return Err(IndexError::InvalidConfig(format!(
            "{} text values for {} text columns",
            texts.len(),
            text_columns.len()
        )));
    }
    Ok(())
}

/// Fails on the first key that appears twice, naming both rows.
pub(crate) fn check_unique_keys(keys: &[u64]) -> Result<()> {
    let mut order: Vec<(u64, usize)> = keys.iter().copied().zip(0..).collect();
    order.sort_unstable();
    for pair in order.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(IndexError::DuplicateKey {
                key: pair[0].0,
                first_row: pair[0].1,
                second_row: pair[1].1,
            });
        }
    }
    Ok(())
}

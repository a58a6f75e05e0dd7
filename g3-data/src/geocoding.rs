//! Reverse geocoding a CSV of coordinates (the `g3 geocode` command): every input column is
//! kept, and MP16-Pro's location columns and G3's description are added.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use csv::ByteRecord;
use g3_core::atomic::AtomicFile;
use g3_core::table::{find_column, header_names, line_of_record, read_point};
use g3_core::{Error, GeoPoint};

use crate::description::{DescriptionTemplate, LocationLevel};
use crate::error::Result;
use crate::geocoder::ReverseGeocoder;

/// The columns added (or overwritten, when the input has them), in this order: MP16-Pro's
/// names (city = GeoNames place, county = admin2, state = admin1) and G3's description.
pub const GEOCODE_COLUMNS: [&str; 7] = [
    "city",
    "county",
    "state",
    "country_code",
    "country",
    "continent",
    "description",
];

/// Rows geocoded per parallel batch: large enough to keep every core busy, small enough
/// that memory stays flat on multi-million-row files.
const BATCH_ROWS: usize = 262_144;

/// How [`geocode_csv`] reads its input.
#[derive(Debug, Clone)]
pub struct GeocodeOptions {
    /// Latitude column in degrees (default `LAT`).
    pub latitude_column: String,
    /// Longitude column in degrees (default `LON`).
    pub longitude_column: String,
    /// How the description sentence is built (default: G3's).
    pub description: DescriptionTemplate,
}

impl Default for GeocodeOptions {
    fn default() -> Self {
        GeocodeOptions {
            latitude_column: "LAT".into(),
            longitude_column: "LON".into(),
            description: DescriptionTemplate::default(),
        }
    }
}

/// What [`geocode_csv`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeocodeSummary {
    /// Rows geocoded.
    pub rows: u64,
    /// Seconds spent finding nearest places (the rest is reading and writing CSV).
    pub lookup_seconds: f64,
}

/// Geocodes every row of `input` into `output`, streaming in batches that run on all cores.
/// The output goes through a temporary file renamed into place at the end. `on_progress`
/// receives the number of rows done.
///
/// A row whose coordinates cannot be read is an error naming its line and column.
pub fn geocode_csv(
    input: &Path,
    output: &Path,
    geocoder: &ReverseGeocoder,
    options: &GeocodeOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<GeocodeSummary> {
    let csv_error = |source| Error::Csv {
        path: input.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(|source| Error::Io {
        path: input.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let header = reader.byte_headers().map_err(csv_error)?.clone();
    let names = header_names(&header);
    let latitude = find_column(input, &names, &options.latitude_column)?;
    let longitude = find_column(input, &names, &options.longitude_column)?;
    let mut out_header = header.clone();
    let targets: Vec<usize> = GEOCODE_COLUMNS
        .iter()
        .map(
            |&column| match names.iter().position(|name| name == column) {
                Some(index) => index,
                None => {
                    out_header.push_field(column.as_bytes());
                    out_header.len() - 1
                }
            },
        )
        .collect();

    let temporary = AtomicFile::create(output)?;
    let write_error = |source| Error::Csv {
        path: output.to_path_buf(),
        source,
    };
    let mut writer = csv::WriterBuilder::new()
        .flexible(false)
        .from_writer(BufWriter::with_capacity(1 << 20, temporary.file()));
    writer.write_byte_record(&out_header).map_err(write_error)?;

    let mut records: Vec<ByteRecord> = Vec::with_capacity(BATCH_ROWS);
    let mut points: Vec<GeoPoint> = Vec::with_capacity(BATCH_ROWS);
    let mut rows = 0u64;
    let mut lookup_seconds = 0.0;
    let mut out_record = ByteRecord::new();
    let mut description = String::new();
    loop {
        // Records are reused batch after batch: reading a row allocates nothing once the
        // first batch has grown them.
        points.clear();
        let mut filled = 0;
        while filled < BATCH_ROWS {
            if filled == records.len() {
                records.push(ByteRecord::new());
            }
            let record = &mut records[filled];
            if !reader.read_byte_record(record).map_err(csv_error)? {
                break;
            }
            let point = read_point(
                record,
                (latitude, &options.latitude_column),
                (longitude, &options.longitude_column),
            )
            .map_err(|problem| Error::InvalidRow {
                path: input.to_path_buf(),
                line: line_of_record(
                    input,
                    record.position().expect("the csv reader sets positions"),
                ),
                problem,
            })?;
            points.push(point);
            filled += 1;
        }
        if filled == 0 {
            break;
        }
        let lookup_started = std::time::Instant::now();
        let matches = geocoder.nearest_many(&points);
        lookup_seconds += lookup_started.elapsed().as_secs_f64();
        for (record, matched) in records[..filled].iter().zip(&matches) {
            options
                .description
                .write_description(|level| matched.name(level), &mut description);
            let values: [&str; 7] = [
                matched.name(LocationLevel::City),
                matched.name(LocationLevel::County),
                matched.name(LocationLevel::State),
                matched.name(LocationLevel::CountryCode),
                matched.name(LocationLevel::Country),
                matched.name(LocationLevel::Continent),
                &description,
            ];
            out_record.clear();
            for index in 0..out_header.len() {
                match targets.iter().position(|&target| target == index) {
                    Some(column) => out_record.push_field(values[column].as_bytes()),
                    None => out_record.push_field(record.get(index).unwrap_or(b"")),
                }
            }
            writer.write_byte_record(&out_record).map_err(write_error)?;
        }
        rows += filled as u64;
        on_progress(rows);
    }
    writer.flush().map_err(|source| Error::Io {
        path: output.to_path_buf(),
        source,
    })?;
    drop(writer);
    temporary.commit()?;
    Ok(GeocodeSummary {
        rows,
        lookup_seconds,
    })
}

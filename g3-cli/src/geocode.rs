//! `g3 geocode`: place names and G3's descriptions for a CSV of coordinates, offline.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use g3::data::{COUNTRY_TABLE_ASSET, GAZETTEER_ASSET, NearestPlaceMetric, ReverseGeocoder};
use g3::geocoding::{GEOCODE_COLUMNS, GeocodeOptions, GeocodeSummary, geocode_csv};

use crate::terminal;

#[derive(Debug, Args)]
pub struct GeocodeArgs {
    /// CSV with latitude and longitude columns in degrees; every column is kept.
    #[arg(long, value_name = "coords.csv")]
    input: PathBuf,

    /// Output CSV: the input columns plus city, county, state, country_code, country,
    /// continent and description.
    #[arg(long, value_name = "places.csv")]
    output: PathBuf,

    /// Gazetteer CSV (lat,lon,name,admin1,admin2,cc). Default: GeoNames cities1000 from
    /// the asset cache (scripts/fetch-assets.sh).
    #[arg(long, value_name = "PATH")]
    gazetteer: Option<PathBuf>,

    /// Country table CSV (country_code,country,continent). Default: the asset cache's.
    #[arg(long, value_name = "PATH")]
    countries: Option<PathBuf>,

    /// Which place is nearest: great-circle, or planar-degrees as the Python
    /// reverse_geocoder package does.
    #[arg(long, value_enum, default_value_t = MetricArg::GreatCircle)]
    metric: MetricArg,

    /// Latitude column.
    #[arg(long, default_value = "LAT")]
    lat_column: String,

    /// Longitude column.
    #[arg(long, default_value = "LON")]
    lon_column: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    GreatCircle,
    PlanarDegrees,
}

pub fn run(args: GeocodeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let gazetteer = match args.gazetteer {
        Some(path) => path,
        None => GAZETTEER_ASSET.require()?,
    };
    let countries = match args.countries {
        Some(path) => Some(path),
        None => Some(COUNTRY_TABLE_ASSET.require()?),
    };
    let metric = match args.metric {
        MetricArg::GreatCircle => NearestPlaceMetric::GreatCircle,
        MetricArg::PlanarDegrees => NearestPlaceMetric::PlanarDegrees,
    };
    let geocoder = ReverseGeocoder::load_with_metric(&gazetteer, countries.as_deref(), metric)
        .with_context(|| format!("cannot load the gazetteer {}", gazetteer.display()))?;
    let loaded = started.elapsed().as_secs_f64();

    let progress = terminal::spinner("{spinner} geocoding: {pos} rows ({per_sec})");
    let options = GeocodeOptions {
        latitude_column: args.lat_column,
        longitude_column: args.lon_column,
        ..GeocodeOptions::default()
    };
    let GeocodeSummary {
        rows,
        lookup_seconds,
    } = geocode_csv(
        &args.input,
        &args.output,
        &geocoder,
        &options,
        &mut |rows| progress.set_position(rows),
    )?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({rows} rows + {}) in {seconds:.2} s: {} places loaded in {loaded:.2} s; \
         {:.0} rows/s end to end, {:.0} points/s in the nearest-place lookup",
        args.output.display(),
        GEOCODE_COLUMNS.join(", "),
        geocoder.places().len(),
        rows as f64 / (seconds - loaded).max(1e-9),
        rows as f64 / lookup_seconds.max(1e-9)
    );
    Ok(())
}

//! GPS encoder throughput on one device: coordinates per second of the embedding loop at
//! several batch sizes, with GeoCLIP's pretrained weights already loaded.
//!
//! Each batch size is warmed up first, so GPU shader compilation and kernel autotuning stay
//! out of the measured loop (PyTorch's side of `benches/compare/gps_encoder.py` is warmed up
//! the same way). One line per batch size is printed, for that script to read:
//!
//! ```text
//! batch=256 points=8192 seconds=0.512 coordinates_per_second=16000
//! ```
//!
//! ```sh
//! scripts/fetch-assets.sh
//! cargo run --release --example gps_throughput -- --device cpu
//! cargo run --release --features wgpu --example gps_throughput -- --device wgpu --scale 8
//! ```

use std::hint::black_box;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use g3::GeoPoint;
use g3::align::{ComputeDevice, GpsEncoder, GpsEncoderConfig, ProjectionKind};
use g3::core::assets::Asset;

#[derive(Debug, Parser)]
struct Arguments {
    /// Where the encoder runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Input projection: GeoCLIP's Equal Earth or G3's Mercator.
    #[arg(long, value_enum, default_value_t = ProjectionArg::EqualEarth)]
    projection: ProjectionArg,
    /// Batch sizes to time, each over its own number of points (batch:points).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1:300,21:2100,256:8192,16384:32768"
    )]
    runs: Vec<String>,
    /// Multiplies the number of points of every run whose batch is larger than 1 (a GPU needs
    /// more work per run for a stable figure).
    #[arg(long, default_value_t = 1)]
    scale: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Flex,
    Wgpu,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProjectionArg {
    EqualEarth,
    Mercator,
}

/// A deterministic spread over the globe (golden-angle spiral), as in the comparison script.
fn spiral(count: usize) -> Vec<GeoPoint> {
    (0..count)
        .map(|index| {
            let t = (index as f64 + 0.5) / count as f64;
            let lat = (1.0 - 2.0 * t).asin().to_degrees();
            let lon = (index as f64 * 137.507_764_050_037_85) % 360.0 - 180.0;
            GeoPoint::new(lat, lon).expect("the spiral stays on the globe")
        })
        .collect()
}

fn parse_run(text: &str) -> Result<(usize, usize), String> {
    let (batch, points) = text
        .split_once(':')
        .ok_or_else(|| format!("run {text:?} is not BATCH:POINTS"))?;
    let parse = |value: &str| {
        value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&number| number > 0)
            .ok_or_else(|| format!("run {text:?}: {value:?} is not a positive integer"))
    };
    Ok((parse(batch)?, parse(points)?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments = Arguments::parse();
    let device = match arguments.device {
        DeviceArg::Cpu => ComputeDevice::Cpu,
        DeviceArg::Flex => ComputeDevice::Flex,
        DeviceArg::Wgpu => ComputeDevice::Wgpu,
    }
    .to_device()?;
    let projection = match arguments.projection {
        ProjectionArg::EqualEarth => ProjectionKind::EqualEarth,
        ProjectionArg::Mercator => ProjectionKind::Mercator,
    };
    let weights = Asset::GEOCLIP_LOCATION_ENCODER.require()?;
    for run in &arguments.runs {
        let (batch, mut count) = parse_run(run)?;
        if batch > 1 {
            count *= arguments.scale.max(1);
        }
        let config = GpsEncoderConfig {
            projection,
            batch_size: batch,
            ..GpsEncoderConfig::geoclip()
        };
        let encoder = GpsEncoder::load(&weights, config, &device)?;
        let points = spiral(count);
        let first = &points[..batch.min(points.len())];
        for _ in 0..3 {
            black_box(encoder.embed(first)?);
        }
        let started = Instant::now();
        for chunk in points.chunks(batch) {
            black_box(encoder.embed(chunk)?);
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "batch={batch} points={count} seconds={seconds:.4} coordinates_per_second={:.0}",
            count as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}

//! `g3 embed-gps`: GPS embeddings of a CSV of coordinates, written as `.npy`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::terminal;
use g3::align::{
    ComputeDevice, GpsEncoder, GpsEncoderConfig, ProjectionHeadConfig, ProjectionKind,
};
use g3::core::assets::Asset;
use g3::{EmbeddingFileWriter, read_points_csv};

#[derive(Debug, Args)]
pub struct EmbedGpsArgs {
    /// Weights: GeoCLIP's location_encoder_weights.pth, a G3 checkpoint (g3.pth) or a
    /// safetensors file. Default: GeoCLIP's weights from the asset cache.
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,

    /// How coordinates become encoder input: mercator (G3) or equal-earth (GeoCLIP).
    #[arg(long, value_enum)]
    projection: ProjectionArg,

    /// CSV with columns LAT and LON in degrees (other columns are ignored).
    #[arg(long, value_name = "coords.csv")]
    input: PathBuf,

    /// Output: float32 .npy of shape [rows, 512], or [rows, 768] with --head; rows in input order.
    #[arg(long, value_name = "emb.npy")]
    output: PathBuf,

    /// Apply G3's location_projection_else head (needs a G3 checkpoint).
    #[arg(long)]
    head: bool,

    /// Coordinates per forward pass.
    #[arg(long, default_value_t = 4096)]
    batch: usize,

    /// Where the model runs: cpu, flex (build with --features flex) or wgpu (build with
    /// --features wgpu).
    #[arg(long, default_value_t = ComputeDevice::Cpu)]
    device: ComputeDevice,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProjectionArg {
    Mercator,
    EqualEarth,
}

pub fn run(args: EmbedGpsArgs) -> anyhow::Result<()> {
    let weights = match args.weights {
        Some(path) => path,
        None => Asset::GEOCLIP_LOCATION_ENCODER.require()?,
    };
    let device = args.device.to_device()?;
    let config = GpsEncoderConfig {
        projection: match args.projection {
            ProjectionArg::Mercator => ProjectionKind::Mercator,
            ProjectionArg::EqualEarth => ProjectionKind::EqualEarth,
        },
        head: args.head.then_some(ProjectionHeadConfig::G3_LOCATION),
        batch_size: args.batch,
        ..GpsEncoderConfig::geoclip()
    };
    let encoder = GpsEncoder::load(&weights, config, &device)
        .with_context(|| format!("cannot load the GPS encoder from {}", weights.display()))?;
    let points = read_points_csv(&args.input, "LAT", "LON")?;

    let dimension = encoder.branch().output_size();
    let mut output = EmbeddingFileWriter::create(&args.output, points.len(), dimension)?;
    let progress = terminal::progress_bar(
        points.len() as u64,
        "{spinner} embedding {bar:40} {pos}/{len} coordinates ({per_sec}, {eta})",
    );
    let started = Instant::now();
    for batch in points.chunks(args.batch.max(1)) {
        output.write(&encoder.embed(batch)?)?;
        progress.inc(batch.len() as u64);
    }
    output.finish()?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} [{} x {dimension}] in {seconds:.2} s ({:.0} coordinates/s)",
        args.output.display(),
        points.len(),
        points.len() as f64 / seconds.max(1e-9)
    );
    Ok(())
}

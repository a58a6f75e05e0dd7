//! GeoRanker reward passes per second on one device: the reward model loaded (LoRA merged),
//! the same batch of conversations scored again and again.
//!
//! By default the batch is the tiny random Qwen2-VL of g3-qwen2-vl's goldens with its three
//! prompts of GeoRanker's shapes (281 tokens, 5 photos), which
//! `benches/compare/georanker.py` times in transformers + PEFT side by side. With `--model`
//! and `--adapter` the real model scores a batch of the same layout at its own size. Each
//! run is warmed up first; one line is printed for the script to read:
//!
//! ```text
//! batch=3 passes=20 seconds=1.234 sequences_per_second=48.6
//! ```
//!
//! ```sh
//! cargo run --release --example reward_throughput -- --passes 20
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use g3::align::ComputeDevice;
use g3::qwen2_vl::{ImageGrid, MultimodalBatch, load_reward_model};

#[derive(Debug, Parser)]
struct Arguments {
    /// The base model folder (default: the tiny fixture model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The adapter folder (default: the tiny fixture adapter).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Timed passes over the batch.
    #[arg(long, default_value_t = 20)]
    passes: usize,
    /// Sequences per pass: the first N of the fixture batch (1 to 3).
    #[arg(long, default_value_t = 3)]
    batch: usize,
    /// Where the model runs: cpu, or wgpu (built with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("g3-qwen2-vl/tests/fixtures/tiny")
        .join(name)
}

fn read_npy<T: npyz::Deserialize>(path: &Path) -> Result<(Vec<usize>, Vec<T>), Box<dyn Error>> {
    let bytes = std::fs::read(path)?;
    let npy = npyz::NpyFile::new(&bytes[..])?;
    let shape = npy.shape().iter().map(|&n| n as usize).collect();
    Ok((shape, npy.into_vec::<T>()?))
}

/// The goldens' left-padded batch: token ids, mask, and the photos of each sequence.
fn fixture_batch(sequences: usize) -> Result<MultimodalBatch, Box<dyn Error>> {
    let (shape, ids) = read_npy::<i64>(&fixture("input_ids.npy"))?;
    let (_, mask) = read_npy::<i64>(&fixture("attention_mask.npy"))?;
    let length = shape[1];
    if !(1..=shape[0]).contains(&sequences) {
        return Err(format!("--batch takes 1 to {} sequences", shape[0]).into());
    }
    let grids: Vec<(String, ImageGrid)> = std::fs::read_to_string(fixture("images.csv"))?
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let number = |index: usize| fields[index].parse::<usize>().unwrap_or(0);
            (
                fields[0].to_owned(),
                ImageGrid {
                    frames: number(3),
                    rows: number(4),
                    columns: number(5),
                },
            )
        })
        .collect();
    let mut batch = MultimodalBatch {
        batch: sequences,
        input_ids: ids[..sequences * length]
            .iter()
            .map(|&id| id as u32)
            .collect(),
        attention_mask: mask[..sequences * length]
            .iter()
            .map(|&bit| bit == 1)
            .collect(),
        pixel_values: Vec::new(),
        image_grids: Vec::new(),
    };
    for line in std::fs::read_to_string(fixture("sequence_images.csv"))?
        .lines()
        .skip(1)
    {
        let (sequence, name) = line.split_once(',').unwrap_or_default();
        if sequence.parse::<usize>()? >= sequences {
            continue;
        }
        let (_, grid) = grids
            .iter()
            .find(|(photo, _)| photo == name)
            .ok_or_else(|| format!("{name} is not in images.csv"))?;
        let stem = name.split('.').next().unwrap_or(name);
        let (_, values) = read_npy::<f32>(&fixture(&format!("pixels_{stem}.npy")))?;
        batch.pixel_values.extend(values);
        batch.image_grids.push(*grid);
    }
    Ok(batch)
}

fn main() -> Result<(), Box<dyn Error>> {
    let arguments = Arguments::parse();
    let device = match arguments.device.as_str() {
        "cpu" => ComputeDevice::Cpu,
        "wgpu" => ComputeDevice::Wgpu,
        other => return Err(format!("unknown device {other:?}: cpu or wgpu").into()),
    }
    .to_device()?;
    let model_folder = arguments.model.unwrap_or_else(|| fixture("model"));
    let adapter_folder = arguments.adapter.unwrap_or_else(|| fixture("adapter"));
    let model = load_reward_model(&model_folder, &adapter_folder, &device)?;
    let batch = fixture_batch(arguments.batch)?;
    for _ in 0..2 {
        model.rewards(&batch)?;
    }
    let start = Instant::now();
    for _ in 0..arguments.passes {
        std::hint::black_box(model.rewards(&batch)?);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "batch={} passes={} seconds={seconds:.3} sequences_per_second={:.2}",
        arguments.batch,
        arguments.passes,
        (arguments.batch * arguments.passes) as f64 / seconds
    );
    Ok(())
}

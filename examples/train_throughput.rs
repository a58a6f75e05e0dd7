//! Geo-alignment training throughput from cached features: G3's full-size trainable model
//! (GPS encoder, four heads, temperatures), G3's loss with text, AdamW; prints samples/s.
//! `benches/compare/train_step.py` runs it beside PyTorch.
//!
//! ```text
//! cargo run --release --example train_throughput -- [--batch 256] [--steps 10] [--device cpu|wgpu]
//! ```

use std::time::Instant;

use g3::GeoPoint;
use g3::align::ComputeDevice;
use g3::align::training::{AlignmentModelConfig, FeatureRows, Trainer, TrainingConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut batch = 256usize;
    let mut steps = 10usize;
    let mut device = ComputeDevice::Cpu;
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let value = arguments.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--batch" => batch = value.parse()?,
            "--steps" => steps = value.parse()?,
            "--device" => {
                device = match value.as_str() {
                    "cpu" => ComputeDevice::Cpu,
                    "wgpu" => ComputeDevice::Wgpu,
                    other => return Err(format!("unknown device {other}").into()),
                }
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let device = device.to_device()?.autodiff();
    let model_config = AlignmentModelConfig::default();
    let width = model_config.feature_size;
    let model = model_config.init(&device, 0)?;
    let config = TrainingConfig {
        batch_size: batch,
        ..TrainingConfig::default()
    };
    let mut trainer = Trainer::new(config, model, &device)?;
    let mut rng = fastrand::Rng::with_seed(1);
    let mut values = |count: usize| {
        (0..count)
            .map(|_| rng.f32() * 4.0 - 2.0)
            .collect::<Vec<f32>>()
    };
    let rows = FeatureRows {
        image_features: values(batch * width),
        text_features: Some(values(batch * width)),
        locations: (0..batch)
            .map(|index| {
                let t = (index as f64 + 0.5) / batch as f64;
                let lat = (1.0 - 2.0 * t).asin().to_degrees().clamp(-80.0, 80.0);
                let lon = (index as f64 * 137.507_764_050_037_85) % 360.0 - 180.0;
                GeoPoint::new(lat, lon)
            })
            .collect::<Result<_, _>>()?,
    };
    let batch_tensors = trainer.batch_from_rows(rows)?;
    // Warm-up (allocations, kernel selection on GPUs).
    for _ in 0..2 {
        trainer.step(&batch_tensors)?;
    }
    let started = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = trainer.step(&batch_tensors)?.loss;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "batch {batch}: {:.1} ms/step, {:.1} samples/s (loss {loss:.4})",
        1000.0 * seconds / steps as f64,
        (batch * steps) as f64 / seconds
    );
    Ok(())
}

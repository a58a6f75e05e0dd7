//! Geo-alignment training throughput (samples/s) from cached CLIP features: one optimisation
//! step of G3's full-size trainable model (GPS encoder, four heads, temperatures; G3's loss
//! with text, AdamW) at batch 256, as `g3 train` runs it.
//!
//! Run with `cargo bench --bench training` (add `--features wgpu` to measure the GPU too).
//! `benches/compare/train_step.py` measures, on the same machine, the same step in PyTorch and
//! the reference's step, which also runs the frozen ViT-L/14 on every image.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use g3::GeoPoint;
use g3::align::ComputeDevice;
use g3::align::training::{AlignmentModelConfig, FeatureRows, Trainer, TrainingConfig};

const BATCH: usize = 256;

fn rows(feature_size: usize) -> FeatureRows {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut values = |count: usize| {
        (0..count)
            .map(|_| rng.f32() * 4.0 - 2.0)
            .collect::<Vec<f32>>()
    };
    let image_features = values(BATCH * feature_size);
    let text_features = values(BATCH * feature_size);
    let locations = (0..BATCH)
        .map(|index| {
            let t = (index as f64 + 0.5) / BATCH as f64;
            let lat = (1.0 - 2.0 * t).asin().to_degrees().clamp(-80.0, 80.0);
            let lon = (index as f64 * 137.507_764_050_037_85) % 360.0 - 180.0;
            GeoPoint::new(lat, lon).unwrap()
        })
        .collect();
    FeatureRows {
        image_features,
        text_features: Some(text_features),
        locations,
    }
}

fn training_step(c: &mut Criterion) {
    let mut devices = vec![("ndarray", ComputeDevice::Cpu)];
    if cfg!(feature = "wgpu") {
        devices.push(("wgpu", ComputeDevice::Wgpu));
    }
    let mut group = c.benchmark_group("training_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, device) in devices {
        let device = device.to_device().unwrap().autodiff();
        let model_config = AlignmentModelConfig::default();
        let model = model_config.init(&device, 0).unwrap();
        let config = TrainingConfig {
            batch_size: BATCH,
            ..TrainingConfig::default()
        };
        let mut trainer = Trainer::new(config, model, &device).unwrap();
        let batch = trainer
            .batch_from_rows(rows(model_config.feature_size))
            .unwrap();
        group.bench_function(BenchmarkId::new(name, BATCH), |b| {
            b.iter(|| black_box(trainer.step(&batch).unwrap().loss));
        });
    }
    group.finish();
}

criterion_group!(benches, training_step);
criterion_main!(benches);

//! GPS encoder throughput (coordinates/s) on the CPU with GeoCLIP's pretrained weights, at
//! batch sizes 1, 256 and 16384, Equal Earth and Mercator input.
//!
//! Needs the weights from `scripts/fetch-assets.sh`. Run with `cargo bench --bench gps_encoder`
//! (add `--features flex` or `--features wgpu` to measure those backends too).
//! `benches/compare/gps_encoder.py` measures PyTorch on the same machine.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use g3::GeoPoint;
use g3::align::{ComputeDevice, GpsEncoder, GpsEncoderConfig, ProjectionKind};
use g3::core::assets::Asset;

fn points(count: usize) -> Vec<GeoPoint> {
    // A deterministic spread over the globe (golden-angle spiral).
    (0..count)
        .map(|index| {
            let t = (index as f64 + 0.5) / count as f64;
            let lat = (1.0 - 2.0 * t).asin().to_degrees();
            let lon = (index as f64 * 137.507_764_050_037_85) % 360.0 - 180.0;
            GeoPoint::new(lat, lon).unwrap()
        })
        .collect()
}

fn gps_encoder(c: &mut Criterion) {
    let weights = Asset::GEOCLIP_LOCATION_ENCODER
        .require()
        .unwrap_or_else(|error| panic!("{error}"));
    let mut devices = vec![("ndarray", ComputeDevice::Cpu)];
    if cfg!(feature = "flex") {
        devices.push(("flex", ComputeDevice::Flex));
    }
    if cfg!(feature = "wgpu") {
        devices.push(("wgpu", ComputeDevice::Wgpu));
    }
    let mut group = c.benchmark_group("gps_encoder");
    group.sample_size(10);
    for (device_name, device) in devices {
        let device = device.to_device().unwrap();
        for projection in [ProjectionKind::EqualEarth, ProjectionKind::Mercator] {
            for batch in [1usize, 256, 16384] {
                let config = GpsEncoderConfig {
                    projection,
                    batch_size: batch,
                    ..GpsEncoderConfig::geoclip()
                };
                let encoder = GpsEncoder::load(&weights, config, &device).unwrap();
                let input = points(batch);
                group.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(format!("{device_name}/{projection:?}"), batch);
                group.bench_with_input(id, &input, |b, input| {
                    b.iter(|| black_box(encoder.embed(input).unwrap()))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, gps_encoder);
criterion_main!(benches);

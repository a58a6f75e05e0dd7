//! Offline reverse geocoding: nearest GeoNames place for 100,000 points, one thread and all
//! cores, both metrics, on two workloads (GeoCLIP's MP16 photo coordinates, and a uniform
//! spiral over the sphere, mostly ocean). Needs `scripts/fetch-assets.sh`.
//!
//! Run with `cargo bench --bench reverse_geocode`; `benches/compare/reverse_geocode.py`
//! compares the same lookups with the Python `reverse_geocoder` package.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use g3::data::{NearestPlaceMetric, ReverseGeocoder};
use g3::{GeoPoint, read_points_csv};

fn spiral(count: usize) -> Vec<GeoPoint> {
    (0..count)
        .map(|index| {
            let lat = (1.0 - 2.0 * (index as f64 + 0.5) / count as f64)
                .asin()
                .to_degrees();
            let lon = (index as f64 * 137.507_764_050_037_85) % 360.0 - 180.0;
            GeoPoint::new(lat, lon).expect("a valid point")
        })
        .collect()
}

fn reverse_geocode(criterion: &mut Criterion) {
    let geocoder =
        ReverseGeocoder::load_default().expect("scripts/fetch-assets.sh fetches the gazetteer");
    let gallery = g3::core::assets::Asset::GEOCLIP_GPS_GALLERY
        .require()
        .expect("scripts/fetch-assets.sh fetches the GeoCLIP gallery");
    let workloads = [
        (
            "photo_locations",
            read_points_csv(&gallery, "LAT", "LON").expect("the gallery reads"),
        ),
        ("uniform_sphere", spiral(100_000)),
    ];
    let mut group = criterion.benchmark_group("reverse_geocode");
    group.sample_size(10);
    for metric in [
        NearestPlaceMetric::GreatCircle,
        NearestPlaceMetric::PlanarDegrees,
    ] {
        let geocoder = ReverseGeocoder::new_with_metric(
            geocoder.places().to_vec(),
            geocoder.countries().clone(),
            metric,
        )
        .expect("a geocoder");
        for (name, points) in &workloads {
            group.throughput(Throughput::Elements(points.len() as u64));
            group.bench_function(format!("{metric:?}/{name}/one_thread"), |b| {
                b.iter(|| {
                    for &point in points {
                        black_box(geocoder.nearest(point));
                    }
                })
            });
            group.bench_function(format!("{metric:?}/{name}/all_cores"), |b| {
                b.iter(|| black_box(geocoder.nearest_many(points)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, reverse_geocode);
criterion_main!(benches);

//! `g3 eval` throughput: scoring a 1,000,000-row predictions CSV (read, geodesic distance per
//! row, accuracy report, scored CSV written through a temporary file).
//!
//! Run with `cargo bench --bench evaluate_csv`. Each iteration processes the whole file, so
//! the reported time is the time `g3 eval` spends on a million rows, minus process start-up.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};

const ROWS: u64 = 1_000_000;

/// A predictions file shaped like G3's output: an image id, the truth, the prediction
/// (within a few hundred km of the truth, as most predictions are) and a spare column.
fn write_predictions(path: &Path) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        // SplitMix64: deterministic, dependency-free, good enough for synthetic coordinates.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let mut text = String::with_capacity(80 * ROWS as usize);
    text.push_str("IMG_ID,LAT,LON,LAT_pred,LON_pred,scene\n");
    for row in 0..ROWS {
        let lat = uniform() * 160.0 - 80.0;
        let lon = uniform() * 360.0 - 180.0;
        let lat_pred = (lat + (uniform() - 0.5) * 6.0).clamp(-90.0, 90.0);
        let lon_pred = lon + (uniform() - 0.5) * 6.0;
        writeln!(
            text,
            "{row}.jpg,{lat:.6},{lon:.6},{lat_pred:.6},{lon_pred:.6},outdoor"
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn evaluate_one_million_rows(c: &mut Criterion) {
    let directory = tempfile::tempdir().unwrap();
    let input = directory.path().join("predictions.csv");
    let output = directory.path().join("scored.csv");
    write_predictions(&input);
    let options = EvaluationOptions::default();

    let mut group = c.benchmark_group("g3_eval");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("1M_rows_geodesic_with_output", |b| {
        b.iter(|| {
            let evaluation =
                evaluate_predictions_csv(&input, Some(&output), &options, &mut |_| {}).unwrap();
            black_box(evaluation.report.rows)
        })
    });
    group.bench_function("1M_rows_geodesic_report_only", |b| {
        b.iter(|| {
            let evaluation = evaluate_predictions_csv(&input, None, &options, &mut |_| {}).unwrap();
            black_box(evaluation.report.rows)
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate_one_million_rows);
criterion_main!(benches);

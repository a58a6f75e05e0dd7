//! Helpers shared by g3-index's integration tests.

/// `count` pseudo-random unit vectors of `dimension`, the same for the same `seed`.
pub fn unit_vectors(count: usize, dimension: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut values: Vec<f32> = (0..count * dimension)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    for row in values.chunks_exact_mut(dimension) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

//! The f32 inner product both stores score with.
//!
//! usearch's own f32 inner-product kernel (NumKong, AVX2 build) widens every component to f64
//! and keeps one chain of 4-lane fused multiply-adds. [`dot`] keeps 16 independent f32
//! partial sums instead, and on x86-64 CPUs with AVX2 and FMA runs a copy of itself compiled
//! for those instructions (chosen at run time, so one binary still runs on any x86-64 CPU).
//! Swapping it into the HNSW store made building and searching 2304-d graphs 1.25 to 1.5
//! times as fast on two AMD EPYC cores.

/// Independent partial sums: enough to fill two 8-wide registers' worth of multiply-add
/// latency, and a multiple of every SIMD width the compiler may pick.
const LANES: usize = 16;

/// The inner product of two slices of equal length.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { dot_avx2_fma(a, b) };
        }
    }
    dot_lanes::<false>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

/// The kernel, written so the compiler vectorises it without reassociating additions:
/// lane `i` sums components `i, i + 16, i + 32, ...`. `FUSED` uses `mul_add`, which is one
/// instruction only where FMA is enabled (elsewhere it would be a library call).
#[inline(always)]
fn dot_lanes<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let whole = a.len() - a.len() % LANES;
    let (a_head, a_tail) = a.split_at(whole);
    let (b_head, b_tail) = b.split_at(whole);
    for (a, b) in a_head.chunks_exact(LANES).zip(b_head.chunks_exact(LANES)) {
        for lane in 0..LANES {
            sums[lane] = if FUSED {
                a[lane].mul_add(b[lane], sums[lane])
            } else {
                sums[lane] + a[lane] * b[lane]
            };
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(a, b)| a * b).sum();
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(count: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn every_length_matches_a_double_precision_sum() {
        for len in 0..80 {
            let a = pseudo_random(len, 3 + len as u32);
            let b = pseudo_random(len, 1000 + len as u32);
            let expected: f64 = a.iter().zip(&b).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((dot(&a, &b) as f64 - expected).abs() < 1e-5, "length {len}");
            assert!(
                (dot_lanes::<false>(&a, &b) as f64 - expected).abs() < 1e-5,
                "length {len}"
            );
        }
    }

    #[test]
    fn long_vectors_keep_single_precision_accuracy() {
        let a = pseudo_random(2304, 7);
        let b = pseudo_random(2304, 8);
        let expected: f64 = a.iter().zip(&b).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!((dot(&a, &b) as f64 - expected).abs() < 1e-3);
    }
}

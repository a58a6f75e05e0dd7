//! The f32 inner product both vector stores score with.
//!
//! usearch's own f32 inner-product kernel (NumKong, AVX2 build) widens every component to
//! f64 and keeps one chain of 4-lane fused multiply-adds. [`dot`] keeps 16 independent f32
//! partial sums instead, with fused multiply-adds where the CPU has them: swapping it into
//! the HNSW store made building and searching 2304-d graphs markedly faster (docs/performance.md
//! has the figures).

use crate::dispatch::dispatch;
use crate::lanes::LANES;

dispatch! {
    /// The inner product of two slices of equal length (checked in debug builds; the longer
    /// one's extra values are ignored otherwise).
    ///
    /// Lane `i` of 16 sums components `i, i + 16, …`, so the result is the same on every CPU
    /// with FMA (AVX-512 or AVX2) and within rounding of it on CPUs without.
    pub fn dot / dot_at(a: &[f32], b: &[f32]) -> f32 = dot_lanes::<FMA>
}

/// The kernel, written so the compiler vectorises it without reassociating additions.
/// `FUSED` uses `mul_add`, which is one instruction only where FMA is enabled (elsewhere it
/// would be a library call).
#[inline(always)]
fn dot_lanes<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
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
    use crate::dispatch::Level;
    use crate::lanes::testing::pseudo_random;

    fn reference(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn every_length_and_instruction_set_matches_a_double_precision_sum() {
        for len in 0..80 {
            let a = pseudo_random(len, 3 + len as u32);
            let b = pseudo_random(len, 1000 + len as u32);
            let expected = reference(&a, &b);
            assert!((dot(&a, &b) as f64 - expected).abs() < 1e-5, "length {len}");
            for level in Level::supported() {
                let found = dot_at(level, &a, &b) as f64;
                assert!((found - expected).abs() < 1e-5, "length {len}, {level:?}");
            }
        }
    }

    #[test]
    fn copies_with_fused_multiply_adds_agree_to_the_bit() {
        let a = pseudo_random(2304 + 5, 11);
        let b = pseudo_random(2304 + 5, 12);
        let fused = dot_lanes::<true>(&a, &b);
        for level in Level::supported() {
            #[cfg(target_arch = "x86_64")]
            if level.is_avx512() || level.is_avx2_fma() {
                assert_eq!(
                    dot_at(level, &a, &b).to_bits(),
                    fused.to_bits(),
                    "{level:?}"
                );
            }
        }
    }

    #[test]
    fn long_vectors_keep_single_precision_accuracy() {
        let a = pseudo_random(2304, 7);
        let b = pseudo_random(2304, 8);
        assert!((dot(&a, &b) as f64 - reference(&a, &b)).abs() < 1e-3);
    }
}

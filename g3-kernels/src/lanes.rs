//! Reductions in independent partial sums, shared by the kernels.
//!
//! A loop `total += x[i]` cannot be vectorised: float addition is not associative, so the
//! compiler must keep the order. Summing into [`LANES`] independent accumulators (lane `i`
//! takes elements `i, i + LANES, …`) fixes an order that SIMD registers can follow, so every
//! copy of a kernel (AVX-512, AVX2, baseline) gives the same bits.

/// Independent partial sums per reduction: a multiple of every SIMD width the compiler may
/// pick (16 floats fill one AVX-512 register, two AVX2 ones), and enough to hide the latency
/// of dependent additions.
pub(crate) const LANES: usize = 16;

/// The sum of `values`, in [`LANES`] partial sums plus the tail.
#[inline(always)]
pub(crate) fn sum(values: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let whole = values.len() - values.len() % LANES;
    for chunk in values[..whole].chunks_exact(LANES) {
        for lane in 0..LANES {
            sums[lane] += chunk[lane];
        }
    }
    sums.iter().sum::<f32>() + values[whole..].iter().sum::<f32>()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Inputs for the kernels' tests.

    /// `count` values in [-1, 1) from a xorshift generator.
    pub(crate) fn pseudo_random(count: usize, seed: u32) -> Vec<f32> {
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

    /// `values` rounded to f16, as their bits (the f16 kernels' row layout).
    pub(crate) fn halves(values: &[f32]) -> Vec<u16> {
        values
            .iter()
            .map(|value| half::f16::from_f32(*value).to_bits())
            .collect()
    }

    /// Lengths that exercise every tail: empty, shorter than one register, one lane group
    /// plus or minus one, and odd lengths past several groups.
    pub(crate) const ODD_LENGTHS: [usize; 12] = [0, 1, 3, 7, 15, 16, 17, 31, 33, 47, 100, 257];
}

#[cfg(test)]
mod tests {
    use super::testing::{ODD_LENGTHS, pseudo_random};
    use super::*;

    #[test]
    fn sums_match_a_double_precision_sum() {
        for len in ODD_LENGTHS {
            let values = pseudo_random(len, len as u32 + 1);
            let expected: f64 = values.iter().map(|v| *v as f64).sum();
            assert!(
                (sum(&values) as f64 - expected).abs() < 1e-5,
                "length {len}"
            );
        }
    }
}

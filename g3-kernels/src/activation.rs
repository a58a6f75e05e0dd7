//! Activations and softmax: the exponentials a ViT block spends its time outside matrix
//! products on.
//!
//! The standard library's `exp` is a call per value that no loop vectorises; [`exp`] here is
//! branch-free arithmetic, so loops over it compile to SIMD code in each instruction set's
//! copy (see [`crate::dispatch`]).

use rayon::prelude::*;

use crate::dispatch::dispatch;
use crate::lanes::{LANES, sum};

/// Values activated per parallel task: enough work to dwarf scheduling.
const VALUES_PER_TASK: usize = 65_536;

/// A feed-forward activation of a transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(1.702 x)`, OpenAI CLIP's `quick_gelu`.
    QuickGelu,
    /// The exact GELU, `x · Φ(x)` (PyTorch's `gelu` without the tanh approximation).
    Gelu,
}

impl Activation {
    /// Applies the activation to every value, in place, on all rayon threads.
    pub fn apply(self, values: &mut [f32]) {
        values
            .par_chunks_mut(VALUES_PER_TASK)
            .for_each(|chunk| match self {
                Activation::QuickGelu => quick_gelu(chunk),
                Activation::Gelu => gelu(chunk),
            });
    }
}

dispatch! {
    /// `x · sigmoid(1.702 x)` for every value, in place, on this thread.
    pub fn quick_gelu / quick_gelu_at(values: &mut [f32]) = generic::quick_gelu
}

dispatch! {
    /// `x / 2 · (1 + erf(x / √2))` for every value, in place, on this thread; erf within
    /// 1.5e-7.
    pub fn gelu / gelu_at(values: &mut [f32]) = generic::gelu
}

dispatch! {
    /// `exp(x - max) / Σ exp(x - max)` over `row`, in place: the softmax of attention
    /// scores. Values below the maximum by more than 87 get 1.2e-38 before normalisation
    /// instead of a subnormal or zero (see [`exp`]'s clamp), which changes no float32
    /// probability that matters.
    pub fn softmax / softmax_at(row: &mut [f32]) = generic::softmax
}

/// `max(x, 0)` for every value, in place, like PyTorch's `relu`: negatives become 0, NaN
/// stays NaN.
pub fn relu(values: &mut [f32]) {
    for value in values.iter_mut() {
        if *value < 0.0 {
            *value = 0.0;
        }
    }
}

/// The kernels, written so the compiler vectorises them (always inlined into each
/// instruction set's copy).
mod generic {
    use super::{LANES, erf, exp, sum};

    #[inline(always)]
    pub(super) fn quick_gelu(values: &mut [f32]) {
        for value in values.iter_mut() {
            *value /= 1.0 + exp(-1.702 * *value);
        }
    }

    #[inline(always)]
    pub(super) fn gelu(values: &mut [f32]) {
        for value in values.iter_mut() {
            *value *= 0.5 * (1.0 + erf(*value * std::f32::consts::FRAC_1_SQRT_2));
        }
    }

    #[inline(always)]
    pub(super) fn softmax(row: &mut [f32]) {
        let mut maxima = [f32::NEG_INFINITY; LANES];
        let whole = row.len() - row.len() % LANES;
        for chunk in row[..whole].chunks_exact(LANES) {
            for lane in 0..LANES {
                maxima[lane] = maxima[lane].max(chunk[lane]);
            }
        }
        let max = row[whole..].iter().fold(
            maxima.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)),
            |a, b| a.max(*b),
        );
        for value in row.iter_mut() {
            *value = exp(*value - max);
        }
        let inverse = 1.0 / sum(row);
        for value in row.iter_mut() {
            *value *= inverse;
        }
    }
}

/// `e^x` in single precision, within a few ulp: `x = n ln 2 + r` with `|r| ≤ ln 2 / 2`, the
/// degree-7 Taylor polynomial of `e^r` and the exponent bits for `2^n`. Branch-free, so loops
/// over it vectorise. Inputs are clamped to `[-87.3, 88]`: below, the result is the smallest
/// normal number (1.2e-38) instead of a subnormal or zero, which changes no softmax or
/// activation in float32.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_55, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let polynomial = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668
                        + r * (0.008_333_334 + r * (0.001_388_889 + r * 0.000_198_412_7))))));
    // n lies in [-126, 127]: 2^n from two halves whose biased exponents stay in [1, 254].
    // The biased exponent, an integer-valued float, lands in the low mantissa bits of
    // `exponent + 2^23`; shifting them into the exponent field is an integer operation that
    // vectorises (a float-to-int cast would not).
    let half = (n * 0.5).floor();
    let power = |exponent: f32| f32::from_bits((exponent + 127.0 + 8_388_608.0).to_bits() << 23);
    polynomial * power(half) * power(n - half)
}

/// The error function, within 1.5e-7 (Abramowitz and Stegun 7.1.26).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let polynomial = t
        * (0.254_829_6
            + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    sign * (1.0 - polynomial * exp(-x * x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Level;
    use crate::lanes::testing::{ODD_LENGTHS, pseudo_random};

    /// erf by its Taylor series (accurate to double precision for |x| ≤ 3).
    fn series_erf(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        for n in 1..60 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// Naive double-precision references.
    fn quick_gelu_reference(x: f64) -> f64 {
        x / (1.0 + (-1.702 * x).exp())
    }

    fn gelu_reference(x: f64) -> f64 {
        // The series is exact only near 0; far out GELU is 0 or x (to float32 precision).
        match x {
            x if x < -4.0 => 0.0,
            x if x > 4.0 => x,
            x => 0.5 * x * (1.0 + series_erf(x / std::f64::consts::SQRT_2)),
        }
    }

    fn softmax_reference(row: &[f32]) -> Vec<f64> {
        let max = row.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b as f64));
        let exps: Vec<f64> = row.iter().map(|v| (*v as f64 - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.iter().map(|e| e / total).collect()
    }

    #[test]
    fn the_exponential_is_accurate_over_the_range_that_matters() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let exact = (x as f64).exp();
            let relative = ((exp(x) as f64 - exact) / exact).abs();
            worst = worst.max(relative);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-200.0), exp(-87.336_55));
        assert!(exp(-100.0) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn activations_match_their_definitions_on_every_instruction_set() {
        let inputs: Vec<f32> = (0..203).map(|i| (i as f32 - 100.0) * 0.07).collect();
        for level in Level::supported() {
            let mut quick = inputs.clone();
            quick_gelu_at(level, &mut quick);
            let mut exact = inputs.clone();
            gelu_at(level, &mut exact);
            for ((x, quick), exact) in inputs.iter().zip(&quick).zip(&exact) {
                let x = *x as f64;
                let tolerance = if x.abs() <= 4.0 { 2e-6 } else { 2e-4 };
                assert!(
                    (*quick as f64 - quick_gelu_reference(x)).abs() < 1e-6,
                    "{x}"
                );
                assert!((*exact as f64 - gelu_reference(x)).abs() < tolerance, "{x}");
            }
        }
    }

    #[test]
    fn every_copy_gives_the_same_bits() {
        for len in ODD_LENGTHS {
            let values: Vec<f32> = pseudo_random(len, 5 + len as u32)
                .iter()
                .map(|v| v * 9.0)
                .collect();
            let run = |level: Level| {
                let (mut quick, mut exact, mut soft) =
                    (values.clone(), values.clone(), values.clone());
                quick_gelu_at(level, &mut quick);
                gelu_at(level, &mut exact);
                softmax_at(level, &mut soft);
                [quick, exact, soft].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let levels = Level::supported();
            let first = run(levels[0]);
            for level in &levels[1..] {
                assert_eq!(run(*level), first, "length {len}, {level:?}");
            }
        }
    }

    #[test]
    fn softmax_matches_its_definition_at_odd_lengths() {
        for len in ODD_LENGTHS.into_iter().filter(|len| *len > 0) {
            let row: Vec<f32> = pseudo_random(len, 40 + len as u32)
                .iter()
                .map(|v| v * 20.0)
                .collect();
            let expected = softmax_reference(&row);
            for level in Level::supported() {
                let mut found = row.clone();
                softmax_at(level, &mut found);
                for (index, (a, b)) in found.iter().zip(&expected).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-6,
                        "length {len}, {index}, {level:?}"
                    );
                }
                assert!(
                    (found.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                    "length {len}"
                );
            }
        }
        let mut row = vec![1.0f32, 2.0, 3.0, -1000.0, 0.5];
        softmax(&mut row);
        let denominator: f64 = [1.0f64, 2.0, 3.0, 0.5].iter().map(|v| v.exp()).sum();
        assert!((row[2] as f64 - 3f64.exp() / denominator).abs() < 1e-7);
        assert!(row[3] < 1e-37);
    }

    #[test]
    fn parallel_activation_matches_the_single_thread_kernels() {
        let values = pseudo_random(3 * VALUES_PER_TASK + 17, 9);
        for (activation, kernel) in [
            (Activation::QuickGelu, quick_gelu as fn(&mut [f32])),
            (Activation::Gelu, gelu),
        ] {
            let mut parallel = values.clone();
            activation.apply(&mut parallel);
            let mut single = values.clone();
            kernel(&mut single);
            assert_eq!(parallel, single, "{activation:?}");
        }
    }

    #[test]
    fn relu_zeroes_negatives_and_keeps_nan() {
        let mut values = vec![-1.0, 0.0, 2.5, -0.0, f32::NAN, -3.0];
        relu(&mut values);
        assert_eq!(&values[..4], &[0.0, 0.0, 2.5, -0.0]);
        assert!(values[4].is_nan());
        assert_eq!(values[5], 0.0);
    }
}

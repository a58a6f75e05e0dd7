//! The inner product of an f32 query with an f16 stored row, widening as it goes.
//!
//! An f16 store reads half the bytes of an f32 one, so at the published size (4.12M × 2304,
//! bound by memory) it should answer a query in about half the time. Widening rows into an
//! f32 buffer first and then calling [`dot`](crate::dot) made it slower than the f32 store
//! instead (0.42× on an AMD EPYC): every value was written and read back once more, and the
//! conversion ran a few values per call. Here each 16 (or 8) halves are converted in a
//! register by the hardware instruction (`vcvtph2ps`: AVX-512F, or F16C with AVX2) and fed
//! straight to a fused multiply-add, so nothing is written. This and
//! [`inner_products`](crate::inner_products) (the same widening, for tiles of rows ×
//! queries, which the exact store now scans with) are the crate's kernels written with
//! intrinsics: the compiler does not turn a software half-to-float conversion into that
//! instruction.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `query · row`, the row given as the bits of IEEE half-precision values (`half::f16`'s
/// layout). Slices of unequal length are checked in debug builds; the longer one's extra
/// values are ignored otherwise.
///
/// Lane `i` of 64 sums components `i, i + 64, …` on AVX-512 CPUs (of 32 on AVX2 ones): the
/// copies give results within rounding of each other.
#[inline]
pub fn dot_f16(query: &[f32], row: &[u16]) -> f32 {
    debug_assert_eq!(query.len(), row.len());
    let len = query.len().min(row.len());
    let (query, row) = (&query[..len], &row[..len]);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, which `vcvtph2ps` on 512-bit registers needs.
            return unsafe { dot_f16_avx512(query, row) };
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C.
            return unsafe { dot_f16_avx2(query, row) };
        }
    }
    dot_f16_portable(query, row)
}

/// The portable copy: each half widened in software.
fn dot_f16_portable(query: &[f32], row: &[u16]) -> f32 {
    let mut sums = [0.0f32; 16];
    let whole = query.len() - query.len() % 16;
    for (q, r) in query[..whole]
        .chunks_exact(16)
        .zip(row[..whole].chunks_exact(16))
    {
        for lane in 0..16 {
            sums[lane] += q[lane] * half::f16::from_bits(r[lane]).to_f32();
        }
    }
    let tail: f32 = query[whole..]
        .iter()
        .zip(&row[whole..])
        .map(|(q, r)| q * half::f16::from_bits(*r).to_f32())
        .sum();
    sums.iter().sum::<f32>() + tail
}

/// Four 16-lane accumulators, 64 values per step: enough independent chains to cover the
/// latency of the fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_f16_avx512(query: &[f32], row: &[u16]) -> f32 {
    let len = query.len();
    let whole = len - len % 64;
    let (q, r) = (query.as_ptr(), row.as_ptr());
    let mut sums = [_mm512_setzero_ps(); 4];
    let mut at = 0;
    while at < whole {
        for (part, sum) in sums.iter_mut().enumerate() {
            let offset = at + 16 * part;
            // SAFETY: `offset + 16 <= whole <= len` values remain in both slices; the loads
            // are unaligned loads.
            unsafe {
                let halves = _mm256_loadu_si256(r.add(offset).cast());
                *sum = _mm512_fmadd_ps(
                    _mm512_loadu_ps(q.add(offset)),
                    _mm512_cvtph_ps(halves),
                    *sum,
                );
            }
        }
        at += 64;
    }
    let total = _mm512_add_ps(
        _mm512_add_ps(sums[0], sums[1]),
        _mm512_add_ps(sums[2], sums[3]),
    );
    _mm512_reduce_add_ps(total) + dot_f16_portable(&query[whole..], &row[whole..])
}

/// `out[i] = row[i]` widened from half precision, 16 (or 8) values per instruction: the
/// exact store widens blocks of f16 rows this way before a batch's matrix product.
#[inline]
pub fn widen_f16(row: &[u16], out: &mut [f32]) {
    debug_assert_eq!(row.len(), out.len());
    let len = row.len().min(out.len());
    let (row, out) = (&row[..len], &mut out[..len]);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { widen_f16_avx512(row, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2 and F16C.
            return unsafe { widen_f16_f16c(row, out) };
        }
    }
    widen_f16_portable(row, out);
}

fn widen_f16_portable(row: &[u16], out: &mut [f32]) {
    for (out, bits) in out.iter_mut().zip(row) {
        *out = half::f16::from_bits(*bits).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn widen_f16_avx512(row: &[u16], out: &mut [f32]) {
    let whole = row.len() - row.len() % 16;
    let mut at = 0;
    while at < whole {
        // SAFETY: `at + 16 <= whole` values remain in both slices.
        unsafe {
            let halves = _mm256_loadu_si256(row.as_ptr().add(at).cast());
            _mm512_storeu_ps(out.as_mut_ptr().add(at), _mm512_cvtph_ps(halves));
        }
        at += 16;
    }
    widen_f16_portable(&row[whole..], &mut out[whole..]);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn widen_f16_f16c(row: &[u16], out: &mut [f32]) {
    let whole = row.len() - row.len() % 8;
    let mut at = 0;
    while at < whole {
        // SAFETY: `at + 8 <= whole` values remain in both slices.
        unsafe {
            let halves = _mm_loadu_si128(row.as_ptr().add(at).cast());
            _mm256_storeu_ps(out.as_mut_ptr().add(at), _mm256_cvtph_ps(halves));
        }
        at += 8;
    }
    widen_f16_portable(&row[whole..], &mut out[whole..]);
}

/// Four 8-lane accumulators, 32 values per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(query: &[f32], row: &[u16]) -> f32 {
    let len = query.len();
    let whole = len - len % 32;
    let (q, r) = (query.as_ptr(), row.as_ptr());
    let mut sums = [_mm256_setzero_ps(); 4];
    let mut at = 0;
    while at < whole {
        for (part, sum) in sums.iter_mut().enumerate() {
            let offset = at + 8 * part;
            // SAFETY: `offset + 8 <= whole <= len` values remain in both slices.
            unsafe {
                let halves = _mm_loadu_si128(r.add(offset).cast());
                *sum = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.add(offset)),
                    _mm256_cvtph_ps(halves),
                    *sum,
                );
            }
        }
        at += 32;
    }
    let total = _mm256_add_ps(
        _mm256_add_ps(sums[0], sums[1]),
        _mm256_add_ps(sums[2], sums[3]),
    );
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum::<f32>() + dot_f16_portable(&query[whole..], &row[whole..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::testing::{halves, pseudo_random};

    fn reference(query: &[f32], row: &[u16]) -> f64 {
        query
            .iter()
            .zip(row)
            .map(|(q, r)| *q as f64 * half::f16::from_bits(*r).to_f32() as f64)
            .sum()
    }

    #[test]
    fn every_length_and_copy_matches_a_double_precision_sum_of_the_widened_row() {
        for len in (0..100).chain([2304, 2304 + 7]) {
            let query = pseudo_random(len, 5 + len as u32);
            let row = halves(&pseudo_random(len, 700 + len as u32));
            let expected = reference(&query, &row);
            let tolerance = 1e-5 * (len as f64).sqrt().max(1.0);
            assert!(
                (dot_f16(&query, &row) as f64 - expected).abs() < tolerance,
                "length {len}"
            );
            assert!(
                (dot_f16_portable(&query, &row) as f64 - expected).abs() < tolerance,
                "portable, length {len}"
            );
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    let found = unsafe { dot_f16_avx512(&query, &row) } as f64;
                    assert!(
                        (found - expected).abs() < tolerance,
                        "AVX-512, length {len}"
                    );
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
                {
                    // SAFETY: checked just above.
                    let found = unsafe { dot_f16_avx2(&query, &row) } as f64;
                    assert!((found - expected).abs() < tolerance, "AVX2, length {len}");
                }
            }
        }
    }

    #[test]
    fn widening_is_exact_on_every_copy() {
        for len in [0, 1, 7, 8, 15, 16, 17, 2304 + 3] {
            let row = halves(&pseudo_random(len, 40 + len as u32));
            let expected: Vec<f32> = row
                .iter()
                .map(|bits| half::f16::from_bits(*bits).to_f32())
                .collect();
            let mut out = vec![f32::NAN; len];
            widen_f16(&row, &mut out);
            assert_eq!(out, expected, "length {len}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                let mut out = vec![f32::NAN; len];
                // SAFETY: checked just above.
                unsafe { widen_f16_f16c(&row, &mut out) };
                assert_eq!(out, expected, "F16C, length {len}");
            }
        }
    }

    #[test]
    fn special_halves_widen_exactly() {
        // Subnormal, largest finite, negative zero and one: widening is exact.
        let row = [0x0001u16, 0x7bff, 0x8000, 0x3c00];
        let query = [1.0f32, 1.0, 1.0, 1.0];
        let expected = 5.960_464_5e-8 + 65504.0 + 0.0 + 1.0;
        assert_eq!(dot_f16(&query, &row), expected);
    }
}

//! Every inner product of a few queries with a block of stored rows, register-blocked.
//!
//! G3 sends a batch of photos' queries into one scan of the exact store. Scoring each
//! (query, row) pair with its own dot product reads every value once per pair and keeps one
//! chain of fused multiply-adds per pair; a general matrix product (`gemm`) keeps the
//! arithmetic units busy, but it needs f32 rows, so an f16 store widened every block into a
//! buffer first (written and read back once more), and at 16 queries `gemm` reached about a
//! quarter of the CPU's peak. Here a tile of rows × queries is scored at once: each 16 (or 8)
//! values of a row are loaded (and widened from f16 in the register, `vcvtph2ps`) once and
//! multiplied into every query of the tile, with one accumulator register per pair, so the
//! loads are shared and the multiply-adds are independent. Nothing is written until a tile's
//! sums are done.
//!
//! A single query has nothing to share between queries, and its scan is bound by memory:
//! it goes through 12 (AVX2) or 16 (AVX-512) rows at once, one accumulator each, so that
//! many independent chains of multiply-adds keep many loads in flight.
//!
//! Every pair is summed the same way whichever tile it falls in (lane `i` of 16 sums
//! components `i, i + 16, …`; the lanes are then added in a fixed tree), so a query's scores
//! do not depend on the other queries of its batch: a photo's retrieval is the same alone or
//! in a batch, on a given CPU.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Stored rows, row-major: f32 values, or f16 values as their bits (`half::f16`'s layout).
#[derive(Debug, Clone, Copy)]
pub enum StoredRows<'a> {
    /// f32 rows.
    F32(&'a [f32]),
    /// f16 rows, as the bits of IEEE half-precision values.
    F16(&'a [u16]),
}

impl StoredRows<'_> {
    /// Stored values (rows × dimension).
    pub fn values(&self) -> usize {
        match self {
            StoredRows::F32(values) => values.len(),
            StoredRows::F16(values) => values.len(),
        }
    }
}

/// Writes `scores[q * scores_stride + r] = queries[q] · rows[r]` for every query `q` and
/// stored row `r` (both row-major with rows of `dimension`): query-major, so that each
/// query's scores of the block lie side by side.
///
/// # Panics
/// When `dimension` is zero, a slice is not a whole number of rows, `scores_stride` is
/// smaller than the row count or `scores` is too short for the last query.
pub fn inner_products(
    queries: &[f32],
    rows: StoredRows<'_>,
    dimension: usize,
    scores: &mut [f32],
    scores_stride: usize,
) {
    assert!(dimension > 0, "the dimension must be at least 1");
    assert_eq!(queries.len() % dimension, 0, "queries: not whole rows");
    assert_eq!(rows.values() % dimension, 0, "stored rows: not whole rows");
    let query_count = queries.len() / dimension;
    let row_count = rows.values() / dimension;
    if query_count == 0 || row_count == 0 {
        return;
    }
    assert!(
        scores_stride >= row_count,
        "scores: the stride is shorter than a row"
    );
    assert!(
        scores.len() >= (query_count - 1) * scores_stride + row_count,
        "scores: too short for every query"
    );
    let shape = Shape {
        dimension,
        query_count,
        row_count,
        scores_stride,
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the shapes were checked above.
            unsafe {
                return match rows {
                    StoredRows::F32(values) => {
                        avx512::score::<false>(queries, values.as_ptr().cast(), scores, shape)
                    }
                    StoredRows::F16(values) => {
                        avx512::score::<true>(queries, values.as_ptr().cast(), scores, shape)
                    }
                };
            }
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C; the shapes were checked above.
            unsafe {
                return match rows {
                    StoredRows::F32(values) => {
                        avx2::score::<false>(queries, values.as_ptr().cast(), scores, shape)
                    }
                    StoredRows::F16(values) => {
                        avx2::score::<true>(queries, values.as_ptr().cast(), scores, shape)
                    }
                };
            }
        }
    }
    portable(queries, rows, scores, shape);
}

/// The checked sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Shape {
    dimension: usize,
    query_count: usize,
    row_count: usize,
    scores_stride: usize,
}

/// Stored value `index` (row-major) as f32.
#[inline(always)]
fn component(rows: StoredRows<'_>, index: usize) -> f32 {
    match rows {
        StoredRows::F32(values) => values[index],
        StoredRows::F16(values) => half::f16::from_bits(values[index]).to_f32(),
    }
}

/// The copy for CPUs without the vector instructions (and other architectures): the same
/// 16 lanes and the same order of additions, in scalar code (without fused multiply-adds,
/// which would be library calls there: results within rounding of the vector copies).
fn portable(queries: &[f32], rows: StoredRows<'_>, scores: &mut [f32], shape: Shape) {
    let dimension = shape.dimension;
    let whole = dimension - dimension % 16;
    for query_index in 0..shape.query_count {
        let query = &queries[query_index * dimension..][..dimension];
        for row in 0..shape.row_count {
            let start = row * dimension;
            let mut lanes = [0.0f32; 16];
            for at in (0..whole).step_by(16) {
                for (lane, sum) in lanes.iter_mut().enumerate() {
                    *sum += query[at + lane] * component(rows, start + at + lane);
                }
            }
            let mut tail = 0.0f32;
            for (at, value) in query.iter().enumerate().skip(whole) {
                tail += value * component(rows, start + at);
            }
            scores[query_index * shape.scores_stride + row] = reduce_lanes(lanes) + tail;
        }
    }
}

/// The fixed addition tree that every copy follows for its `N` lanes (16, or 8 in the AVX2
/// copy): halves added pairwise (`0..8 + 8..16`, then `0..4 + 4..8`, …), as a vector
/// register is reduced.
#[inline(always)]
fn reduce_lanes<const N: usize>(lanes: [f32; N]) -> f32 {
    let mut width = N;
    let mut lanes = lanes;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
    }
    lanes[0]
}

/// The scalar tail (components past the last whole 16) of row `row` against `query`.
///
/// # Safety
/// `rows` points at f32 values (`HALF == false`) or f16 bits, with at least
/// `(row + 1) · dimension` of them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tail<const HALF: bool>(
    query: &[f32],
    rows: *const u8,
    row: usize,
    dimension: usize,
    whole: usize,
) -> f32 {
    let mut sum = 0.0f32;
    for (at, query_value) in query.iter().enumerate().take(dimension).skip(whole) {
        let index = row * dimension + at;
        // SAFETY: `index < (row + 1) · dimension`, within the rows by the caller's promise.
        let value = unsafe {
            if HALF {
                half::f16::from_bits(*rows.cast::<u16>().add(index)).to_f32()
            } else {
                *rows.cast::<f32>().add(index)
            }
        };
        sum += query_value * value;
    }
    sum
}

/// Components of a row scored before moving to the next group of queries: a pass's 16
/// queries' share (16 KiB) and the tile's rows' share stay in the first-level cache while
/// every group of the pass reads them.
#[cfg(target_arch = "x86_64")]
const COMPONENTS_PER_CHUNK: usize = 256;

/// Queries whose partial sums a row tile keeps at once (in groups of 4).
#[cfg(target_arch = "x86_64")]
const QUERIES_PER_PASS: usize = 16;

/// Generates one instruction set's copy: a tile of `R` rows × `Q` queries kept in `R · Q`
/// accumulator registers of `$lanes` floats, and the loop over tiles.
///
/// For each tile of rows, the queries go in passes of [`QUERIES_PER_PASS`]; a pass walks the
/// components in chunks of [`COMPONENTS_PER_CHUNK`], and each chunk is multiplied into every
/// group of 4 queries of the pass, whose partial sums wait in a small buffer (in cache)
/// between chunks. So every load the multiply-adds need comes from the first-level cache,
/// and the rows come from memory once per pass.
#[cfg(target_arch = "x86_64")]
macro_rules! tiled_copy {
    (
        $module:ident, $features:literal, $vector:ty, $lanes:literal, $rows_per_tile:literal,
        one_query_rows: $one_query_rows:literal,
        zero: $zero:expr,
        load_f32: |$f32_pointer:ident| $load_f32:expr,
        load_f16: |$f16_pointer:ident| $load_f16:expr,
        fma: |$a:ident, $b:ident, $c:ident| $fma:expr,
        reduce: |$sum:ident| $reduce:expr $(,)?
    ) => {
        mod $module {
            use super::*;

            /// Rows per tile: with 4 queries, `R · 4` accumulators plus `R + 4` loaded
            /// values fit the register file.
            const ROWS_PER_TILE: usize = $rows_per_tile;

            /// Rows scored at once against a single query: one accumulator each, as many as
            /// the register file holds beside the query's and a row's values. A single
            /// query's scan is bound by memory, and each accumulator is an independent chain
            /// of multiply-adds whose loads can be in flight together; at 2 or 4 rows (the
            /// tiles of a batch) the chains' latency left the memory idle (a single f16 query
            /// over 200,000 × 2304 rows: about 1.4 times faster at 12 rows than at 2, on a
            /// 2-core AMD EPYC with AVX2).
            const ONE_QUERY_ROWS: usize = $one_query_rows;

            /// The partial sums of one group of (up to) 4 queries × a tile's rows.
            type GroupSums = [[$vector; ROWS_PER_TILE]; 4];

            /// `$lanes` values of stored row data at element `index` of the rows, widened
            /// to f32 when `HALF`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn load<const HALF: bool>(rows: *const u8, index: usize) -> $vector {
                // SAFETY: the caller keeps `index + $lanes` within the rows.
                unsafe {
                    if HALF {
                        let $f16_pointer = rows.cast::<u16>().add(index);
                        $load_f16
                    } else {
                        let $f32_pointer = rows.cast::<f32>().add(index);
                        $load_f32
                    }
                }
            }

            /// Adds components `from .. to` (whole lanes) of rows
            /// `first_row .. first_row + R` times queries `first_query .. first_query + Q`
            /// to `sums`.
            ///
            /// # Safety
            /// The rows and queries exist and `to` is at most the dimension rounded down to
            /// whole lanes.
            #[target_feature(enable = $features)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn accumulate<const HALF: bool, const R: usize, const Q: usize>(
                queries: &[f32],
                rows: *const u8,
                dimension: usize,
                first_row: usize,
                first_query: usize,
                from: usize,
                to: usize,
                group_sums: &mut GroupSums,
            ) {
                let mut sums: [[$vector; R]; Q] = [[$zero; R]; Q];
                for (query_sums, kept) in sums.iter_mut().zip(group_sums.iter()) {
                    query_sums.copy_from_slice(&kept[..R]);
                }
                let query_base = queries[first_query * dimension..].as_ptr();
                let mut at = from;
                while at < to {
                    let mut row_values: [$vector; R] = [$zero; R];
                    for (offset, value) in row_values.iter_mut().enumerate() {
                        // SAFETY: row `first_row + offset` exists and `at + $lanes <=
                        // dimension`: within the rows.
                        *value =
                            unsafe { load::<HALF>(rows, (first_row + offset) * dimension + at) };
                    }
                    for (query_offset, query_sums) in sums.iter_mut().enumerate() {
                        // SAFETY: query `first_query + query_offset` exists and `at + $lanes
                        // <= dimension` of its values remain.
                        let query: $vector = unsafe {
                            let $f32_pointer = query_base.add(query_offset * dimension + at);
                            $load_f32
                        };
                        for (sum, value) in query_sums.iter_mut().zip(&row_values) {
                            let ($a, $b, $c) = (query, *value, *sum);
                            *sum = $fma;
                        }
                    }
                    at += $lanes;
                }
                for (query_sums, kept) in sums.iter().zip(group_sums.iter_mut()) {
                    kept[..R].copy_from_slice(query_sums);
                }
            }

            /// Writes the scores of a finished group: lanes reduced, the scalar tail added.
            ///
            /// # Safety
            /// As [`accumulate`]; `whole` is the dimension rounded down to whole lanes.
            #[target_feature(enable = $features)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn finish<const HALF: bool>(
                queries: &[f32],
                rows: *const u8,
                scores: &mut [f32],
                shape: Shape,
                first_row: usize,
                row_count: usize,
                first_query: usize,
                query_count: usize,
                group_sums: &GroupSums,
            ) {
                let dimension = shape.dimension;
                let whole = dimension - dimension % $lanes;
                for (query_offset, query_sums) in group_sums[..query_count].iter().enumerate() {
                    let query_index = first_query + query_offset;
                    let query = &queries[query_index * dimension..][..dimension];
                    for (row_offset, $sum) in query_sums[..row_count].iter().enumerate() {
                        let row = first_row + row_offset;
                        let $sum = *$sum;
                        let lanes_total: f32 = $reduce;
                        // SAFETY: `row` exists.
                        let rest = unsafe { tail::<HALF>(query, rows, row, dimension, whole) };
                        scores[query_index * shape.scores_stride + row] = lanes_total + rest;
                    }
                }
            }

            /// A single query against every row, `R` rows at a time: one accumulator per
            /// row, so `R` independent chains of multiply-adds (and `R` loads in flight)
            /// keep the memory busy.
            ///
            /// # Safety
            /// As [`score`], with one query.
            #[target_feature(enable = $features)]
            unsafe fn score_one_query<const HALF: bool, const R: usize>(
                query: &[f32],
                rows: *const u8,
                scores: &mut [f32],
                shape: Shape,
            ) {
                let mut first_row = 0;
                while first_row + R <= shape.row_count {
                    // SAFETY: rows `first_row .. first_row + R` exist.
                    unsafe {
                        one_query_tile::<HALF, R>(query, rows, scores, shape.dimension, first_row)
                    };
                    first_row += R;
                }
                while first_row < shape.row_count {
                    // SAFETY: row `first_row` exists.
                    unsafe {
                        one_query_tile::<HALF, 1>(query, rows, scores, shape.dimension, first_row)
                    };
                    first_row += 1;
                }
            }

            /// Scores of rows `first_row .. first_row + R` against one query, summed as
            /// every other tile sums a pair.
            ///
            /// # Safety
            /// The rows exist; `query` holds `dimension` values.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn one_query_tile<const HALF: bool, const R: usize>(
                query: &[f32],
                rows: *const u8,
                scores: &mut [f32],
                dimension: usize,
                first_row: usize,
            ) {
                let whole = dimension - dimension % $lanes;
                let mut sums: [$vector; R] = [$zero; R];
                let mut at = 0;
                while at < whole {
                    // SAFETY: `at + $lanes <= dimension`: within the query and the rows.
                    let query_values: $vector = unsafe {
                        let $f32_pointer = query.as_ptr().add(at);
                        $load_f32
                    };
                    for (offset, sum) in sums.iter_mut().enumerate() {
                        // SAFETY: as above.
                        let value =
                            unsafe { load::<HALF>(rows, (first_row + offset) * dimension + at) };
                        let ($a, $b, $c) = (query_values, value, *sum);
                        *sum = $fma;
                    }
                    at += $lanes;
                }
                for (offset, $sum) in sums.iter().enumerate() {
                    let row = first_row + offset;
                    let $sum = *$sum;
                    let lanes_total: f32 = $reduce;
                    // SAFETY: `row` exists.
                    let rest = unsafe { tail::<HALF>(query, rows, row, dimension, whole) };
                    scores[row] = lanes_total + rest;
                }
            }

            /// Every row tile against every pass of queries.
            ///
            /// # Safety
            /// The CPU has the copy's features; `rows` holds `row_count · dimension` values
            /// of the kind `HALF` names; the shapes were checked by `inner_products`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn score<const HALF: bool>(
                queries: &[f32],
                rows: *const u8,
                scores: &mut [f32],
                shape: Shape,
            ) {
                if shape.query_count == 1 {
                    // SAFETY: as this function's.
                    return unsafe {
                        score_one_query::<HALF, ONE_QUERY_ROWS>(queries, rows, scores, shape)
                    };
                }
                let dimension = shape.dimension;
                let whole = dimension - dimension % $lanes;
                let mut first_row = 0;
                while first_row < shape.row_count {
                    let full = shape.row_count - first_row >= ROWS_PER_TILE;
                    let tile_rows = if full { ROWS_PER_TILE } else { 1 };
                    let mut pass_start = 0;
                    while pass_start < shape.query_count {
                        let pass = (shape.query_count - pass_start).min(QUERIES_PER_PASS);
                        let groups = pass.div_ceil(4);
                        let mut pass_sums: [GroupSums; QUERIES_PER_PASS / 4] =
                            [[[$zero; ROWS_PER_TILE]; 4]; QUERIES_PER_PASS / 4];
                        // One group has nothing to share between groups: one chunk.
                        let chunk = if pass <= 4 {
                            whole
                        } else {
                            COMPONENTS_PER_CHUNK
                        };
                        let mut from = 0;
                        while from < whole {
                            let to = (from + chunk).min(whole);
                            for (group, group_sums) in pass_sums.iter_mut().take(groups).enumerate()
                            {
                                let first_query = pass_start + 4 * group;
                                let left = (pass_start + pass - first_query).min(4);
                                // SAFETY: the tile's rows and queries exist (`full`, `left`)
                                // and `to <= whole`.
                                unsafe {
                                    match (full, left) {
                                        (true, 4) => accumulate::<HALF, ROWS_PER_TILE, 4>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (true, 3) => accumulate::<HALF, ROWS_PER_TILE, 3>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (true, 2) => accumulate::<HALF, ROWS_PER_TILE, 2>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (true, _) => accumulate::<HALF, ROWS_PER_TILE, 1>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (false, 4) => accumulate::<HALF, 1, 4>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (false, 3) => accumulate::<HALF, 1, 3>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (false, 2) => accumulate::<HALF, 1, 2>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                        (false, _) => accumulate::<HALF, 1, 1>(
                                            queries,
                                            rows,
                                            dimension,
                                            first_row,
                                            first_query,
                                            from,
                                            to,
                                            group_sums,
                                        ),
                                    }
                                }
                            }
                            from = to;
                        }
                        for (group, group_sums) in pass_sums.iter().take(groups).enumerate() {
                            let first_query = pass_start + 4 * group;
                            let left = (pass_start + pass - first_query).min(4);
                            // SAFETY: as above.
                            unsafe {
                                finish::<HALF>(
                                    queries,
                                    rows,
                                    &mut *scores,
                                    shape,
                                    first_row,
                                    tile_rows,
                                    first_query,
                                    left,
                                    group_sums,
                                )
                            };
                        }
                        pass_start += pass;
                    }
                    first_row += tile_rows;
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
tiled_copy! {
    avx512, "avx512f", __m512, 16, 4,
    one_query_rows: 16,
    zero: _mm512_setzero_ps(),
    load_f32: |pointer| _mm512_loadu_ps(pointer),
    load_f16: |pointer| _mm512_cvtph_ps(_mm256_loadu_si256(pointer.cast())),
    fma: |a, b, c| _mm512_fmadd_ps(a, b, c),
    reduce: |sum| {
        let mut lanes = [0.0f32; 16];
        // SAFETY: `lanes` holds 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sum) };
        reduce_lanes(lanes)
    },
}

#[cfg(target_arch = "x86_64")]
tiled_copy! {
    avx2, "avx2,fma,f16c", __m256, 8, 2,
    one_query_rows: 12,
    zero: _mm256_setzero_ps(),
    load_f32: |pointer| _mm256_loadu_ps(pointer),
    load_f16: |pointer| _mm256_cvtph_ps(_mm_loadu_si128(pointer.cast())),
    fma: |a, b, c| _mm256_fmadd_ps(a, b, c),
    reduce: |sum| {
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        reduce_lanes(lanes)
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::testing::{halves, pseudo_random};

    /// Every score in double precision, query-major with rows side by side.
    fn reference(queries: &[f32], rows: StoredRows<'_>, dimension: usize) -> Vec<f64> {
        let row_count = rows.values() / dimension;
        let mut scores = Vec::new();
        for query in queries.chunks_exact(dimension) {
            for row in 0..row_count {
                scores.push(
                    (0..dimension)
                        .map(|at| query[at] as f64 * component(rows, row * dimension + at) as f64)
                        .sum(),
                );
            }
        }
        scores
    }

    /// Both kinds of rows, for `row_count` rows and `query_count` queries.
    fn check_shape(dimension: usize, query_count: usize, row_count: usize) {
        let queries = pseudo_random(query_count * dimension, 3 + dimension as u32);
        let f32_rows = pseudo_random(row_count * dimension, 50 + row_count as u32);
        let f16_rows = halves(&f32_rows);
        for rows in [StoredRows::F32(&f32_rows), StoredRows::F16(&f16_rows)] {
            // A stride longer than the rows, the gap left untouched.
            let stride = row_count + 3;
            let mut scores = vec![f32::NAN; query_count * stride];
            inner_products(&queries, rows, dimension, &mut scores, stride);
            let mut portable_scores = vec![f32::NAN; query_count * stride];
            let shape = Shape {
                dimension,
                query_count,
                row_count,
                scores_stride: stride,
            };
            portable(&queries, rows, &mut portable_scores, shape);
            // The AVX2 copy too, where the CPU also has the wider one.
            let mut avx2_scores = portable_scores.clone();
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                // SAFETY: checked just above; the shapes are whole rows.
                unsafe {
                    match rows {
                        StoredRows::F32(values) => avx2::score::<false>(
                            &queries,
                            values.as_ptr().cast(),
                            &mut avx2_scores,
                            shape,
                        ),
                        StoredRows::F16(values) => avx2::score::<true>(
                            &queries,
                            values.as_ptr().cast(),
                            &mut avx2_scores,
                            shape,
                        ),
                    }
                }
            }
            let expected = reference(&queries, rows, dimension);
            let tolerance = 1e-5 * (dimension as f64).sqrt().max(1.0);
            for query in 0..query_count {
                for row in 0..row_count {
                    let want = expected[query * row_count + row];
                    let at = query * stride + row;
                    let label = format!("{rows:?} d {dimension}, query {query}, row {row}");
                    assert!((scores[at] as f64 - want).abs() < tolerance, "{label}");
                    assert!(
                        (portable_scores[at] as f64 - want).abs() < tolerance,
                        "{label}"
                    );
                    assert!((avx2_scores[at] as f64 - want).abs() < tolerance, "{label}");
                }
                assert!(
                    scores[query * stride + row_count..][..3]
                        .iter()
                        .all(|s| s.is_nan())
                );
            }
        }
    }

    #[test]
    fn every_tile_shape_and_tail_matches_a_double_precision_sum() {
        for dimension in [1, 7, 8, 15, 16, 17, 33, 64, 100] {
            for query_count in 1..=9 {
                // Past one and two tiles of a single query's 12 and 16 rows, with remainders.
                for row_count in [1, 2, 3, 4, 5, 7, 9, 12, 16, 17, 29, 35] {
                    check_shape(dimension, query_count, row_count);
                }
            }
        }
        check_shape(2304, 16, 13);
    }

    #[test]
    fn a_query_scores_the_same_alone_or_in_any_batch() {
        let dimension = 2304 + 5;
        // A single query's tiles of rows (12 or 16) differ from a batch's (2 or 4): whole
        // tiles of both, and remainders.
        const ROWS: usize = 37;
        let rows = halves(&pseudo_random(ROWS * dimension, 7));
        let f32_rows = pseudo_random(ROWS * dimension, 8);
        let queries = pseudo_random(13 * dimension, 9);
        for rows in [StoredRows::F16(&rows), StoredRows::F32(&f32_rows)] {
            let mut batch = vec![0.0f32; 13 * ROWS];
            inner_products(&queries, rows, dimension, &mut batch, ROWS);
            for (index, query) in queries.chunks_exact(dimension).enumerate() {
                let mut alone = vec![0.0f32; ROWS];
                inner_products(query, rows, dimension, &mut alone, ROWS);
                assert_eq!(
                    alone,
                    batch[index * ROWS..][..ROWS],
                    "{rows:?} query {index}"
                );
            }
        }
    }

    #[test]
    fn nothing_to_score_writes_nothing() {
        let mut scores = vec![1.0f32; 4];
        inner_products(&[], StoredRows::F32(&[1.0, 2.0]), 2, &mut scores, 1);
        inner_products(&[1.0, 2.0], StoredRows::F16(&[]), 2, &mut scores, 0);
        assert_eq!(scores, [1.0; 4]);
    }

    #[test]
    #[should_panic(expected = "too short")]
    fn a_short_score_buffer_is_refused() {
        let mut scores = vec![0.0f32; 3];
        inner_products(&[1.0; 4], StoredRows::F32(&[1.0; 4]), 2, &mut scores, 2);
    }
}

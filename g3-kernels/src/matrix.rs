//! Matrix views over plain slices and the one place that calls `gemm`.
//!
//! The `gemm` crate multiplies strided matrices with kernels it picks at run time for the CPU
//! (AVX2 or AVX-512) and splits large products over rayon threads, well beyond the
//! single-call matrix products of burn's ndarray backend. It takes raw pointers and strides;
//! the views here carry the slice they point into, so [`matmul`] and [`matmul_into`] can
//! check every access against it before the unsafe call.

use std::marker::PhantomData;

/// The shape of a matrix product `[m, k] · [k, n]` and the factor it is scaled by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Product {
    /// Rows of the left-hand side and of the output.
    pub m: usize,
    /// Columns of the left-hand side, rows of the right-hand side.
    pub k: usize,
    /// Columns of the right-hand side and of the output.
    pub n: usize,
    /// The product is multiplied by this before it is stored (1 unless [`scaled`](Self::scaled)).
    pub scale: f32,
}

impl Product {
    /// `[m, k] · [k, n]`, unscaled.
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        Product {
            m,
            k,
            n,
            scale: 1.0,
        }
    }

    /// The same product multiplied by `scale`.
    pub fn scaled(self, scale: f32) -> Self {
        Product { scale, ..self }
    }
}

/// A read-only matrix view: element `(i, j)` at `values[i · row_stride + j · column_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatrixRef<'a> {
    values: &'a [f32],
    row_stride: usize,
    column_stride: usize,
}

impl<'a> MatrixRef<'a> {
    /// Rows of `columns` contiguous values, one after the other.
    pub fn row_major(values: &'a [f32], columns: usize) -> Self {
        MatrixRef::strided(values, columns, 1)
    }

    /// Any layout: the transpose of a row-major matrix with `c` columns is
    /// `strided(values, 1, c)`.
    pub fn strided(values: &'a [f32], row_stride: usize, column_stride: usize) -> Self {
        MatrixRef {
            values,
            row_stride,
            column_stride,
        }
    }

    /// Whether `rows × columns` elements lie inside the slice.
    fn holds(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.values.len()
    }
}

/// A writable matrix view: element `(i, j)` at `i · row_stride + j · column_stride` from
/// its start. It borrows a slice mutably, or is a block of a [`SharedMatrix`] that one
/// thread alone writes.
#[derive(Debug)]
pub struct MatrixMut<'a> {
    pointer: *mut f32,
    /// Values reachable from `pointer`.
    len: usize,
    row_stride: usize,
    column_stride: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

impl<'a> MatrixMut<'a> {
    /// Rows of `columns` contiguous values, one after the other.
    pub fn row_major(values: &'a mut [f32], columns: usize) -> Self {
        MatrixMut::strided(values, columns, 1)
    }

    /// Any layout; `strided(values, 1, r)` is a column-major matrix of `r` rows.
    pub fn strided(values: &'a mut [f32], row_stride: usize, column_stride: usize) -> Self {
        MatrixMut {
            pointer: values.as_mut_ptr(),
            len: values.len(),
            row_stride,
            column_stride,
            _borrow: PhantomData,
        }
    }

    /// Whether `rows × columns` elements lie inside the view's memory.
    fn holds(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.len
    }
}

/// `output = product.scale · lhs · rhs` (`[m, k] · [k, n]`), replacing what `output` held,
/// on up to `threads` rayon threads (1: on this thread alone).
///
/// # Panics
/// If a view is too short for its side of the product.
pub fn matmul(
    lhs: MatrixRef<'_>,
    rhs: MatrixRef<'_>,
    output: MatrixMut<'_>,
    product: Product,
    threads: usize,
) {
    run_gemm(lhs, rhs, output, product, false, threads);
}

/// `output += product.scale · lhs · rhs` (`[m, k] · [k, n]`), on up to `threads` rayon
/// threads (1: on this thread alone).
///
/// # Panics
/// If a view is too short for its side of the product.
pub fn matmul_into(
    lhs: MatrixRef<'_>,
    rhs: MatrixRef<'_>,
    output: MatrixMut<'_>,
    product: Product,
    threads: usize,
) {
    run_gemm(lhs, rhs, output, product, true, threads);
}

fn run_gemm(
    lhs: MatrixRef<'_>,
    rhs: MatrixRef<'_>,
    output: MatrixMut<'_>,
    product: Product,
    accumulate: bool,
    threads: usize,
) {
    let Product { m, k, n, scale } = product;
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n) && output.holds(m, n),
        "matrix views hold the product's shapes"
    );
    // SAFETY: gemm reads the m × k matrix `lhs` and the k × n matrix `rhs` through their
    // strides and reads (when accumulating) and writes the m × n matrix `output` through its
    // strides; the assertion above checks that every element lies inside its view. `output`
    // borrows its slice mutably for the call, or is a `SharedMatrix` block that no other
    // thread touches (the contract of `SharedMatrix::block`), so nothing else reads or writes
    // it meanwhile. gemm computes output = 1·output + scale·(lhs·rhs) when accumulating, else
    // scale·(lhs·rhs) (it ignores the first factor when it does not read the output).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            output.pointer,
            output.column_stride as isize,
            output.row_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

/// A matrix that several tasks write at once, each in its own disjoint block.
#[derive(Clone, Copy)]
pub(crate) struct SharedMatrix {
    pointer: *mut f32,
    len: usize,
}

// SAFETY: a `SharedMatrix` is only a pointer; the contracts of `block` and `write` keep the
// threads that use it on disjoint values.
unsafe impl Send for SharedMatrix {}
unsafe impl Sync for SharedMatrix {}

impl SharedMatrix {
    /// Shares `values`, which must not be used otherwise until every task is done (the
    /// caller keeps the mutable borrow for that long).
    pub(crate) fn new(values: &mut [f32]) -> Self {
        SharedMatrix {
            pointer: values.as_mut_ptr(),
            len: values.len(),
        }
    }

    /// The row-major `rows × columns` block starting at element `first`, row stride
    /// `row_stride`.
    ///
    /// # Safety
    /// No other thread may read or write the block's values while the view lives.
    ///
    /// # Panics
    /// If the block does not lie inside the matrix.
    pub(crate) unsafe fn block<'a>(
        self,
        first: usize,
        rows: usize,
        columns: usize,
        row_stride: usize,
    ) -> MatrixMut<'a> {
        let len = if rows == 0 || columns == 0 {
            0
        } else {
            (rows - 1) * row_stride + columns
        };
        assert!(first + len <= self.len, "the block lies inside the matrix");
        MatrixMut {
            // SAFETY: `first + len ≤ self.len`, checked above, so the pointer stays inside
            // the allocation.
            pointer: unsafe { self.pointer.add(first) },
            len,
            row_stride,
            column_stride: 1,
            _borrow: PhantomData,
        }
    }

    /// Writes `value` at `index`.
    ///
    /// # Safety
    /// No other thread may read or write the value at `index` until every task is done.
    ///
    /// # Panics
    /// If `index` lies outside the matrix (in debug builds).
    #[inline(always)]
    pub(crate) unsafe fn write(self, index: usize, value: f32) {
        debug_assert!(index < self.len, "the value lies inside the matrix");
        // SAFETY: `index` lies inside the matrix (the callers' loops guarantee it) and the
        // caller is the only thread touching it.
        unsafe { *self.pointer.add(index) = value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::testing::pseudo_random;

    /// `[m, k] · [k, n]` of row-major matrices, in double precision.
    fn naive(lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut output = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                output[i * n + j] = (0..k)
                    .map(|l| lhs[i * k + l] as f64 * rhs[l * n + j] as f64)
                    .sum();
            }
        }
        output
    }

    fn assert_close(found: &[f32], expected: &[f64], what: &str) {
        assert_eq!(found.len(), expected.len(), "{what}");
        for (index, (a, b)) in found.iter().zip(expected).enumerate() {
            assert!(
                (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{what}, {index}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn products_of_odd_shapes_match_the_naive_product() {
        for (m, k, n) in [(1, 1, 1), (3, 7, 5), (17, 33, 9), (65, 31, 130)] {
            let lhs = pseudo_random(m * k, 1);
            let rhs = pseudo_random(k * n, 2);
            let expected = naive(&lhs, &rhs, m, k, n);
            for threads in [1, 3] {
                let mut output = vec![f32::NAN; m * n];
                matmul(
                    MatrixRef::row_major(&lhs, k),
                    MatrixRef::row_major(&rhs, n),
                    MatrixMut::row_major(&mut output, n),
                    Product::new(m, k, n),
                    threads,
                );
                assert_close(
                    &output,
                    &expected,
                    &format!("{m}x{k}x{n}, {threads} threads"),
                );

                let mut accumulated = vec![1.0f32; m * n];
                matmul_into(
                    MatrixRef::row_major(&lhs, k),
                    MatrixRef::row_major(&rhs, n),
                    MatrixMut::row_major(&mut accumulated, n),
                    Product::new(m, k, n).scaled(0.5),
                    threads,
                );
                let halved: Vec<f64> = expected.iter().map(|v| 1.0 + 0.5 * v).collect();
                assert_close(&accumulated, &halved, "accumulated and scaled");
            }
        }
    }

    #[test]
    fn transposed_and_column_major_views_multiply_the_same_matrices() {
        let (m, k, n) = (5, 19, 7);
        let lhs = pseudo_random(m * k, 3);
        let rhs = pseudo_random(k * n, 4);
        let expected = naive(&lhs, &rhs, m, k, n);
        // rhs stored transposed ([n, k] row-major), output column-major.
        let mut rhs_transposed = vec![0.0; k * n];
        for l in 0..k {
            for j in 0..n {
                rhs_transposed[j * k + l] = rhs[l * n + j];
            }
        }
        let mut column_major = vec![0.0; m * n];
        matmul(
            MatrixRef::row_major(&lhs, k),
            MatrixRef::strided(&rhs_transposed, 1, k),
            MatrixMut::strided(&mut column_major, 1, m),
            Product::new(m, k, n),
            1,
        );
        let mut row_major = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                row_major[i * n + j] = column_major[j * m + i];
            }
        }
        assert_close(&row_major, &expected, "strided");
    }

    #[test]
    fn blocks_of_a_shared_matrix_write_only_their_own_values() {
        let (m, k, n, stride) = (3, 4, 2, 5);
        let lhs = pseudo_random(m * k, 5);
        let rhs = pseudo_random(k * n, 6);
        let mut output = vec![7.0f32; m * stride];
        let shared = SharedMatrix::new(&mut output);
        // SAFETY: this thread alone uses the block.
        let block = unsafe { shared.block(2, m, n, stride) };
        matmul(
            MatrixRef::row_major(&lhs, k),
            MatrixRef::row_major(&rhs, n),
            block,
            Product::new(m, k, n),
            1,
        );
        let expected = naive(&lhs, &rhs, m, k, n);
        for row in 0..m {
            for column in 0..stride {
                let found = output[row * stride + column];
                if (2..2 + n).contains(&column) {
                    let want = expected[row * n + column - 2];
                    assert!((found as f64 - want).abs() < 1e-5);
                } else {
                    assert_eq!(found, 7.0, "row {row}, column {column}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "matrix views hold the product's shapes")]
    fn short_views_are_refused() {
        let values = [0.0f32; 5];
        let mut output = [0.0f32; 4];
        matmul(
            MatrixRef::row_major(&values, 3),
            MatrixRef::row_major(&values, 2),
            MatrixMut::row_major(&mut output, 2),
            Product::new(2, 3, 2),
            1,
        );
    }
}

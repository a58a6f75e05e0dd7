//! CPU kernels of g3-rs: the arithmetic under the native CPU paths, in one place.
//!
//! Three parts of g3-rs skip burn on the CPU because burn-ndarray spends most of its time
//! outside the arithmetic there: the CLIP vision tower that embeds every image
//! (`g3_align::clip::CpuVisionTower`), the GPS branch (`g3_align::CpuGpsBranch`) and the
//! vector stores' scoring (`g3_index`). They share these kernels:
//!
//! - [`matmul`], [`matmul_into`] with [`MatrixRef`] / [`MatrixMut`] views: matrix products
//!   through the `gemm` crate, whose kernels are picked at run time for the CPU and which
//!   splits large products over rayon threads; the views are checked before the unsafe call.
//! - [`Dense`] and [`PackedDense`]: linear layers for large and for few-row batches.
//! - [`self_attention`]: multi-head attention head by head in parallel, materialising one
//!   `[tokens, tokens]` score matrix per task.
//! - [`LayerNorm`], [`Activation`] (GELU, quick GELU), [`softmax`], [`relu`], [`dot`]:
//!   element-wise and row kernels, written so the compiler vectorises them without
//!   reordering any sum.
//! - [`dot_f16`]: one f32 query against one f16 row, widened in registers (`vcvtph2ps`) as
//!   it is read; [`widen_f16`] for whole blocks (before a large batch's matrix product).
//! - [`inner_products`]: a few queries against a block of f32 or f16 [`StoredRows`], a tile
//!   of rows × queries in registers at once: the exact store's scans of single queries and
//!   of batches of up to 63.
//!
//! Every element-wise and row kernel is compiled for AVX-512, for AVX2 with FMA and for
//! baseline x86-64, and each call runs the best copy the CPU has (one runtime dispatch for
//! the whole crate): one binary runs on any x86-64 CPU and uses the widest registers where
//! they exist. The copies give the same bits, except [`dot`] without FMA (rounding apart).
//!
//! ```
//! use g3_kernels::{Dense, LayerNorm, dot};
//!
//! let layer = Dense::new(2, 3, vec![1.0, 0.0, 2.0, 0.0, 1.0, 3.0], vec![0.5; 3]);
//! let mut output = vec![0.0; 3];
//! layer.forward(&[1.0, 2.0], 1, &mut output, 1);
//! assert_eq!(output, [1.5, 2.5, 8.5]);
//!
//! let norm = LayerNorm::new(vec![1.0; 3], vec![0.0; 3], 0.0);
//! norm.normalize_in_place(&mut output);
//! assert!(dot(&output, &[1.0; 3]).abs() < 1e-6); // zero mean
//! ```

#![deny(missing_docs)]

mod activation;
mod attention;
mod dense;
mod dispatch;
mod dot;
mod dot_f16;
mod inner_products;
mod lanes;
mod matrix;
mod norm;

pub use activation::{Activation, gelu, quick_gelu, relu, softmax};
pub use attention::{AttentionShape, self_attention};
pub use dense::{Dense, PackedDense};
pub use dot::dot;
pub use dot_f16::{dot_f16, widen_f16};
pub use inner_products::{StoredRows, inner_products};
pub use matrix::{MatrixMut, MatrixRef, Product, matmul, matmul_into};
pub use norm::LayerNorm;

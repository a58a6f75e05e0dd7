//! Rotary position embeddings, shared by the vision tower (2-D) and the decoder (3-D,
//! "multimodal").

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

/// `tensor` in `dtype` (host-built tables and inputs follow a half-precision model's
/// weights); nothing is done for float32.
pub fn to_dtype<const D: usize>(tensor: Tensor<D>, dtype: DType) -> Tensor<D> {
    if tensor.dtype() == dtype {
        tensor
    } else {
        tensor.cast(FloatDType::from(dtype))
    }
}

/// The rotary frequencies `1 / theta^(2i / dim)` for `i < dim / 2`, computed in f32 as
/// transformers does (the angles of long sequences are sensitive to the last bit).
pub fn inverse_frequencies(dim: usize, theta: f64) -> Vec<f32> {
    (0..dim / 2)
        .map(|index| 1.0 / (theta as f32).powf((2 * index) as f32 / dim as f32))
        .collect()
}

/// Swaps the two halves of the last dimension, negating the new first half.
fn rotate_half<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    let width = input.dims()[D - 1];
    let first = input.clone().narrow(D - 1, 0, width / 2);
    let second = input.narrow(D - 1, width / 2, width - width / 2);
    Tensor::cat(vec![second.neg(), first], D - 1)
}

/// `x · cos + rotate_half(x) · sin`, with `cos`/`sin` broadcast against `input`.
pub fn apply_rotary<const D: usize>(input: Tensor<D>, cos: Tensor<D>, sin: Tensor<D>) -> Tensor<D> {
    input.clone() * cos + rotate_half(input) * sin
}

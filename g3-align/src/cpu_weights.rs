//! burn parameters copied into plain memory, as the [`g3_kernels`] types the CPU inference
//! paths ([`CpuVisionTower`](crate::clip::CpuVisionTower),
//! [`CpuGpsBranch`](crate::CpuGpsBranch)) evaluate.

use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use crate::error::AlignError;

/// A parameter's values on the host, as float32, with subnormal values set to zero.
///
/// x86 CPUs multiply a subnormal operand through a microcode assist, far slower than a
/// normal multiply-add, and about 1% of GeoCLIP's location-encoder weights are subnormal:
/// enough to slow every matrix product they enter by an order of magnitude (in PyTorch as
/// well; docs/performance.md has the measurements). A subnormal weight (below 1.2e-38) adds less than
/// 1e-37 to any product, far below float32's resolution of the sums it enters, so zero leaves
/// the results as they were.
pub(crate) fn read_weights<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, AlignError> {
    let mut values = tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|error| AlignError::TensorRead {
            message: format!("{error:?}"),
        })?;
    for value in &mut values {
        if value.is_subnormal() {
            *value = 0.0;
        }
    }
    Ok(values)
}

/// Linear layers of the same input width as one [`g3_kernels::Dense`], their outputs side by
/// side (one layer: a copy of it). A missing bias is zeros.
pub(crate) fn dense(linears: &[&Linear]) -> Result<g3_kernels::Dense, AlignError> {
    let input = linears[0].weight.dims()[0];
    let outputs: Vec<usize> = linears
        .iter()
        .map(|linear| linear.weight.dims()[1])
        .collect();
    let output: usize = outputs.iter().sum();
    let mut weight = vec![0.0; input * output];
    let mut bias = Vec::with_capacity(output);
    let mut column = 0;
    for (linear, &width) in linears.iter().zip(&outputs) {
        if linear.weight.dims()[0] != input {
            return Err(AlignError::InvalidConfig {
                reason: "fused projections must share their input width".into(),
            });
        }
        let values = read_weights(linear.weight.val())?;
        for (row, source) in values.chunks_exact(width).enumerate() {
            weight[row * output + column..][..width].copy_from_slice(source);
        }
        match &linear.bias {
            Some(linear_bias) => bias.extend(read_weights(linear_bias.val())?),
            None => bias.extend(std::iter::repeat_n(0.0, width)),
        }
        column += width;
    }
    Ok(g3_kernels::Dense::new(input, output, weight, bias))
}

/// A layer norm's scale and shift (zeros without one) with `epsilon`.
pub(crate) fn layer_norm(
    norm: &LayerNorm,
    epsilon: f32,
) -> Result<g3_kernels::LayerNorm, AlignError> {
    let gamma = read_weights(norm.gamma.val())?;
    let beta = match &norm.beta {
        Some(beta) => read_weights(beta.val())?,
        None => vec![0.0; gamma.len()],
    };
    Ok(g3_kernels::LayerNorm::new(gamma, beta, epsilon))
}

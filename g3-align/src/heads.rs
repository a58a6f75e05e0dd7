//! G3's trainable projection heads.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::location::initialized_linear;

/// Sizes of a [`ProjectionHead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionHeadConfig {
    /// Input width.
    pub input_size: usize,
    /// Width after the first Linear layer.
    pub hidden_size: usize,
    /// Output width.
    pub output_size: usize,
}

impl ProjectionHeadConfig {
    /// G3's `location_projection_else`: GPS embedding (512) to the shared space (768).
    pub const G3_LOCATION: ProjectionHeadConfig = ProjectionHeadConfig {
        input_size: 512,
        hidden_size: 512,
        output_size: 768,
    };

    /// A head with PyTorch's default Linear initialisation, drawn now from `device`'s
    /// generator.
    pub fn init(&self, device: &Device) -> ProjectionHead {
        ProjectionHead {
            input: initialized_linear(self.input_size, self.hidden_size, device),
            output: initialized_linear(self.hidden_size, self.output_size, device),
        }
    }

    /// A head whose values are about to come from a checkpoint (left uninitialised).
    pub(crate) fn for_loading(&self, device: &Device) -> ProjectionHead {
        ProjectionHead {
            input: LinearConfig::new(self.input_size, self.hidden_size).init(device),
            output: LinearConfig::new(self.hidden_size, self.output_size).init(device),
        }
    }
}

/// Linear, ReLU, Linear: the shape of every G3 head.
///
/// Reference: `nn.Sequential(nn.Linear, nn.ReLU(), nn.Linear)` in G3's `utils/G3.py`; the
/// PyTorch keys `{name}.0.*` and `{name}.2.*` are `input` and `output` here.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    /// First layer (`.0`).
    pub input: Linear,
    /// Second layer (`.2`), without activation.
    pub output: Linear,
}

impl ProjectionHead {
    /// `[batch, input_size]` → `[batch, output_size]` (not normalised).
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.output.forward(relu(self.input.forward(input)))
    }

    /// Output width.
    pub fn output_size(&self) -> usize {
        self.output.weight.dims()[1]
    }
}

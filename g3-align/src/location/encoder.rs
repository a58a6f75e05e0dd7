//! GeoCLIP's location encoder (Vivanco Cepeda et al., NeurIPS 2023), which G3 initialises
//! its GPS encoder from: hierarchical random Fourier feature capsules whose outputs are summed.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::error::AlignError;

/// Shape of a [`LocationEncoder`]. The defaults are GeoCLIP's and G3's: three capsules at
/// σ = 2^0, 2^4, 2^8, 256 random frequencies, three hidden layers of 1024, 512 outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocationEncoderConfig {
    /// Standard deviation of each capsule's random frequencies; one capsule per entry.
    /// Larger σ resolves finer detail (2^8 ≈ street scale, 2^0 ≈ continents).
    pub sigmas: Vec<f64>,
    /// Random frequencies per capsule; the encoding has twice as many values (cos and sin).
    pub encoded_size: usize,
    /// Width of the hidden layers.
    pub hidden_width: usize,
    /// Number of hidden Linear + ReLU layers in each capsule.
    pub hidden_layers: usize,
    /// Width of the embedding (each capsule's head output; capsules are summed).
    pub output_size: usize,
}

impl Default for LocationEncoderConfig {
    fn default() -> Self {
        LocationEncoderConfig {
            sigmas: vec![1.0, 16.0, 256.0],
            encoded_size: 256,
            hidden_width: 1024,
            hidden_layers: 3,
            output_size: 512,
        }
    }
}

impl LocationEncoderConfig {
    /// Checks that every size is positive and every σ finite and positive.
    pub fn validate(&self) -> Result<(), AlignError> {
        let problem = if self.sigmas.is_empty() {
            Some("at least one capsule (sigma) is needed")
        } else if self
            .sigmas
            .iter()
            .any(|sigma| !sigma.is_finite() || *sigma <= 0.0)
        {
            Some("every sigma must be a positive finite number")
        } else if self.encoded_size == 0
            || self.hidden_width == 0
            || self.hidden_layers == 0
            || self.output_size == 0
        {
            Some("encoded_size, hidden_width, hidden_layers and output_size must be positive")
        } else {
            None
        };
        match problem {
            Some(reason) => Err(AlignError::InvalidConfig {
                reason: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// A freshly initialised encoder, for training from scratch: frequencies drawn from
    /// N(0, σ²) and PyTorch's default Linear initialisation, reproducible for a given `seed`.
    ///
    /// The seed is applied to `device`'s random generator, which the initialisation then
    /// consumes, parameter by parameter, before returning (burn initialises parameters lazily,
    /// which would otherwise make the draw order depend on later use).
    pub fn init(&self, device: &Device, seed: u64) -> Result<LocationEncoder, AlignError> {
        self.validate()?;
        device.seed(seed);
        let frequencies = |sigma| {
            Tensor::random(
                [self.encoded_size, 2],
                Distribution::Normal(0.0, sigma),
                device,
            )
        };
        Ok(self.build(frequencies, |input, output| {
            initialized_linear(input, output, device)
        }))
    }

    /// An encoder whose values are about to be replaced by a checkpoint: parameters stay
    /// uninitialised (burn fills them lazily, and loading overwrites them first), the
    /// frequency matrices are zeros, and the device's random generator is left alone.
    pub(crate) fn for_loading(&self, device: &Device) -> Result<LocationEncoder, AlignError> {
        self.validate()?;
        let frequencies = |_| Tensor::zeros([self.encoded_size, 2], device);
        Ok(self.build(frequencies, |input, output| {
            LinearConfig::new(input, output).init(device)
        }))
    }

    /// The module tree, with frequency matrices and Linear layers from the given makers
    /// (called capsule by capsule, layer by layer: the order the random draws happen in).
    fn build(
        &self,
        frequencies: impl Fn(f64) -> Tensor<2>,
        linear: impl Fn(usize, usize) -> Linear,
    ) -> LocationEncoder {
        let capsules = self
            .sigmas
            .iter()
            .map(|sigma| {
                let encoding = GaussianEncoding {
                    b: Param::from_tensor(frequencies(*sigma)).set_require_grad(false),
                };
                let mut hidden = Vec::with_capacity(self.hidden_layers);
                let mut width = 2 * self.encoded_size;
                for _ in 0..self.hidden_layers {
                    hidden.push(linear(width, self.hidden_width));
                    width = self.hidden_width;
                }
                LocationCapsule {
                    encoding,
                    hidden,
                    head: linear(self.hidden_width, self.output_size),
                }
            })
            .collect();
        LocationEncoder { capsules }
    }
}

/// A Linear layer whose parameters are drawn now rather than on first use.
pub(crate) fn initialized_linear(input_size: usize, output_size: usize, device: &Device) -> Linear {
    let layer = LinearConfig::new(input_size, output_size).init(device);
    let _ = layer.weight.val();
    if let Some(bias) = &layer.bias {
        let _ = bias.val();
    }
    layer
}

/// Random Fourier features γ(v) = [cos(2π v Bᵀ), sin(2π v Bᵀ)] with a fixed matrix B.
///
/// Reference: `GaussianEncoding` of the `rff` package vendored by GeoCLIP and G3 (key
/// `capsule.0.b`).
#[derive(Module, Debug)]
pub struct GaussianEncoding {
    /// The frequency matrix B, `[encoded_size, 2]`, drawn once from N(0, σ²) and never
    /// trained (its gradient is switched off).
    pub b: Param<Tensor<2>>,
}

impl GaussianEncoding {
    /// `[batch, 2]` → `[batch, 2 · encoded_size]`, cosines first.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        // Same order of operations as the reference: (2π · v) @ Bᵀ, in float32.
        let phase = input
            .mul_scalar(2.0 * std::f64::consts::PI)
            .matmul(self.b.val().transpose());
        Tensor::cat(vec![phase.clone().cos(), phase.sin()], 1)
    }
}

/// One capsule: Fourier features, Linear + ReLU layers, then a Linear head.
///
/// Reference: `LocationEncoderCapsule` (keys `LocEnc{i}.capsule.{0,1,3,5}`, `LocEnc{i}.head.0`).
#[derive(Module, Debug)]
pub struct LocationCapsule {
    /// The random Fourier features (`capsule.0`).
    pub encoding: GaussianEncoding,
    /// The hidden layers, each followed by ReLU (`capsule.1`, `capsule.3`, `capsule.5`).
    pub hidden: Vec<Linear>,
    /// The output layer, without activation (`head.0`).
    pub head: Linear,
}

impl LocationCapsule {
    /// `[batch, 2]` → `[batch, output_size]`.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let mut features = self.encoding.forward(input);
        for layer in &self.hidden {
            features = relu(layer.forward(features));
        }
        self.head.forward(features)
    }
}

/// The GPS encoder: the sum of several [`LocationCapsule`]s at different frequency scales.
///
/// Takes projected coordinates (see [`Projection`](super::Projection)), not degrees: GeoCLIP
/// trained it on Equal Earth input, G3 fine-tunes it on Mercator input.
///
/// Reference: GeoCLIP's `LocationEncoder` and G3's `CustomLocationEncoder` (keys `LocEnc{i}.*`).
#[derive(Module, Debug)]
pub struct LocationEncoder {
    /// One capsule per σ (`LocEnc0`, `LocEnc1`, ...).
    pub capsules: Vec<LocationCapsule>,
}

impl LocationEncoder {
    /// `[batch, 2]` projected coordinates → `[batch, output_size]` embeddings (not normalised).
    pub fn forward(&self, projected: Tensor<2>) -> Tensor<2> {
        let mut capsules = self.capsules.iter();
        let first = capsules
            .next()
            .expect("a LocationEncoder has at least one capsule (checked by its config)");
        capsules.fold(first.forward(projected.clone()), |sum, capsule| {
            sum + capsule.forward(projected.clone())
        })
    }

    /// Width of the embeddings.
    pub fn output_size(&self) -> usize {
        self.capsules[0].head.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(deprecated)] // burn-ndarray is the CPU backend this project was asked to use
    fn device() -> Device {
        Device::ndarray()
    }

    fn tiny() -> LocationEncoderConfig {
        LocationEncoderConfig {
            sigmas: vec![1.0, 4.0],
            encoded_size: 4,
            hidden_width: 8,
            hidden_layers: 2,
            output_size: 3,
        }
    }

    #[test]
    fn forward_sums_the_capsules() {
        let device = device();
        let encoder = tiny().init(&device, 7).unwrap();
        let input = Tensor::<2>::from_floats([[0.1, -0.2], [0.5, 0.9]], &device);
        let total = encoder.forward(input.clone());
        assert_eq!(total.dims(), [2, 3]);
        let by_hand =
            encoder.capsules[0].forward(input.clone()) + encoder.capsules[1].forward(input);
        let difference: f32 = (total - by_hand).abs().max().into_scalar();
        assert!(difference < 1e-6);
        assert_eq!(encoder.output_size(), 3);
    }

    #[test]
    fn fourier_features_are_cosines_then_sines_of_two_pi_v_b() {
        let device = device();
        let encoding = GaussianEncoding {
            b: Param::from_tensor(Tensor::from_floats([[1.0, 0.0], [0.0, 2.0]], &device)),
        };
        let features = encoding.forward(Tensor::from_floats([[0.125, 0.25]], &device));
        let data = features.into_data();
        let values = data.as_slice::<f32>().unwrap();
        let phases = [std::f32::consts::FRAC_PI_4, std::f32::consts::PI];
        let expected = [
            phases[0].cos(),
            phases[1].cos(),
            phases[0].sin(),
            phases[1].sin(),
        ];
        for (got, want) in values.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{values:?}");
        }
    }

    #[test]
    fn initialisation_is_reproducible() {
        let device = device();
        let a = tiny().init(&device, 42).unwrap();
        let b = tiny().init(&device, 42).unwrap();
        let input = Tensor::<2>::from_floats([[0.3, 0.3]], &device);
        let difference: f32 = (a.forward(input.clone()) - b.forward(input))
            .abs()
            .max()
            .into_scalar();
        assert_eq!(difference, 0.0);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let device = device();
        for config in [
            LocationEncoderConfig {
                sigmas: vec![],
                ..tiny()
            },
            LocationEncoderConfig {
                sigmas: vec![f64::NAN],
                ..tiny()
            },
            LocationEncoderConfig {
                hidden_layers: 0,
                ..tiny()
            },
        ] {
            assert!(config.init(&device, 0).is_err(), "{config:?}");
        }
    }
}

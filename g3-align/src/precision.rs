//! The floating-point precision models compute in.
//!
//! On GPUs, half precision (f16 or bf16) halves the memory traffic of every weight and
//! activation and lets matrix products run on tensor cores (through burn's `vulkan` feature,
//! cubecl's SPIR-V compiler with cooperative matrices), accumulating in float32 where the
//! backend does. On the CPU, the ndarray device computes in float32 only: its inference paths
//! ([`CpuVisionTower`](crate::clip::CpuVisionTower)) are float32 kernels.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::{FloatDType, bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AlignError;

/// Floating-point format of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE single precision, as the reference computes (the default).
    #[default]
    F32,
    /// IEEE half precision: 11-bit significand, range up to 65504.
    F16,
    /// bfloat16: float32's range with an 8-bit significand.
    Bf16,
}

impl Precision {
    /// Every precision, in the order they are listed to users.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// The name used on the command line and in config files (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// burn's dtype for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// Whether `device` can compute in this precision: float32 everywhere; half precision
    /// where burn's backend supports the dtype (GPUs through wgpu, and the flex CPU backend),
    /// not on the ndarray CPU device.
    pub fn check(self, device: &Device) -> Result<(), AlignError> {
        if self == Precision::F32 {
            return Ok(());
        }
        if crate::device::runs_on_ndarray(device) {
            return Err(AlignError::InvalidConfig {
                reason: format!(
                    "precision {self} needs a GPU device (build with --features wgpu or vulkan) or the flex CPU backend: the ndarray CPU device computes in float32"
                ),
            });
        }
        Ok(())
    }

    /// `values` as tensor data of `shape` in this precision, converted on the host (on every
    /// core), so that a half-precision model's inputs cross to the device in half the bytes:
    /// at ViT-L/14's batch of 128, uploading float32 pixels and casting them on the device
    /// took 90 ms on an H200 machine, a quarter of the f16 forward pass. Rounding on the host
    /// gives the values the device's own cast would (round to nearest even). Create the tensor
    /// with this dtype (`Tensor::from_data(data, (&device, precision.dtype().into()))`):
    /// plain `from_data` converts to the device's default float type, float32.
    pub fn host_data(self, values: &[f32], shape: impl Into<Shape>) -> TensorData {
        fn converted<T: Send>(values: &[f32], convert: fn(f32) -> T) -> Vec<T> {
            values
                .par_chunks(1 << 16)
                .flat_map_iter(|chunk| chunk.iter().map(|&value| convert(value)))
                .collect()
        }
        match self {
            Precision::F32 => TensorData::new(values.to_vec(), shape),
            Precision::F16 => TensorData::new(converted(values, f16::from_f32), shape),
            Precision::Bf16 => TensorData::new(converted(values, bf16::from_f32), shape),
        }
    }

    /// `module` with every float parameter converted to this precision.
    pub fn cast_module<M: Module>(self, module: M) -> M {
        if self == Precision::F32 {
            return module;
        }
        module.map(&mut CastFloats(self.dtype()))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = AlignError;

    /// Reads a precision's [`name`](Precision::name), case-insensitively.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|precision| precision.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| AlignError::InvalidConfig {
                reason: format!("no precision named {text:?}; precisions: f32, f16, bf16"),
            })
    }
}

/// Converts every float parameter of a module to one dtype.
struct CastFloats(FloatDType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|tensor| tensor.cast(dtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_cpu_device_refuses_half_precision() {
        for precision in Precision::ALL {
            assert_eq!(precision.name().parse::<Precision>().unwrap(), precision);
            assert_eq!(
                serde_json::to_string(&precision).unwrap(),
                format!("\"{precision}\"")
            );
        }
        assert!("f64".parse::<Precision>().is_err());
        #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
        let cpu = Device::ndarray();
        Precision::F32.check(&cpu).unwrap();
        let error = Precision::F16.check(&cpu).unwrap_err().to_string();
        assert!(error.contains("float32"), "{error}");
    }
}

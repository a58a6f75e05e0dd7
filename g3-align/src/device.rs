//! Choosing where models run. Only binaries, tests and benches pick a device; model code
//! takes whatever `Device` it is given.

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

/// A compute backend a user can name on the command line or in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ComputeDevice {
    /// burn-ndarray on the CPU (the default; always available).
    #[default]
    Cpu,
    /// burn's pure-Rust `flex` CPU backend (cargo feature `flex`).
    Flex,
    /// The default GPU through wgpu (cargo feature `wgpu`).
    Wgpu,
}

impl ComputeDevice {
    /// The burn device, or an explanation when this build lacks the backend.
    pub fn to_device(self) -> Result<Device, crate::AlignError> {
        match self {
            #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
            ComputeDevice::Cpu => Ok(Device::ndarray()),
            #[cfg(feature = "flex")]
            ComputeDevice::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            ComputeDevice::Wgpu => Ok(Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => Err(crate::AlignError::InvalidConfig {
                reason: format!(
                    "this build has no {other:?} backend: rebuild with `--features {}`",
                    match other {
                        ComputeDevice::Flex => "flex",
                        _ => "wgpu",
                    }
                ),
            }),
        }
    }
}

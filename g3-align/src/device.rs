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
    /// Every backend, in the order they are listed to users.
    pub const ALL: [ComputeDevice; 3] =
        [ComputeDevice::Cpu, ComputeDevice::Flex, ComputeDevice::Wgpu];

    /// The name used on the command line and in config files (`cpu`, `flex`, `wgpu`).
    pub fn name(self) -> &'static str {
        match self {
            ComputeDevice::Cpu => "cpu",
            ComputeDevice::Flex => "flex",
            ComputeDevice::Wgpu => "wgpu",
        }
    }

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

/// Whether `device` is burn-ndarray's CPU device without autodiff: where the CPU inference
/// paths ([`CpuVisionTower`](crate::clip::CpuVisionTower), [`CpuGpsBranch`](crate::CpuGpsBranch))
/// replace burn's modules.
pub(crate) fn runs_on_ndarray(device: &Device) -> bool {
    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    let ndarray = Device::ndarray();
    !device.is_autodiff() && *device == ndarray
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for ComputeDevice {
    type Err = crate::AlignError;

    /// Reads a backend's [`name`](ComputeDevice::name), case-insensitively.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ComputeDevice::ALL
            .into_iter()
            .find(|device| device.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| crate::AlignError::UnknownDevice {
                name: text.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_devices() {
        for device in ComputeDevice::ALL {
            assert_eq!(device.name().parse::<ComputeDevice>().unwrap(), device);
            let toml = serde_json::to_string(&device).unwrap();
            assert_eq!(toml, format!("\"{device}\""), "serde uses the same names");
        }
        assert_eq!(
            " WGPU ".parse::<ComputeDevice>().unwrap(),
            ComputeDevice::Wgpu
        );
        let error = "cuda".parse::<ComputeDevice>().unwrap_err().to_string();
        assert!(error.contains("cpu, flex, wgpu"), "{error}");
    }
}

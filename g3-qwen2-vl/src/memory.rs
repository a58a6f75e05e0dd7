//! The memory plan: a 7B model is 15 GB in bf16 as published and 30 GB in f32, the precision
//! this crate computes in. Loading is refused up front when the machine cannot hold the
//! weights, rather than ending in the kernel's out-of-memory killer half an hour in.

use std::path::Path;

use safetensors::SafeTensors;

use crate::error::Qwen2VlError;
use crate::loader::weight_files;

/// Headroom beyond the weights for activations, the vision tower's attention and the
/// tokenizer: 10 % plus 1 GiB.
fn with_headroom(bytes: u64) -> u64 {
    bytes + bytes / 10 + (1 << 30)
}

/// What a model folder's weights take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Parameters in the weight files.
    pub parameters: u64,
    /// Bytes of the weights in f32, as they are held once loaded.
    pub f32_bytes: u64,
    /// Bytes to have available before loading: the weights and headroom for the forward
    /// passes.
    pub required_bytes: u64,
}

impl MemoryPlan {
    /// Reads the headers of a model folder's weight files (not the weights).
    pub fn of_model_folder(folder: &Path) -> Result<Self, Qwen2VlError> {
        let mut parameters = 0_u64;
        for file in weight_files(folder)? {
            let handle = std::fs::File::open(&file).map_err(|source| Qwen2VlError::Io {
                path: file.clone(),
                source,
            })?;
            // SAFETY: read-only map of a file we only read; only the header is touched.
            let mapped =
                unsafe { memmap2::Mmap::map(&handle) }.map_err(|source| Qwen2VlError::Io {
                    path: file.clone(),
                    source,
                })?;
            let (_, metadata) =
                SafeTensors::read_metadata(&mapped).map_err(|error| Qwen2VlError::Checkpoint {
                    path: file.clone(),
                    source: Box::new(error),
                })?;
            parameters += metadata
                .tensors()
                .values()
                .map(|info| info.shape.iter().product::<usize>() as u64)
                .sum::<u64>();
        }
        let f32_bytes = parameters * 4;
        Ok(MemoryPlan {
            parameters,
            f32_bytes,
            required_bytes: with_headroom(f32_bytes),
        })
    }

    /// Fails with [`Qwen2VlError::InsufficientMemory`] when `available` bytes (the machine's,
    /// see [`available_memory`]) cannot hold the model.
    pub fn check(&self, available: u64) -> Result<(), Qwen2VlError> {
        if available >= self.required_bytes {
            return Ok(());
        }
        Err(Qwen2VlError::InsufficientMemory {
            required_bytes: self.required_bytes,
            available_bytes: available,
            parameters: self.parameters,
        })
    }
}

/// The memory the system can give a new process without swapping (`MemAvailable` of
/// `/proc/meminfo`); `None` where the system does not say.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_7b_model_needs_more_than_its_f32_weights() {
        let plan = MemoryPlan {
            parameters: 8_291_375_616,
            f32_bytes: 8_291_375_616 * 4,
            required_bytes: with_headroom(8_291_375_616 * 4),
        };
        let error = plan.check(24 << 30).unwrap_err().to_string();
        assert!(error.contains("8.3 billion parameters"), "{error}");
        assert!(error.contains("GPU"), "{error}");
        assert!(plan.check(64 << 30).is_ok());
    }

    #[test]
    fn this_machine_reports_its_memory() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().unwrap() > 0);
        }
    }
}

//! Loading pretrained weights: the PyTorch-to-burn key table lives here, and only here.
//!
//! Supported files:
//!
//! | file | keys | where from |
//! |---|---|---|
//! | GeoCLIP `location_encoder_weights.pth` | `LocEnc{i}.*` | the `geoclip` package (see `scripts/fetch-assets.sh`) |
//! | G3 checkpoint `g3.pth` | `location_encoder.LocEnc{i}.*`, `location_projection_else.*` (plus CLIP, ignored here) | the G3 authors |
//! | safetensors | either naming above, or this crate's own module paths | `safetensors.torch.save_file(state_dict)`, or saved by g3-rs |
//!
//! Key table, PyTorch → burn (`i` = capsule, `j` = hidden layer):
//!
//! | PyTorch | burn |
//! |---|---|
//! | `LocEnc{i}.…` (GeoCLIP, no prefix) | `location_encoder.LocEnc{i}.…` (then as below) |
//! | `location_encoder.LocEnc{i}.capsule.0.b` | `location_encoder.capsules.{i}.encoding.b` |
//! | `location_encoder.LocEnc{i}.capsule.{2j+1}.{weight,bias}` | `location_encoder.capsules.{i}.hidden.{j}.{weight,bias}` |
//! | `location_encoder.LocEnc{i}.head.0.{weight,bias}` | `location_encoder.capsules.{i}.head.{weight,bias}` |
//! | `location_projection_else.0.{weight,bias}` | `location_projection_else.input.{weight,bias}` |
//! | `location_projection_else.2.{weight,bias}` | `location_projection_else.output.{weight,bias}` |
//!
//! PyTorch stores Linear weights as `[out, in]` and burn as `[in, out]`; the PyTorch adapter
//! transposes them. The random Fourier matrix `b` is a bare parameter and keeps its
//! `[encoded_size, 2]` layout on both sides.

use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::error::AlignError;
use crate::gps::GpsBranch;

/// Reference-key patterns and their burn replacements, applied in order.
fn gps_key_table(hidden_layers: usize) -> Vec<(String, String)> {
    let mut table = vec![
        (r"^LocEnc".to_owned(), "location_encoder.LocEnc".to_owned()),
        (
            r"^location_encoder\.LocEnc(\d+)\.capsule\.0\.b$".to_owned(),
            "location_encoder.capsules.$1.encoding.b".to_owned(),
        ),
        (
            r"^location_encoder\.LocEnc(\d+)\.head\.0\.".to_owned(),
            "location_encoder.capsules.$1.head.".to_owned(),
        ),
        (
            r"^location_projection_else\.0\.".to_owned(),
            "location_projection_else.input.".to_owned(),
        ),
        (
            r"^location_projection_else\.2\.".to_owned(),
            "location_projection_else.output.".to_owned(),
        ),
    ];
    for layer in 0..hidden_layers {
        table.push((
            format!(
                r"^location_encoder\.LocEnc(\d+)\.capsule\.{}\.",
                2 * layer + 1
            ),
            format!("location_encoder.capsules.$1.hidden.{layer}."),
        ));
    }
    table
}

/// The reference (PyTorch) name of a burn parameter path of [`GpsBranch`], for messages.
pub fn reference_key(burn_path: &str) -> String {
    let parts: Vec<&str> = burn_path.split('.').collect();
    match parts.as_slice() {
        ["location_encoder", "capsules", capsule, "encoding", "b"] => {
            format!("location_encoder.LocEnc{capsule}.capsule.0.b")
        }
        [
            "location_encoder",
            "capsules",
            capsule,
            "hidden",
            layer,
            tensor,
        ] => {
            let index = layer
                .parse::<usize>()
                .map_or_else(|_| layer.to_string(), |j| (2 * j + 1).to_string());
            format!("location_encoder.LocEnc{capsule}.capsule.{index}.{tensor}")
        }
        ["location_encoder", "capsules", capsule, "head", tensor] => {
            format!("location_encoder.LocEnc{capsule}.head.0.{tensor}")
        }
        ["location_projection_else", "input", tensor] => {
            format!("location_projection_else.0.{tensor}")
        }
        ["location_projection_else", "output", tensor] => {
            format!("location_projection_else.2.{tensor}")
        }
        _ => burn_path.to_owned(),
    }
}

/// Fills `branch` from the checkpoint at `path`; see the module docs for the formats.
///
/// Every tensor of `branch` must be in the file with the right shape, and the file must hold
/// no other tensor under the GPS prefixes (`location_encoder.*`, and `location_projection_else.*`
/// when `with_head`); otherwise [`AlignError::KeyMismatch`] lists them all. Other tensors
/// (the CLIP towers of a G3 checkpoint) are ignored.
pub fn load_gps_branch(
    branch: &mut GpsBranch,
    path: &Path,
    with_head: bool,
) -> Result<(), AlignError> {
    if !path.is_file() {
        return Err(AlignError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
        });
    }
    let table = gps_key_table(
        branch
            .location_encoder
            .capsules
            .first()
            .map_or(0, |c| c.hidden.len()),
    );
    let checkpoint_error =
        |source: Box<dyn std::error::Error + Send + Sync>| AlignError::Checkpoint {
            path: path.to_path_buf(),
            source,
        };
    let is_safetensors = path
        .extension()
        .is_some_and(|extension| extension == "safetensors");
    let result = if is_safetensors {
        let mut store = SafetensorsStore::from_file(path)
            .validate(false)
            .allow_partial(true)
            .map_indices_contiguous(false);
        let uses_reference_names = {
            use burn::store::ModuleStore;
            store
                .keys()
                .map_err(|error| checkpoint_error(Box::new(error)))?
                .iter()
                .any(|key| key.contains("LocEnc") || key.starts_with("location_projection_else.0."))
        };
        if uses_reference_names {
            store = store.with_from_adapter(PyTorchToBurnAdapter);
        }
        for (pattern, replacement) in &table {
            store = store.with_key_remapping(pattern, replacement.as_str());
        }
        branch
            .load_from(&mut store)
            .map_err(|error| checkpoint_error(Box::new(error)))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .validate(false)
            .allow_partial(true)
            .map_indices_contiguous(false);
        for (pattern, replacement) in &table {
            store = store.with_key_remapping(pattern, replacement.as_str());
        }
        branch
            .load_from(&mut store)
            .map_err(|error| checkpoint_error(Box::new(error)))?
    };
    check_fit(&result, path, with_head)
}

/// Turns burn's partial-load report into our error when anything did not fit.
fn check_fit(result: &ApplyResult, path: &Path, with_head: bool) -> Result<(), AlignError> {
    let ours = |key: &str| {
        key.starts_with("location_encoder.")
            || (with_head && key.starts_with("location_projection_else."))
    };
    let missing: Vec<String> = result
        .missing
        .iter()
        .map(|(key, _)| reference_key(key))
        .collect();
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|key| ours(key))
        .map(|key| reference_key(key))
        .collect();
    let mis_shaped: Vec<String> = result
        .errors
        .iter()
        .map(|error| match error {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => format!(
                "{} (file {:?}, model {:?})",
                reference_key(key),
                found.as_slice(),
                expected.as_slice()
            ),
            other => other.to_string(),
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty() {
        return Ok(());
    }
    Err(AlignError::KeyMismatch {
        path: path.to_path_buf(),
        missing,
        unexpected,
        mis_shaped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_keys_invert_the_table() {
        let cases = [
            (
                "location_encoder.capsules.2.encoding.b",
                "location_encoder.LocEnc2.capsule.0.b",
            ),
            (
                "location_encoder.capsules.0.hidden.2.weight",
                "location_encoder.LocEnc0.capsule.5.weight",
            ),
            (
                "location_encoder.capsules.1.head.bias",
                "location_encoder.LocEnc1.head.0.bias",
            ),
            (
                "location_projection_else.output.weight",
                "location_projection_else.2.weight",
            ),
            ("something.else", "something.else"),
        ];
        for (burn_path, reference) in cases {
            assert_eq!(reference_key(burn_path), reference);
        }
    }
}

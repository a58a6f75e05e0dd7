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

use g3_core::atomic::AtomicFile;

use crate::error::AlignError;
use crate::gps::branch::GpsBranch;

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

/// Hidden layers per capsule of `encoder`: the key table depends on it.
fn hidden_layers(encoder: &crate::LocationEncoder) -> usize {
    encoder
        .capsules
        .first()
        .map_or(0, |capsule| capsule.hidden.len())
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
    let table = gps_key_table(hidden_layers(&branch.location_encoder));
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

/// Turns burn's partial-load report of the GPS branch into our error when anything did not fit.
fn check_fit(result: &ApplyResult, path: &Path, with_head: bool) -> Result<(), AlignError> {
    let ours = |key: &str| {
        key.starts_with("location_encoder.")
            || (with_head && key.starts_with("location_projection_else."))
    };
    check_fit_with(result, path, ours, reference_key)
}

/// Turns burn's partial-load report into our error when a model tensor is missing or
/// mis-shaped, or the file has a tensor under the model's prefixes (`ours`) that the model
/// has no place for. `reference` names burn paths as the file does.
fn check_fit_with(
    result: &ApplyResult,
    path: &Path,
    ours: impl Fn(&str) -> bool,
    reference_key: impl Fn(&str) -> String,
) -> Result<(), AlignError> {
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

/// Key table of G3's image and text heads: PyTorch `nn.Sequential` indices → [`ProjectionHead`]
/// fields. CLIP's own keys need no table (the modules mirror HF's tree).
///
/// [`ProjectionHead`]: crate::ProjectionHead
const HEAD_KEY_TABLE: [(&str, &str); 2] = [
    (
        r"^(vision_projection_else_[12]|text_projection_else)\.0\.",
        "$1.input.",
    ),
    (
        r"^(vision_projection_else_[12]|text_projection_else)\.2\.",
        "$1.output.",
    ),
];

/// The file's name of a burn path of a CLIP or G3 model: layer norms keep PyTorch's
/// `weight`/`bias` (burn's `gamma`/`beta`), heads their `nn.Sequential` indices.
pub fn clip_reference_key(burn_path: &str) -> String {
    let key = if let Some(rest) = burn_path.strip_prefix("input.") {
        format!("0.{rest}")
    } else if let Some(rest) = burn_path.strip_prefix("output.") {
        format!("2.{rest}")
    } else {
        burn_path
            .replace(".input.", ".0.")
            .replace(".output.", ".2.")
    };
    let is_norm = ["layer_norm", "layrnorm", "layernorm"]
        .iter()
        .any(|norm| key.contains(norm));
    match key.rsplit_once('.') {
        Some((module, "gamma")) if is_norm => format!("{module}.weight"),
        Some((module, "beta")) if is_norm => format!("{module}.bias"),
        _ => key,
    }
}

/// Keys some CLIP checkpoints carry that no model needs: the position-id buffers of older
/// transformers versions and CLIPModel's own temperature.
fn is_unused_clip_buffer(key: &str) -> bool {
    key.ends_with("position_ids") || key == "logit_scale"
}

/// Loads `module` from a PyTorch or safetensors file whose keys are PyTorch's (HF or G3
/// naming), renaming with `table` first.
fn load_with_pytorch_names<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    table: &[(&str, &str)],
) -> Result<ApplyResult, AlignError> {
    if !path.is_file() {
        return Err(AlignError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
        });
    }
    let checkpoint_error =
        |source: Box<dyn std::error::Error + Send + Sync>| AlignError::Checkpoint {
            path: path.to_path_buf(),
            source,
        };
    if is_safetensors(path) {
        let mut store = SafetensorsStore::from_file(path)
            .validate(false)
            .allow_partial(true)
            .map_indices_contiguous(false)
            .with_from_adapter(PyTorchToBurnAdapter);
        for (pattern, replacement) in table {
            store = store.with_key_remapping(pattern, *replacement);
        }
        module
            .load_from(&mut store)
            .map_err(|error| checkpoint_error(Box::new(error)))
    } else {
        let mut store = PytorchStore::from_file(path)
            .validate(false)
            .allow_partial(true)
            .map_indices_contiguous(false);
        for (pattern, replacement) in table {
            store = store.with_key_remapping(pattern, *replacement);
        }
        module
            .load_from(&mut store)
            .map_err(|error| checkpoint_error(Box::new(error)))
    }
}

fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "safetensors")
}

/// Fills an HF-layout [`ClipModel`] from `model.safetensors` or `pytorch_model.bin`.
///
/// [`ClipModel`]: crate::clip::ClipModel
pub fn load_clip_model(model: &mut crate::clip::ClipModel, path: &Path) -> Result<(), AlignError> {
    let result = load_with_pytorch_names(model, path, &[])?;
    let ours = |key: &str| {
        !is_unused_clip_buffer(key)
            && [
                "vision_model.",
                "text_model.",
                "visual_projection.",
                "text_projection.",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
    };
    check_fit_with(&result, path, ours, clip_reference_key)
}

/// Fills a [`G3Model`] from a G3 checkpoint (see [`G3Model::load`]). The GPS branch and the
/// temperatures in the same file are left to their own loaders.
///
/// [`G3Model`]: crate::G3Model
/// [`G3Model::load`]: crate::G3Model::load
pub fn load_g3_model(model: &mut crate::G3Model, path: &Path) -> Result<(), AlignError> {
    let result = load_with_pytorch_names(model, path, &HEAD_KEY_TABLE)?;
    let ours = |key: &str| {
        !is_unused_clip_buffer(key)
            && [
                "vision_model.",
                "text_model.",
                "vision_projection.",
                "text_projection.",
                "vision_projection_else_",
                "text_projection_else.",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
    };
    check_fit_with(&result, path, ours, clip_reference_key)
}

/// Fills a [`training::AlignmentModel`] from a checkpoint with G3's keys: G3's `g3.pth`
/// (CLIP's towers in it are ignored) or a safetensors file saved by
/// [`save_alignment_model`]. The temperatures are read by the caller (PyTorch stores them as
/// 0-d tensors, burn as `[1]`), so they are not checked here.
///
/// [`training::AlignmentModel`]: crate::training::AlignmentModel
pub fn load_alignment_model(
    model: &mut crate::training::AlignmentModel,
    path: &Path,
) -> Result<(), AlignError> {
    let hidden_layers = hidden_layers(&model.location_encoder);
    let gps_table = gps_key_table(hidden_layers);
    let mut table: Vec<(&str, &str)> = gps_table
        .iter()
        .map(|(pattern, replacement)| (pattern.as_str(), replacement.as_str()))
        .collect();
    table.extend(HEAD_KEY_TABLE);
    let mut result = load_with_pytorch_names(model, path, &table)?;
    let is_scale = |key: &str| key.starts_with("logit_scale");
    result.missing.retain(|(key, _)| !is_scale(key));
    result.errors.retain(|error| match error {
        ApplyError::ShapeMismatch { path: key, .. } => !is_scale(key),
        _ => true,
    });
    let ours = |key: &str| {
        [
            "location_encoder.",
            "location_projection_else.",
            "vision_projection_else_",
            "text_projection_else.",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
    };
    check_fit_with(&result, path, ours, |key| {
        clip_reference_key(&reference_key(key))
    })
}

/// Writes a [`training::AlignmentModel`] as safetensors with G3's keys and PyTorch layouts,
/// through a temporary file renamed into place.
///
/// [`training::AlignmentModel`]: crate::training::AlignmentModel
pub fn save_alignment_model(
    model: &crate::training::AlignmentModel,
    path: &Path,
) -> Result<(), AlignError> {
    let hidden_layers = hidden_layers(&model.location_encoder);
    let mut table = vec![
        (
            r"^location_encoder\.capsules\.(\d+)\.encoding\.b$".to_owned(),
            "location_encoder.LocEnc$1.capsule.0.b".to_owned(),
        ),
        (
            r"^location_encoder\.capsules\.(\d+)\.head\.".to_owned(),
            "location_encoder.LocEnc$1.head.0.".to_owned(),
        ),
        (r"^(\w+)\.input\.".to_owned(), "$1.0.".to_owned()),
        (r"^(\w+)\.output\.".to_owned(), "$1.2.".to_owned()),
    ];
    for layer in 0..hidden_layers {
        table.push((
            format!(r"^location_encoder\.capsules\.(\d+)\.hidden\.{layer}\."),
            format!("location_encoder.LocEnc$1.capsule.{}.", 2 * layer + 1),
        ));
    }
    let temporary = AtomicFile::create(path)?;
    let mut store = SafetensorsStore::from_file(temporary.temporary_path())
        .overwrite(true)
        .with_to_adapter(burn::store::BurnToPyTorchAdapter);
    for (pattern, replacement) in &table {
        store = store.with_key_remapping(pattern, replacement.as_str());
    }
    model
        .save_into(&mut store)
        .map_err(|error| AlignError::Checkpoint {
            path: path.to_path_buf(),
            source: Box::new(error),
        })?;
    Ok(temporary.commit()?)
}

/// GeoCLIP's image MLP (`image_encoder_mlp_weights.pth`: a bare `nn.Sequential` with keys
/// `0.*` and `2.*`, 768 → 768 → 512), with its sizes read from the file.
pub fn load_geoclip_image_mlp(
    path: &Path,
    device: &burn::prelude::Device,
) -> Result<crate::ProjectionHead, AlignError> {
    let sizes = CheckpointTensors::read(path)?.head_sizes("")?;
    let mut head = sizes.for_loading(device);
    let result = load_with_pytorch_names(
        &mut head,
        path,
        &[(r"^0\.", "input."), (r"^2\.", "output.")],
    )?;
    check_fit_with(
        &result,
        path,
        |key| key.starts_with("input.") || key.starts_with("output."),
        clip_reference_key,
    )?;
    Ok(head)
}

/// The names, shapes and (for scalars) values of a checkpoint's tensors, read without
/// loading a model: how sizes that a file does not record elsewhere are inferred.
pub struct CheckpointTensors {
    path: std::path::PathBuf,
    shapes: std::collections::BTreeMap<String, Vec<usize>>,
    scalars: std::collections::BTreeMap<String, f32>,
}

impl CheckpointTensors {
    /// Reads the tensor table of a PyTorch or safetensors file (scalar values included; no
    /// other tensor data is read).
    pub fn read(path: &Path) -> Result<Self, AlignError> {
        use burn::store::ModuleStore;
        if !path.is_file() {
            return Err(AlignError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
            });
        }
        let checkpoint_error = |message: String| AlignError::Checkpoint {
            path: path.to_path_buf(),
            source: message.into(),
        };
        let mut shapes = std::collections::BTreeMap::new();
        let mut scalars = std::collections::BTreeMap::new();
        let mut record =
            |tensors: &std::collections::BTreeMap<String, burn::store::burn_pack::Tensor>| {
                for (name, tensor) in tensors {
                    let shape = tensor.shape.as_slice().to_vec();
                    if shape.iter().product::<usize>() == 1 {
                        let bytes = tensor
                            .to_bytes()
                            .map_err(|error| checkpoint_error(format!("{name}: {error}")))?;
                        let value = match tensor.dtype {
                            burn::tensor::DType::F32 => bytes
                                .get(..4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                            burn::tensor::DType::F64 => bytes.get(..8).map(|b| {
                                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                                    as f32
                            }),
                            _ => None,
                        };
                        if let Some(value) = value {
                            scalars.insert(name.clone(), value);
                        }
                    }
                    shapes.insert(name.clone(), shape);
                }
                Ok::<(), AlignError>(())
            };
        if is_safetensors(path) {
            let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
            let tensors = store
                .get_all_tensors()
                .map_err(|error| checkpoint_error(error.to_string()))?;
            record(tensors)?;
        } else {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            let tensors = store
                .get_all_tensors()
                .map_err(|error| checkpoint_error(error.to_string()))?;
            record(tensors)?;
        }
        Ok(CheckpointTensors {
            path: path.to_path_buf(),
            shapes,
            scalars,
        })
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice)
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.shapes.keys().map(String::as_str)
    }

    fn missing(&self, what: &str) -> AlignError {
        AlignError::KeyMismatch {
            path: self.path.clone(),
            missing: vec![what.to_owned()],
            unexpected: Vec::new(),
            mis_shaped: Vec::new(),
        }
    }

    /// The value of a one-element float tensor (a temperature).
    pub fn scalar(&self, name: &str) -> Result<f32, AlignError> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| self.missing(name))
    }

    /// The sizes of a Linear-ReLU-Linear head saved as `{prefix}.0.weight` [hidden, input] and
    /// `{prefix}.2.weight` [output, hidden].
    /// An empty prefix reads a bare `nn.Sequential` (`0.weight`, `2.weight`).
    pub fn head_sizes(&self, prefix: &str) -> Result<crate::ProjectionHeadConfig, AlignError> {
        let dot = if prefix.is_empty() { "" } else { "." };
        let first_key = format!("{prefix}{dot}0.weight");
        let second_key = format!("{prefix}{dot}2.weight");
        match (self.shape(&first_key), self.shape(&second_key)) {
            (Some(&[hidden, input]), Some(&[output, second_input])) if second_input == hidden => {
                Ok(crate::ProjectionHeadConfig {
                    input_size: input,
                    hidden_size: hidden,
                    output_size: output,
                })
            }
            (Some(_), Some(_)) => Err(AlignError::KeyMismatch {
                path: self.path.clone(),
                missing: Vec::new(),
                unexpected: Vec::new(),
                mis_shaped: vec![format!(
                    "{first_key} {:?} and {second_key} {:?} do not chain",
                    self.shape(&first_key).unwrap_or_default(),
                    self.shape(&second_key).unwrap_or_default()
                )],
            }),
            (None, _) => Err(self.missing(&first_key)),
            (_, None) => Err(self.missing(&second_key)),
        }
    }

    /// The shape of G3's GPS branch (`location_encoder.LocEnc{i}.*`,
    /// `location_projection_else.*`): capsule count, frequencies, widths, depth. The σ of each
    /// capsule is not stored (it only scales the initial frequencies), so G3's 2^0, 2^4, 2^8
    /// are assumed for three capsules and powers of 16 otherwise.
    pub fn g3_gps_config(&self) -> Result<crate::GpsEncoderConfig, AlignError> {
        let capsules = (0..)
            .take_while(|i| {
                self.shape(&format!("location_encoder.LocEnc{i}.capsule.0.b"))
                    .is_some()
            })
            .count();
        if capsules == 0 {
            return Err(self.missing("location_encoder.LocEnc0.capsule.0.b"));
        }
        let encoded_size = self
            .shape("location_encoder.LocEnc0.capsule.0.b")
            .and_then(|shape| shape.first().copied())
            .unwrap_or(0);
        let hidden_layers = (0..)
            .take_while(|j| {
                self.shape(&format!(
                    "location_encoder.LocEnc0.capsule.{}.weight",
                    2 * j + 1
                ))
                .is_some()
            })
            .count();
        let hidden_width = self
            .shape("location_encoder.LocEnc0.capsule.1.weight")
            .map_or(0, |shape| shape[0]);
        let output_size = self
            .shape("location_encoder.LocEnc0.head.0.weight")
            .ok_or_else(|| self.missing("location_encoder.LocEnc0.head.0.weight"))?[0];
        let sigmas = (0..capsules).map(|i| 16f64.powi(i as i32)).collect();
        Ok(crate::GpsEncoderConfig {
            location_encoder: crate::LocationEncoderConfig {
                sigmas,
                encoded_size,
                hidden_width,
                hidden_layers,
                output_size,
            },
            head: Some(self.head_sizes("location_projection_else")?),
            ..crate::GpsEncoderConfig::g3()
        })
    }
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

//! Loading a model folder as the hub publishes it (`config.json`, `model.safetensors` or
//! shards listed in `model.safetensors.index.json`, memory-mapped) and a PEFT LoRA adapter
//! (`adapter_config.json`, `adapter_model.safetensors`), merged into the decoder's weights at
//! load: `W + (alpha / r) · B A`, so that inference costs what the base model costs.
//!
//! Checkpoint names → module paths:
//!
//! | checkpoint | module |
//! |---|---|
//! | `visual.…` (hub), `model.visual.…` (transformers ≥ 4.52) | `qwen2_vl.visual.…` |
//! | `model.…` (hub), `model.language_model.…` (transformers ≥ 4.52) | `qwen2_vl.model.…` |
//! | `….merger.mlp.0.…`, `….merger.mlp.2.…` | `….merger.mlp.input.…`, `….merger.mlp.output.…` |
//! | `lm_head.weight` | not loaded: the reward model reads hidden states |
//! | adapter `base_model.model.value_head.weight` | `value_head.weight` |
//! | adapter `base_model.model.[language_model.]model.layers.{i}.{self_attn,mlp}.{name}.lora_{A,B}.weight` | merged into `qwen2_vl.model.layers.{i}.….{name}.weight` |

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::DType;
use regex::Regex;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use g3_align::Precision;

use crate::config::Qwen2VlConfig;
use crate::error::Qwen2VlError;
use crate::model::RewardModel;
use crate::text::DecoderLayer;

/// Checkpoint-name patterns and their module paths, applied in order.
const KEY_TABLE: [(&str, &str); 6] = [
    (r"^model\.visual\.", "qwen2_vl.visual."),
    (r"^model\.language_model\.", "qwen2_vl.model."),
    (r"^visual\.", "qwen2_vl.visual."),
    (r"^model\.", "qwen2_vl.model."),
    (r"\.merger\.mlp\.0\.", ".merger.mlp.input."),
    (r"\.merger\.mlp\.2\.", ".merger.mlp.output."),
];

/// The checkpoint tensors a reward model does not use.
fn is_ignored(key: &str) -> bool {
    key == "lm_head.weight"
}

/// The weight files of a model folder: the shards of `model.safetensors.index.json`, or
/// `model.safetensors`.
pub fn weight_files(folder: &Path) -> Result<Vec<PathBuf>, Qwen2VlError> {
    let index = folder.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| Qwen2VlError::Io {
            path: index.clone(),
            source,
        })?;
        let config_error = |reason: String| Qwen2VlError::Config {
            path: index.clone(),
            reason,
        };
        let parsed: Value =
            serde_json::from_str(&text).map_err(|error| config_error(error.to_string()))?;
        let map = parsed
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| config_error("missing object field `weight_map`".to_owned()))?;
        let mut shards = BTreeSet::new();
        for (key, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                config_error(format!("field `weight_map.{key}` is not a file name"))
            })?;
            shards.insert(shard.to_owned());
        }
        let files: Vec<PathBuf> = shards.iter().map(|shard| folder.join(shard)).collect();
        if let Some(missing) = files.iter().find(|file| !file.is_file()) {
            return Err(Qwen2VlError::Io {
                path: missing.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a shard listed in model.safetensors.index.json is missing",
                ),
            });
        }
        return Ok(files);
    }
    let single = folder.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Qwen2VlError::Io {
        path: folder.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no model.safetensors or model.safetensors.index.json in this folder",
        ),
    })
}

/// Loads GeoRanker's reward model: the base model from `model_folder` (`config.json` and
/// weights) and the LoRA adapter with the value head from `adapter_folder`, computing in
/// f32 on `device`.
pub fn load_reward_model(
    model_folder: &Path,
    adapter_folder: &Path,
    device: &Device,
) -> Result<RewardModel, Qwen2VlError> {
    load_reward_model_in(model_folder, adapter_folder, device, Precision::F32)
}

/// [`load_reward_model`] computing in `precision`: f16 or bf16 on GPUs (and burn's flex CPU
/// backend) halve the weights' memory and traffic. The weights are read and the LoRA merged
/// in f32, then cast, so loading holds the f32 model for a moment.
pub fn load_reward_model_in(
    model_folder: &Path,
    adapter_folder: &Path,
    device: &Device,
    precision: Precision,
) -> Result<RewardModel, Qwen2VlError> {
    precision
        .check(device)
        .map_err(|error| Qwen2VlError::InvalidConfig {
            reason: error.to_string(),
        })?;
    let config = Qwen2VlConfig::from_file(&model_folder.join("config.json"))?;
    let mut model = RewardModel::new(&config, device);
    load_base_weights(&mut model, model_folder)?;
    let adapter = LoraAdapter::read(adapter_folder)?;
    adapter.merge_into(&mut model)?;
    Ok(precision.cast_module(model))
}

/// Fills the backbone of `model` from the weight files of `folder`; every backbone tensor
/// must be found, and no file may hold a tensor the model has no place for.
pub fn load_base_weights(model: &mut RewardModel, folder: &Path) -> Result<(), Qwen2VlError> {
    let mut applied = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut unexpected = Vec::new();
    let mut mis_shaped = Vec::new();
    for file in weight_files(folder)? {
        let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
        let mut store = SafetensorsStore::from_file(&file)
            .validate(false)
            .allow_partial(true)
            .map_indices_contiguous(false)
            .with_from_adapter(adapter);
        for (pattern, replacement) in KEY_TABLE {
            store = store.with_key_remapping(pattern, replacement);
        }
        let result = model
            .load_from(&mut store)
            .map_err(|error| Qwen2VlError::Checkpoint {
                path: file.clone(),
                source: Box::new(error),
            })?;
        applied.extend(result.applied);
        missing.extend(result.missing.into_iter().map(|(key, _)| key));
        unexpected.extend(
            result
                .unused
                .into_iter()
                .filter(|key| !is_ignored(key))
                .map(|key| format!("{key} (in {})", file.display())),
        );
        mis_shaped.extend(result.errors.iter().map(|error| match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "{path} (file {:?}, model {:?})",
                found.as_slice(),
                expected.as_slice()
            ),
            other => other.to_string(),
        }));
    }
    let missing: Vec<String> = missing
        .into_iter()
        .filter(|key| !applied.contains(key) && !key.starts_with("value_head."))
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty() {
        return Ok(());
    }
    Err(Qwen2VlError::KeyMismatch {
        path: folder.to_path_buf(),
        missing,
        unexpected,
        mis_shaped,
    })
}

/// A tensor read from a safetensors file, as f32.
#[derive(Debug, Clone)]
struct HostTensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn read_host_tensor(
    path: &Path,
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<HostTensor, Qwen2VlError> {
    let bytes = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|chunk| half::f16::from_le_bytes([chunk[0], chunk[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|chunk| half::bf16::from_le_bytes([chunk[0], chunk[1]]).to_f32())
            .collect(),
        other => {
            return Err(Qwen2VlError::Config {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}` is {other:?}; adapters hold F32, F16 or BF16"),
            });
        }
    };
    Ok(HostTensor {
        shape: view.shape().to_vec(),
        values,
    })
}

/// One LoRA pair for one linear layer of the decoder.
#[derive(Debug, Clone)]
struct LoraPair {
    layer: usize,
    module: String,
    down: Option<HostTensor>,
    up: Option<HostTensor>,
}

/// A PEFT LoRA adapter for the decoder and GeoRanker's value head, read from a folder.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    folder: PathBuf,
    /// `lora_alpha / r` (or `/ sqrt(r)` with rsLoRA): the factor of `B A`.
    pub scale: f32,
    pairs: Vec<LoraPair>,
    value_head: Option<HostTensor>,
}

/// The decoder layers a LoRA may target, by their PEFT module name.
const LORA_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl LoraAdapter {
    /// Reads `adapter_config.json` and `adapter_model.safetensors` from `folder`. Refuses
    /// what it cannot merge (DoRA, layers outside the decoder's linear layers, a matrix
    /// without its partner) rather than load part of an adapter.
    pub fn read(folder: &Path) -> Result<Self, Qwen2VlError> {
        let config_path = folder.join("adapter_config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| Qwen2VlError::Io {
            path: config_path.clone(),
            source,
        })?;
        let config_error = |reason: String| Qwen2VlError::Config {
            path: config_path.clone(),
            reason,
        };
        let config: Value =
            serde_json::from_str(&text).map_err(|error| config_error(error.to_string()))?;
        if let Some(kind) = config.get("peft_type").and_then(Value::as_str)
            && kind != "LORA"
        {
            return Err(config_error(format!(
                "field `peft_type` is {kind:?}; only LORA adapters can be merged"
            )));
        }
        if config.get("use_dora").and_then(Value::as_bool) == Some(true) {
            return Err(config_error(
                "field `use_dora` is true; DoRA adapters are not supported".to_owned(),
            ));
        }
        if config.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
            return Err(config_error(
                "field `fan_in_fan_out` is true; only nn.Linear targets are supported".to_owned(),
            ));
        }
        let rank = config
            .get("r")
            .and_then(Value::as_u64)
            .filter(|&rank| rank > 0)
            .ok_or_else(|| config_error("field `r` is not a positive integer".to_owned()))?;
        let alpha = config
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| config_error("field `lora_alpha` is not a number".to_owned()))?;
        let rank_stabilised = config.get("use_rslora").and_then(Value::as_bool) == Some(true);
        let scale = if rank_stabilised {
            alpha / (rank as f64).sqrt()
        } else {
            alpha / rank as f64
        } as f32;

        let weights_path = folder.join("adapter_model.safetensors");
        let file = std::fs::File::open(&weights_path).map_err(|source| Qwen2VlError::Io {
            path: weights_path.clone(),
            source,
        })?;
        // SAFETY: the file is opened read-only and only read while mapped; a file truncated
        // underneath us by another process is the documented risk of any memory map.
        let mapped = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Qwen2VlError::Io {
            path: weights_path.clone(),
            source,
        })?;
        let tensors =
            SafeTensors::deserialize(&mapped).map_err(|error| Qwen2VlError::Checkpoint {
                path: weights_path.clone(),
                source: Box::new(error),
            })?;
        let lora_key = Regex::new(
            r"^base_model\.model\.model\.(?:language_model\.)?layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$",
        )
        .expect("the pattern is valid");
        let value_head_key =
            Regex::new(r"^base_model\.model\.value_head(?:\.modules_to_save\.default)?\.weight$")
                .expect("the pattern is valid");
        let mut pairs: Vec<LoraPair> = Vec::new();
        let mut value_head = None;
        let mut unexpected = Vec::new();
        let mut names: Vec<String> = tensors.names().into_iter().map(str::to_owned).collect();
        names.sort();
        for name in names {
            let view = tensors
                .tensor(&name)
                .map_err(|error| Qwen2VlError::Checkpoint {
                    path: weights_path.clone(),
                    source: Box::new(error),
                })?;
            if value_head_key.is_match(&name) {
                value_head = Some(read_host_tensor(&weights_path, &name, &view)?);
                continue;
            }
            let Some(captures) = lora_key.captures(&name) else {
                unexpected.push(name);
                continue;
            };
            let module = captures[2].to_owned();
            if !LORA_MODULES.contains(&module.as_str()) {
                unexpected.push(name);
                continue;
            }
            let layer: usize = captures[1].parse().map_err(|_| Qwen2VlError::Config {
                path: weights_path.clone(),
                reason: format!("tensor `{name}` has a layer index out of range"),
            })?;
            let tensor = read_host_tensor(&weights_path, &name, &view)?;
            let position = match pairs
                .iter()
                .position(|pair| pair.layer == layer && pair.module == module)
            {
                Some(position) => position,
                None => {
                    pairs.push(LoraPair {
                        layer,
                        module,
                        down: None,
                        up: None,
                    });
                    pairs.len() - 1
                }
            };
            if &captures[3] == "A" {
                pairs[position].down = Some(tensor);
            } else {
                pairs[position].up = Some(tensor);
            }
        }
        if !unexpected.is_empty() {
            return Err(Qwen2VlError::KeyMismatch {
                path: weights_path,
                missing: Vec::new(),
                unexpected,
                mis_shaped: Vec::new(),
            });
        }
        let incomplete: Vec<String> = pairs
            .iter()
            .filter(|pair| pair.down.is_none() || pair.up.is_none())
            .map(|pair| {
                format!(
                    "layers.{}.{}.lora_{}",
                    pair.layer,
                    pair.module,
                    if pair.down.is_none() { "A" } else { "B" }
                )
            })
            .collect();
        if !incomplete.is_empty() {
            return Err(Qwen2VlError::KeyMismatch {
                path: weights_path,
                missing: incomplete,
                unexpected: Vec::new(),
                mis_shaped: Vec::new(),
            });
        }
        Ok(LoraAdapter {
            folder: folder.to_path_buf(),
            scale,
            pairs,
            value_head,
        })
    }

    /// Layers the adapter changes.
    pub fn merged_layers(&self) -> usize {
        self.pairs.len()
    }

    /// Adds `scale · B A` to each targeted weight and sets the value head. Fails, changing
    /// nothing, when a matrix's shape does not fit its layer or the value head is missing.
    pub fn merge_into(&self, model: &mut RewardModel) -> Result<(), Qwen2VlError> {
        let path = self.folder.join("adapter_model.safetensors");
        let mismatch = |detail: String| Qwen2VlError::KeyMismatch {
            path: path.clone(),
            missing: Vec::new(),
            unexpected: Vec::new(),
            mis_shaped: vec![detail],
        };
        let hidden = model.qwen2_vl.model.config().hidden_size;
        let value_head = self
            .value_head
            .as_ref()
            .ok_or_else(|| Qwen2VlError::KeyMismatch {
                path: path.clone(),
                missing: vec!["base_model.model.value_head.weight".to_owned()],
                unexpected: Vec::new(),
                mis_shaped: Vec::new(),
            })?;
        if value_head.shape != [1, hidden] {
            return Err(mismatch(format!(
                "base_model.model.value_head.weight (file {:?}, model [1, {hidden}])",
                value_head.shape
            )));
        }
        let layers = model.qwen2_vl.model.layers.len();
        // Check every shape before changing any weight.
        for pair in &self.pairs {
            let name = format!("layers.{}.{}", pair.layer, pair.module);
            if pair.layer >= layers {
                return Err(mismatch(format!("{name}: the model has {layers} layers")));
            }
            let linear = target(&model.qwen2_vl.model.layers[pair.layer], &pair.module);
            let [input, output] = linear.weight.dims();
            let (down, up) = (pair.down.as_ref(), pair.up.as_ref());
            let (Some(down), Some(up)) = (down, up) else {
                continue;
            };
            let fits = down.shape.len() == 2
                && up.shape.len() == 2
                && down.shape[1] == input
                && up.shape[0] == output
                && down.shape[0] == up.shape[1];
            if !fits {
                return Err(mismatch(format!(
                    "{name}: lora_A {:?} and lora_B {:?} do not fit a {input} → {output} layer",
                    down.shape, up.shape
                )));
            }
        }
        let device = model.value_head.weight.device();
        for pair in &self.pairs {
            let (Some(down), Some(up)) = (&pair.down, &pair.up) else {
                continue;
            };
            let host = |tensor: &HostTensor| {
                Tensor::<2>::from_data(
                    TensorData::new(tensor.values.clone(), [tensor.shape[0], tensor.shape[1]]),
                    &device,
                )
            };
            // burn keeps weights as [input, output]: the update is (B A)ᵀ = Aᵀ Bᵀ.
            let update = host(down).transpose().matmul(host(up).transpose()) * self.scale;
            let layer = &mut model.qwen2_vl.model.layers[pair.layer];
            let linear = target_mut(layer, &pair.module);
            let weight = linear.weight.clone();
            linear.weight = weight.map(|weight| weight + update);
        }
        let head = Tensor::<2>::from_data(
            TensorData::new(value_head.values.clone(), [1, hidden]),
            &device,
        )
        .transpose();
        model.value_head.weight = Param::from_tensor(head);
        Ok(())
    }
}

fn target<'a>(layer: &'a DecoderLayer, module: &str) -> &'a Linear {
    match module {
        "q_proj" => &layer.self_attn.q_proj,
        "k_proj" => &layer.self_attn.k_proj,
        "v_proj" => &layer.self_attn.v_proj,
        "o_proj" => &layer.self_attn.o_proj,
        "gate_proj" => &layer.mlp.gate_proj,
        "up_proj" => &layer.mlp.up_proj,
        _ => &layer.mlp.down_proj,
    }
}

fn target_mut<'a>(layer: &'a mut DecoderLayer, module: &str) -> &'a mut Linear {
    match module {
        "q_proj" => &mut layer.self_attn.q_proj,
        "k_proj" => &mut layer.self_attn.k_proj,
        "v_proj" => &mut layer.self_attn.v_proj,
        "o_proj" => &mut layer.self_attn.o_proj,
        "gate_proj" => &mut layer.mlp.gate_proj,
        "up_proj" => &mut layer.mlp.up_proj,
        _ => &mut layer.mlp.down_proj,
    }
}

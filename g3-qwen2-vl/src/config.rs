//! Qwen2-VL's `config.json`, in both layouts transformers has written: the hub's flat one
//! (text fields at the top, `rope_scaling.mrope_section`) and transformers 5's nested one
//! (`text_config`, `rope_parameters`). Defaults are Qwen2-VL-7B-Instruct's.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Qwen2VlError;

/// The vision tower's shape (`vision_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Transformer blocks (`depth`).
    pub depth: usize,
    /// Width of the blocks (`embed_dim`).
    pub embed_dim: usize,
    /// Width of the merged tokens handed to the decoder (`hidden_size`): the decoder's width.
    pub hidden_size: usize,
    /// MLP width as a multiple of `embed_dim` (`mlp_ratio`).
    pub mlp_ratio: f64,
    /// Attention heads (`num_heads`).
    pub num_heads: usize,
    /// Colour channels (`in_chans`, `in_channels`).
    pub in_channels: usize,
    /// Side of a square patch in pixels (`patch_size`).
    pub patch_size: usize,
    /// Side of the square of patches merged into one decoder token (`spatial_merge_size`).
    pub spatial_merge_size: usize,
    /// Frames per patch (`temporal_patch_size`); a photo is repeated to fill them.
    pub temporal_patch_size: usize,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            depth: 32,
            embed_dim: 1280,
            hidden_size: 3584,
            mlp_ratio: 4.0,
            num_heads: 16,
            in_channels: 3,
            patch_size: 14,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
        }
    }
}

impl VisionConfig {
    /// Width of one flattened patch: channels × frames × side × side.
    pub fn patch_values(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// Width of a block's MLP.
    pub fn mlp_width(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
}

/// The Qwen2 decoder's shape and the multimodal token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Token count of the vocabulary (`vocab_size`).
    pub vocab_size: usize,
    /// Width (`hidden_size`).
    pub hidden_size: usize,
    /// MLP width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Decoder layers (`num_hidden_layers`).
    pub num_hidden_layers: usize,
    /// Query heads (`num_attention_heads`).
    pub num_attention_heads: usize,
    /// Key and value heads (`num_key_value_heads`), shared by groups of query heads.
    pub num_key_value_heads: usize,
    /// RMSNorm epsilon (`rms_norm_eps`).
    pub rms_norm_eps: f64,
    /// Rotary base (`rope_theta`).
    pub rope_theta: f64,
    /// How many rotary frequencies follow the temporal, height and width positions
    /// (`mrope_section`); they sum to half a head's width.
    pub mrope_section: [usize; 3],
    /// The token that stands for one merged image patch (`<|image_pad|>`).
    pub image_token_id: u32,
    /// The token that stands for one merged video patch (`<|video_pad|>`).
    pub video_token_id: u32,
    /// The token that opens an image or video (`<|vision_start|>`).
    pub vision_start_token_id: u32,
    /// The token that closes it (`<|vision_end|>`).
    pub vision_end_token_id: u32,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            vocab_size: 152_064,
            hidden_size: 3584,
            intermediate_size: 18_944,
            num_hidden_layers: 28,
            num_attention_heads: 28,
            num_key_value_heads: 4,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            mrope_section: [16, 24, 24],
            image_token_id: 151_655,
            video_token_id: 151_656,
            vision_start_token_id: 151_652,
            vision_end_token_id: 151_653,
        }
    }
}

impl TextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// A whole Qwen2-VL model's configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Qwen2VlConfig {
    /// The decoder.
    pub text: TextConfig,
    /// The vision tower.
    pub vision: VisionConfig,
}

impl Qwen2VlConfig {
    /// Reads `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self, Qwen2VlError> {
        let text = std::fs::read_to_string(path).map_err(|source| Qwen2VlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|reason| Qwen2VlError::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let root: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let root = root
            .as_object()
            .ok_or_else(|| "the file is not a JSON object".to_owned())?;
        // Text fields sit at the top (hub layout) or under `text_config` (transformers 5);
        // the nested ones win where both exist.
        let mut text_fields = root.clone();
        if let Some(Value::Object(nested)) = root.get("text_config") {
            for (key, value) in nested {
                text_fields.insert(key.clone(), value.clone());
            }
        }
        let text = parse_text(&text_fields)?;
        let vision = match root.get("vision_config") {
            Some(Value::Object(fields)) => parse_vision(fields)?,
            Some(_) => return Err("field `vision_config` is not an object".to_owned()),
            None => return Err("missing field `vision_config`".to_owned()),
        };
        let config = Qwen2VlConfig { text, vision };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the shapes are consistent, so that building the model cannot fail.
    pub fn validate(&self) -> Result<(), String> {
        let text = &self.text;
        let vision = &self.vision;
        let positive = [
            ("hidden_size", text.hidden_size),
            ("num_attention_heads", text.num_attention_heads),
            ("num_key_value_heads", text.num_key_value_heads),
            ("vision_config.embed_dim", vision.embed_dim),
            ("vision_config.num_heads", vision.num_heads),
            ("vision_config.patch_size", vision.patch_size),
            (
                "vision_config.spatial_merge_size",
                vision.spatial_merge_size,
            ),
            (
                "vision_config.temporal_patch_size",
                vision.temporal_patch_size,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("field `{name}` must be positive"));
        }
        if !text.hidden_size.is_multiple_of(text.num_attention_heads) {
            return Err(format!(
                "`hidden_size` {} is not a multiple of `num_attention_heads` {}",
                text.hidden_size, text.num_attention_heads
            ));
        }
        if !text
            .num_attention_heads
            .is_multiple_of(text.num_key_value_heads)
        {
            return Err(format!(
                "`num_attention_heads` {} is not a multiple of `num_key_value_heads` {}",
                text.num_attention_heads, text.num_key_value_heads
            ));
        }
        let head_dim = text.head_dim();
        if !head_dim.is_multiple_of(2) || text.mrope_section.iter().sum::<usize>() != head_dim / 2 {
            return Err(format!(
                "`mrope_section` {:?} must sum to half the head width ({head_dim} / 2)",
                text.mrope_section
            ));
        }
        if !vision.embed_dim.is_multiple_of(vision.num_heads)
            || !vision.head_dim().is_multiple_of(4)
        {
            return Err(format!(
                "`vision_config.embed_dim` {} must split into `num_heads` {} heads whose width is a multiple of 4",
                vision.embed_dim, vision.num_heads
            ));
        }
        if vision.hidden_size != text.hidden_size {
            return Err(format!(
                "`vision_config.hidden_size` {} differs from the decoder's `hidden_size` {}",
                vision.hidden_size, text.hidden_size
            ));
        }
        Ok(())
    }
}

fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn usize_field(fields: &Map<String, Value>, name: &str, default: usize) -> Result<usize, String> {
    match field(fields, name) {
        None => Ok(default),
        Some(value) => value
            .as_u64()
            .map(|number| number as usize)
            .ok_or_else(|| format!("field `{name}` is not a non-negative integer: {value}")),
    }
}

fn f64_field(fields: &Map<String, Value>, name: &str, default: f64) -> Result<f64, String> {
    match field(fields, name) {
        None => Ok(default),
        Some(value) => value
            .as_f64()
            .ok_or_else(|| format!("field `{name}` is not a number: {value}")),
    }
}

fn u32_field(fields: &Map<String, Value>, name: &str, default: u32) -> Result<u32, String> {
    let value = usize_field(fields, name, default as usize)?;
    u32::try_from(value).map_err(|_| format!("field `{name}` is too large: {value}"))
}

fn parse_text(fields: &Map<String, Value>) -> Result<TextConfig, String> {
    let defaults = TextConfig::default();
    let hidden_size = usize_field(fields, "hidden_size", defaults.hidden_size)?;
    let num_attention_heads =
        usize_field(fields, "num_attention_heads", defaults.num_attention_heads)?;
    // `rope_scaling` (hub) or `rope_parameters` (transformers 5) holds the sections, and
    // transformers 5 moved `rope_theta` there too.
    let rope = ["rope_parameters", "rope_scaling"]
        .iter()
        .find_map(|name| match field(fields, name) {
            Some(Value::Object(rope)) => Some(rope.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mrope_section = match field(&rope, "mrope_section") {
        None => defaults.mrope_section,
        Some(value) => {
            let sections: Vec<usize> = serde_json::from_value(value.clone())
                .map_err(|_| format!("field `mrope_section` is not a list of integers: {value}"))?;
            <[usize; 3]>::try_from(sections.as_slice()).map_err(|_| {
                format!("field `mrope_section` must list 3 section sizes, found {value}")
            })?
        }
    };
    let rope_theta = match field(fields, "rope_theta") {
        Some(_) => f64_field(fields, "rope_theta", defaults.rope_theta)?,
        None => f64_field(&rope, "rope_theta", defaults.rope_theta)?,
    };
    Ok(TextConfig {
        vocab_size: usize_field(fields, "vocab_size", defaults.vocab_size)?,
        hidden_size,
        intermediate_size: usize_field(fields, "intermediate_size", defaults.intermediate_size)?,
        num_hidden_layers: usize_field(fields, "num_hidden_layers", defaults.num_hidden_layers)?,
        num_attention_heads,
        num_key_value_heads: usize_field(fields, "num_key_value_heads", num_attention_heads)?,
        rms_norm_eps: f64_field(fields, "rms_norm_eps", defaults.rms_norm_eps)?,
        rope_theta,
        mrope_section,
        image_token_id: u32_field(fields, "image_token_id", defaults.image_token_id)?,
        video_token_id: u32_field(fields, "video_token_id", defaults.video_token_id)?,
        vision_start_token_id: u32_field(
            fields,
            "vision_start_token_id",
            defaults.vision_start_token_id,
        )?,
        vision_end_token_id: u32_field(
            fields,
            "vision_end_token_id",
            defaults.vision_end_token_id,
        )?,
    })
}

fn parse_vision(fields: &Map<String, Value>) -> Result<VisionConfig, String> {
    let defaults = VisionConfig::default();
    let prefixed = |error: String| error.replacen("field `", "field `vision_config.", 1);
    let activation = field(fields, "hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("quick_gelu");
    if activation != "quick_gelu" {
        return Err(format!(
            "field `vision_config.hidden_act` is {activation:?}; Qwen2-VL's vision tower uses \"quick_gelu\""
        ));
    }
    let in_channels = match field(fields, "in_channels") {
        Some(_) => usize_field(fields, "in_channels", defaults.in_channels),
        None => usize_field(fields, "in_chans", defaults.in_channels),
    };
    Ok(VisionConfig {
        depth: usize_field(fields, "depth", defaults.depth).map_err(prefixed)?,
        embed_dim: usize_field(fields, "embed_dim", defaults.embed_dim).map_err(prefixed)?,
        hidden_size: usize_field(fields, "hidden_size", defaults.hidden_size).map_err(prefixed)?,
        mlp_ratio: f64_field(fields, "mlp_ratio", defaults.mlp_ratio).map_err(prefixed)?,
        num_heads: usize_field(fields, "num_heads", defaults.num_heads).map_err(prefixed)?,
        in_channels: in_channels.map_err(prefixed)?,
        patch_size: usize_field(fields, "patch_size", defaults.patch_size).map_err(prefixed)?,
        spatial_merge_size: usize_field(fields, "spatial_merge_size", defaults.spatial_merge_size)
            .map_err(prefixed)?,
        temporal_patch_size: usize_field(
            fields,
            "temporal_patch_size",
            defaults.temporal_patch_size,
        )
        .map_err(prefixed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen2-VL-7B-Instruct's `config.json` as published on the hub (the fields we read).
    const HUB_7B: &str = r#"{
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944,
        "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16", "vocab_size": 152064,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656,
        "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
            "in_chans": 3, "hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
            "spatial_patch_size": 14, "temporal_patch_size": 2},
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}
    }"#;

    #[test]
    fn the_hub_layout_gives_the_7b_defaults() {
        let config = Qwen2VlConfig::from_json(HUB_7B).unwrap();
        assert_eq!(config, Qwen2VlConfig::default());
        assert_eq!(config.text.head_dim(), 128);
        assert_eq!(config.vision.patch_values(), 1176);
        assert_eq!(config.vision.mlp_width(), 5120);
    }

    #[test]
    fn the_nested_layout_reads_text_config_and_rope_parameters() {
        let text = r#"{
            "image_token_id": 9, "video_token_id": 10, "vision_start_token_id": 7,
            "vision_end_token_id": 8,
            "text_config": {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
                "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 300,
                "rms_norm_eps": 1e-6,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                    "mrope_section": [2, 3, 3]}},
            "vision_config": {"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2,
                "in_channels": 3, "mlp_ratio": 2, "hidden_act": "quick_gelu"}
        }"#;
        let config = Qwen2VlConfig::from_json(text).unwrap();
        assert_eq!(config.text.mrope_section, [2, 3, 3]);
        assert_eq!(config.text.rope_theta, 10_000.0);
        assert_eq!(config.text.image_token_id, 9);
        assert_eq!(config.text.num_key_value_heads, 2);
        assert_eq!(config.vision.mlp_width(), 64);
    }

    #[test]
    fn errors_name_the_field() {
        let wrong_type =
            HUB_7B.replace("\"num_hidden_layers\": 28", "\"num_hidden_layers\": \"x\"");
        let error = Qwen2VlConfig::from_json(&wrong_type).unwrap_err();
        assert!(error.contains("`num_hidden_layers`"), "{error}");
        let wrong_sections = HUB_7B.replace("[16, 24, 24]", "[16, 24, 25]");
        let error = Qwen2VlConfig::from_json(&wrong_sections).unwrap_err();
        assert!(error.contains("mrope_section"), "{error}");
        let wrong_vision = HUB_7B.replace("\"embed_dim\": 1280", "\"embed_dim\": -1");
        let error = Qwen2VlConfig::from_json(&wrong_vision).unwrap_err();
        assert!(error.contains("`vision_config.embed_dim`"), "{error}");
    }
}

//! CLIP architecture settings, read from an HF `config.json` or taken from a preset.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::AlignError;

/// The activation between the two MLP layers of every transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenActivation {
    /// `x * sigmoid(1.702 x)`: OpenAI's CLIP checkpoints.
    QuickGelu,
    /// The exact (erf) GELU.
    Gelu,
}

impl HiddenActivation {
    fn parse(name: &str, field: &str) -> Result<Self, String> {
        match name {
            "quick_gelu" => Ok(HiddenActivation::QuickGelu),
            "gelu" => Ok(HiddenActivation::Gelu),
            other => Err(format!(
                "field `{field}`: activation {other:?} is not implemented (quick_gelu, gelu)"
            )),
        }
    }
}

/// The vision tower (HF `CLIPVisionConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipVisionConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP inside each block.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Input side in pixels (square).
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation.
    pub hidden_act: HiddenActivation,
}

impl ClipVisionConfig {
    /// Patches per image side.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: one per patch plus the class token.
    pub fn sequence_length(&self) -> usize {
        self.patches_per_side() * self.patches_per_side() + 1
    }
}

/// The text tower (HF `CLIPTextConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP inside each block.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Longest token sequence (77).
    pub max_position_embeddings: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation.
    pub hidden_act: HiddenActivation,
    /// The end-of-text id. HF's legacy value 2 (OpenAI's configs) means "the position of the
    /// largest id", which is where `<|endoftext|>` (the largest id) first appears.
    pub eos_token_id: u32,
}

impl ClipTextConfig {
    /// The position whose final hidden state is the text's pooled feature, as HF's
    /// `CLIPTextTransformer` picks it; see [`end_of_text_position`].
    pub fn pooled_position(&self, ids: &[u32]) -> usize {
        end_of_text_position(ids, self.eos_token_id)
    }
}

/// Where a row of token ids ends: with HF's legacy `eos_token_id` 2 (OpenAI's configs), the
/// first position of the largest id (`<|endoftext|>` is the largest); otherwise the first
/// position of `eos_token_id`, or 0 when it is absent (as HF's argmax over no match gives).
pub fn end_of_text_position(ids: &[u32], eos_token_id: u32) -> usize {
    if eos_token_id == 2 {
        // max_by_key keeps the last of equal maxima, hence the reversal.
        ids.iter()
            .enumerate()
            .rev()
            .max_by_key(|&(_, &id)| id)
            .map_or(0, |(index, _)| index)
    } else {
        ids.iter().position(|&id| id == eos_token_id).unwrap_or(0)
    }
}

/// A CLIP model: both towers and the width of the shared space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// The vision tower.
    pub vision: ClipVisionConfig,
    /// The text tower.
    pub text: ClipTextConfig,
    /// Width of the shared image-text space (`visual_projection` and `text_projection`).
    pub projection_dim: usize,
}

impl ClipConfig {
    /// `openai/clip-vit-large-patch14`, the CLIP of G3 and GeoCLIP.
    pub fn vit_large_patch14() -> Self {
        ClipConfig {
            vision: ClipVisionConfig {
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                image_size: 224,
                patch_size: 14,
                num_channels: 3,
                layer_norm_eps: 1e-5,
                hidden_act: HiddenActivation::QuickGelu,
            },
            text: ClipTextConfig {
                vocab_size: 49_408,
                hidden_size: 768,
                intermediate_size: 3072,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                max_position_embeddings: 77,
                layer_norm_eps: 1e-5,
                hidden_act: HiddenActivation::QuickGelu,
                eos_token_id: 2,
            },
            projection_dim: 768,
        }
    }

    /// `openai/clip-vit-base-patch32`, a small CLIP for experiments.
    pub fn vit_base_patch32() -> Self {
        ClipConfig {
            vision: ClipVisionConfig {
                hidden_size: 768,
                intermediate_size: 3072,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                image_size: 224,
                patch_size: 32,
                num_channels: 3,
                layer_norm_eps: 1e-5,
                hidden_act: HiddenActivation::QuickGelu,
            },
            text: ClipTextConfig {
                vocab_size: 49_408,
                hidden_size: 512,
                intermediate_size: 2048,
                num_hidden_layers: 12,
                num_attention_heads: 8,
                max_position_embeddings: 77,
                layer_norm_eps: 1e-5,
                hidden_act: HiddenActivation::QuickGelu,
                eos_token_id: 2,
            },
            projection_dim: 512,
        }
    }

    /// Reads an HF `config.json` of a `CLIPModel`.
    pub fn from_json_file(path: &Path) -> Result<Self, AlignError> {
        super::read_config_file(path, Self::from_json_str)
    }

    /// Parses the text of an HF `config.json`. Fields the file leaves out take HF's defaults
    /// (those of `CLIPConfig()`), as transformers does.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let section = |name: &str| -> Result<serde_json::Value, String> {
            match json.get(name) {
                None => Err(format!(
                    "no `{name}` section: not the config of a CLIPModel"
                )),
                Some(value) if value.is_object() => Ok(value.clone()),
                Some(_) => Err(format!("`{name}` is not an object")),
            }
        };
        let vision = section("vision_config")?;
        let text = section("text_config")?;
        let int =
            |object: &serde_json::Value, prefix: &str, field: &str, default: usize| match object
                .get(field)
            {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(value) => value
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| format!("field `{prefix}.{field}` is not a whole number")),
            };
        let float =
            |object: &serde_json::Value, prefix: &str, field: &str, default: f64| match object
                .get(field)
            {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(value) => value
                    .as_f64()
                    .ok_or_else(|| format!("field `{prefix}.{field}` is not a number")),
            };
        let activation = |object: &serde_json::Value, prefix: &str| {
            let field = format!("{prefix}.hidden_act");
            match object.get("hidden_act") {
                None => Ok(HiddenActivation::QuickGelu),
                Some(value) => HiddenActivation::parse(value.as_str().unwrap_or(""), &field),
            }
        };
        let v = "vision_config";
        let t = "text_config";
        let config = ClipConfig {
            vision: ClipVisionConfig {
                hidden_size: int(&vision, v, "hidden_size", 768)?,
                intermediate_size: int(&vision, v, "intermediate_size", 3072)?,
                num_hidden_layers: int(&vision, v, "num_hidden_layers", 12)?,
                num_attention_heads: int(&vision, v, "num_attention_heads", 12)?,
                image_size: int(&vision, v, "image_size", 224)?,
                patch_size: int(&vision, v, "patch_size", 32)?,
                num_channels: int(&vision, v, "num_channels", 3)?,
                layer_norm_eps: float(&vision, v, "layer_norm_eps", 1e-5)?,
                hidden_act: activation(&vision, v)?,
            },
            text: ClipTextConfig {
                vocab_size: int(&text, t, "vocab_size", 49_408)?,
                hidden_size: int(&text, t, "hidden_size", 512)?,
                intermediate_size: int(&text, t, "intermediate_size", 2048)?,
                num_hidden_layers: int(&text, t, "num_hidden_layers", 12)?,
                num_attention_heads: int(&text, t, "num_attention_heads", 8)?,
                max_position_embeddings: int(&text, t, "max_position_embeddings", 77)?,
                layer_norm_eps: float(&text, t, "layer_norm_eps", 1e-5)?,
                hidden_act: activation(&text, t)?,
                eos_token_id: int(&text, t, "eos_token_id", 2)? as u32,
            },
            projection_dim: int(&json, "", "projection_dim", 512)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the towers can be built: widths divisible by the head counts, an image
    /// side divisible by the patch side, nothing zero.
    pub fn validate(&self) -> Result<(), String> {
        let v = &self.vision;
        let t = &self.text;
        let positive = [
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.intermediate_size", v.intermediate_size),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.image_size", v.image_size),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.num_channels", v.num_channels),
            ("text_config.vocab_size", t.vocab_size),
            ("text_config.hidden_size", t.hidden_size),
            ("text_config.intermediate_size", t.intermediate_size),
            ("text_config.num_attention_heads", t.num_attention_heads),
            (
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
            ),
            ("projection_dim", self.projection_dim),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("field `{field}` must be positive"));
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(format!(
                "field `vision_config.hidden_size` ({}) is not divisible by num_attention_heads ({})",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(format!(
                "field `text_config.hidden_size` ({}) is not divisible by num_attention_heads ({})",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "field `vision_config.image_size` ({}) is not a multiple of patch_size ({})",
                v.image_size, v.patch_size
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_the_paper() {
        let large = ClipConfig::vit_large_patch14();
        large.validate().unwrap();
        assert_eq!(large.vision.sequence_length(), 257);
        assert_eq!(large.projection_dim, 768);
        ClipConfig::vit_base_patch32().validate().unwrap();
    }

    #[test]
    fn hf_config_fields_and_defaults() {
        let config = ClipConfig::from_json_str(
            r#"{"projection_dim": 24,
                "text_config": {"hidden_size": 32, "num_attention_heads": 4, "hidden_act": "gelu", "eos_token_id": 999},
                "vision_config": {"hidden_size": 64, "num_attention_heads": 4, "patch_size": 32}}"#,
        )
        .unwrap();
        assert_eq!(config.projection_dim, 24);
        assert_eq!(config.text.hidden_act, HiddenActivation::Gelu);
        assert_eq!(config.vision.hidden_act, HiddenActivation::QuickGelu);
        assert_eq!(config.text.vocab_size, 49_408);
        assert_eq!(config.vision.sequence_length(), 50);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let error = ClipConfig::from_json_str(r#"{"text_config": {}}"#).unwrap_err();
        assert!(error.contains("vision_config"), "{error}");
        let error = ClipConfig::from_json_str(
            r#"{"text_config": {"hidden_act": "relu"}, "vision_config": {}}"#,
        )
        .unwrap_err();
        assert!(error.contains("text_config.hidden_act"), "{error}");
        let error = ClipConfig::from_json_str(
            r#"{"text_config": {}, "vision_config": {"hidden_size": 100, "num_attention_heads": 3}}"#,
        )
        .unwrap_err();
        assert!(error.contains("vision_config.hidden_size"), "{error}");
        let error = ClipConfig::from_json_str(
            r#"{"text_config": {"vocab_size": "many"}, "vision_config": {}}"#,
        )
        .unwrap_err();
        assert!(error.contains("text_config.vocab_size"), "{error}");
    }

    #[test]
    fn pooled_position_follows_hf() {
        let mut text = ClipConfig::vit_large_patch14().text;
        // Legacy configs: the first largest id.
        assert_eq!(text.pooled_position(&[49_406, 320, 49_407, 49_407]), 2);
        text.eos_token_id = 999;
        assert_eq!(text.pooled_position(&[998, 5, 999, 999]), 2);
        assert_eq!(text.pooled_position(&[998, 5, 6]), 0);
    }
}

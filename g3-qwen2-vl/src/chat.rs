//! Prompts as the model saw them in training: the model's own chat template (Jinja) rendered
//! the way transformers renders it (`trim_blocks`, `lstrip_blocks`), each image placeholder
//! expanded to one `<|image_pad|>` per merged patch as `Qwen2VLProcessor` does, the model's
//! `tokenizer.json`, and batches padded on the left.

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde_json::json;
use tokenizers::Tokenizer;

use crate::error::Qwen2VlError;
use crate::image_processor::ProcessedImage;
use crate::model::MultimodalBatch;
use crate::vision::ImageGrid;

/// The text Qwen2-VL's template writes for each image, before expansion.
pub const IMAGE_PAD: &str = "<|image_pad|>";

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// An image (the template writes its placeholder).
    Image,
    /// Text, written as is.
    Text(String),
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The content, in order.
    pub content: Vec<ContentPart>,
}

impl ChatMessage {
    /// A user message.
    pub fn user(content: Vec<ContentPart>) -> Self {
        ChatMessage {
            role: "user".to_owned(),
            content,
        }
    }

    /// Images in the message.
    pub fn images(&self) -> usize {
        self.content
            .iter()
            .filter(|part| matches!(part, ContentPart::Image))
            .count()
    }

    fn to_json(&self) -> serde_json::Value {
        let content: Vec<serde_json::Value> = self
            .content
            .iter()
            .map(|part| match part {
                ContentPart::Image => json!({"type": "image", "image": ""}),
                ContentPart::Text(text) => json!({"type": "text", "text": text}),
            })
            .collect();
        json!({"role": self.role, "content": content})
    }
}

/// A model's chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    origin: PathBuf,
}

impl ChatTemplate {
    /// A template from its Jinja source; `origin` names it in errors. Fails on a template
    /// that does not compile.
    pub fn new(source: String, origin: PathBuf) -> Result<Self, Qwen2VlError> {
        let template = ChatTemplate { source, origin };
        template.environment()?;
        Ok(template)
    }

    /// The template of a model folder, where transformers looks for it:
    /// `chat_template.jinja` (transformers 5), `chat_template.json` (the hub's Qwen2-VL), or
    /// the `chat_template` field of `tokenizer_config.json`.
    pub fn from_model_folder(folder: &Path) -> Result<Self, Qwen2VlError> {
        let jinja = folder.join("chat_template.jinja");
        if jinja.is_file() {
            let source = read_text(&jinja)?;
            return Self::new(source, jinja);
        }
        for name in ["chat_template.json", "tokenizer_config.json"] {
            let path = folder.join(name);
            if !path.is_file() {
                continue;
            }
            let parsed: serde_json::Value =
                serde_json::from_str(&read_text(&path)?).map_err(|error| Qwen2VlError::Config {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            if let Some(source) = parsed.get("chat_template").and_then(|value| value.as_str()) {
                return Self::new(source.to_owned(), path);
            }
        }
        Err(Qwen2VlError::Io {
            path: folder.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no chat template (chat_template.jinja, chat_template.json, or `chat_template` in tokenizer_config.json)",
            ),
        })
    }

    fn environment(&self) -> Result<Environment<'_>, Qwen2VlError> {
        let mut environment = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|error| self.error(error))?;
        environment.set_syntax(syntax);
        environment
            .add_template("chat", &self.source)
            .map_err(|error| self.error(error))?;
        Ok(environment)
    }

    fn error(&self, error: impl std::fmt::Display) -> Qwen2VlError {
        Qwen2VlError::Config {
            path: self.origin.clone(),
            reason: format!("chat template: {error}"),
        }
    }

    /// Renders `messages`; `add_generation_prompt` opens the assistant's turn, as a model
    /// that scores or answers the conversation expects.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, Qwen2VlError> {
        let environment = self.environment()?;
        let template = environment
            .get_template("chat")
            .map_err(|error| self.error(error))?;
        let messages: Vec<serde_json::Value> = messages.iter().map(ChatMessage::to_json).collect();
        let context = Value::from(Serde(json!({
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
        })));
        template.render(context).map_err(|error| self.error(error))
    }
}

fn read_text(path: &Path) -> Result<String, Qwen2VlError> {
    std::fs::read_to_string(path).map_err(|source| Qwen2VlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The model's tokenizer, with what batching needs: the padding token, and the image
/// placeholder expanded to the images' merged patches.
#[derive(Debug, Clone)]
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
    path: PathBuf,
}

impl PromptTokenizer {
    /// Reads `tokenizer.json` of a model folder; the padding token is `tokenizer_config.json`'s
    /// `pad_token` (Qwen2's `<|endoftext|>` when the file does not say).
    pub fn from_model_folder(folder: &Path) -> Result<Self, Qwen2VlError> {
        let path = folder.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).map_err(|error| {
            if path.is_file() {
                Qwen2VlError::Config {
                    path: path.clone(),
                    reason: error.to_string(),
                }
            } else {
                Qwen2VlError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer.json"),
                }
            }
        })?;
        let config_path = folder.join("tokenizer_config.json");
        let mut pad_token = "<|endoftext|>".to_owned();
        if config_path.is_file() {
            let parsed: serde_json::Value = serde_json::from_str(&read_text(&config_path)?)
                .map_err(|error| Qwen2VlError::Config {
                    path: config_path.clone(),
                    reason: error.to_string(),
                })?;
            match parsed.get("pad_token") {
                Some(serde_json::Value::String(token)) => pad_token = token.clone(),
                Some(serde_json::Value::Object(token)) => {
                    if let Some(content) = token.get("content").and_then(|value| value.as_str()) {
                        pad_token = content.to_owned();
                    }
                }
                _ => {}
            }
        }
        let pad_id = tokenizer
            .token_to_id(&pad_token)
            .ok_or_else(|| Qwen2VlError::Config {
                path: path.clone(),
                reason: format!("the padding token {pad_token:?} is not in the vocabulary"),
            })?;
        Ok(PromptTokenizer {
            tokenizer,
            pad_id,
            path,
        })
    }

    /// The padding token's id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Token ids of a rendered prompt whose `<|image_pad|>` placeholders stand for the images
    /// of `grids`, in order: each becomes `patches / merge²` pads.
    pub fn encode(
        &self,
        prompt: &str,
        grids: &[ImageGrid],
        merge: usize,
    ) -> Result<Vec<u32>, Qwen2VlError> {
        let pieces: Vec<&str> = prompt.split(IMAGE_PAD).collect();
        if pieces.len() != grids.len() + 1 {
            return Err(Qwen2VlError::InvalidInput {
                reason: format!(
                    "the prompt has {} image placeholders for {} images",
                    pieces.len() - 1,
                    grids.len()
                ),
            });
        }
        let mut expanded = String::with_capacity(prompt.len());
        for (index, piece) in pieces.iter().enumerate() {
            expanded.push_str(piece);
            if let Some(grid) = grids.get(index) {
                expanded.push_str(&IMAGE_PAD.repeat(grid.merged_tokens(merge)));
            }
        }
        let encoding =
            self.tokenizer
                .encode(expanded, true)
                .map_err(|error| Qwen2VlError::Config {
                    path: self.path.clone(),
                    reason: format!("cannot tokenize a prompt: {error}"),
                })?;
        Ok(encoding.get_ids().to_vec())
    }
}

/// One sequence of a batch: its token ids and the images they mention, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptInputs {
    /// Token ids, image pads expanded.
    pub input_ids: Vec<u32>,
    /// The images, preprocessed.
    pub images: Vec<ProcessedImage>,
}

/// Pads `sequences` on the left with `pad_id` to the longest one and concatenates their
/// images, ready for [`crate::RewardModel::rewards`].
pub fn left_padded_batch(sequences: &[PromptInputs], pad_id: u32) -> MultimodalBatch {
    let length = sequences
        .iter()
        .map(|sequence| sequence.input_ids.len())
        .max()
        .unwrap_or(0);
    let mut batch = MultimodalBatch {
        batch: sequences.len(),
        input_ids: Vec::with_capacity(sequences.len() * length),
        attention_mask: Vec::with_capacity(sequences.len() * length),
        pixel_values: Vec::new(),
        image_grids: Vec::new(),
    };
    for sequence in sequences {
        let padding = length - sequence.input_ids.len();
        batch
            .input_ids
            .extend(std::iter::repeat_n(pad_id, padding).chain(sequence.input_ids.iter().copied()));
        batch.attention_mask.extend(
            std::iter::repeat_n(false, padding)
                .chain(std::iter::repeat_n(true, sequence.input_ids.len())),
        );
        for image in &sequence.images {
            batch.pixel_values.extend_from_slice(&image.pixel_values);
            batch.image_grids.push(image.grid);
        }
    }
    batch
}

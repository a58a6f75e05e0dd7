//! The chat-completions wire format: the request G3 sends and the parts of the response it
//! reads. Only fields every OpenAI-compatible server (OpenAI, vLLM, llama.cpp server,
//! Ollama) agrees on are used.

use g3_core::ImageDetail;
use serde::{Deserialize, Serialize};

/// `POST {base_url}/chat/completions` body.
#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: [UserMessage<'a>; 1],
    pub max_tokens: u32,
    pub temperature: f32,
    pub n: u32,
}

/// One user message holding the prompt and the image, as G3 sends it.
#[derive(Debug, Serialize)]
pub(crate) struct UserMessage<'a> {
    pub role: &'static str,
    pub content: [ContentPart<'a>; 2],
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ContentPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Debug, Serialize)]
pub(crate) struct ImageUrl<'a> {
    /// `data:{media type};base64,{bytes}`.
    pub url: &'a str,
    pub detail: ImageDetail,
}

impl<'a> ChatRequest<'a> {
    pub fn new(
        model: &'a str,
        prompt: &'a str,
        image_data_url: &'a str,
        image_detail: ImageDetail,
        max_tokens: u32,
        temperature: f32,
        n: u32,
    ) -> Self {
        ChatRequest {
            model,
            messages: [UserMessage {
                role: "user",
                content: [
                    ContentPart::Text { text: prompt },
                    ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            url: image_data_url,
                            detail: image_detail,
                        },
                    },
                ],
            }],
            max_tokens,
            temperature,
            n,
        }
    }
}

/// The response fields read; everything else is ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatResponse {
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub message: Option<ResponseMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResponseMessage {
    /// A string (OpenAI, vLLM) or a list of parts (some servers); null on refusals.
    #[serde(default)]
    pub content: Option<serde_json::Value>,
    /// OpenAI's refusal text, when the model declined.
    #[serde(default)]
    pub refusal: Option<String>,
}

/// Token counts as servers report them.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct TokenUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

impl Choice {
    /// The answer text: the content string, the concatenated text parts, or the refusal.
    pub fn text(&self) -> String {
        let Some(message) = &self.message else {
            return String::new();
        };
        match &message.content {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(|text| text.as_str()))
                .collect::<Vec<_>>()
                .join(""),
            _ => message.refusal.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_the_reference_shape() {
        let request = ChatRequest::new(
            "gpt-4o",
            "Where?",
            "data:image/jpeg;base64,AAAA",
            ImageDetail::Low,
            200,
            1.2,
            5,
        );
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "model": "gpt-4o",
                "messages": [{
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Where?"},
                        {"type": "image_url", "image_url": {
                            "url": "data:image/jpeg;base64,AAAA", "detail": "low"}}
                    ]
                }],
                "max_tokens": 200,
                "temperature": 1.2f32,
                "n": 5
            })
        );
    }

    #[test]
    fn answer_text_comes_from_strings_parts_or_refusals() {
        let response: ChatResponse = serde_json::from_str(
            r#"{"choices": [
                {"index": 0, "message": {"role": "assistant", "content": "a"}},
                {"index": 1, "message": {"content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]}},
                {"index": 2, "message": {"content": null, "refusal": "no"}},
                {"index": 3}
            ], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}"#,
        )
        .unwrap();
        let texts: Vec<String> = response.choices.iter().map(Choice::text).collect();
        assert_eq!(texts, ["a", "bc", "no", ""]);
        let usage = response.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 3));
    }
}

//! The CLIP tokenizer: byte-level BPE with an end-of-word suffix, as HF's `CLIPTokenizerFast`.
//!
//! Every CLIP checkpoint shares OpenAI's vocabulary, which exists in two forms: an HF
//! `tokenizer.json`, and OpenAI's `bpe_simple_vocab_16e6.txt.gz` (the merges list) that PyPI
//! packages such as `open_clip_torch` ship. [`ClipTokenizer::from_bpe_vocabulary`] builds the
//! same tokenizer HF's converter builds from that file, so the real tokenizer works without a
//! model hub: NFC, whitespace runs to one space, lower case; split into letters, digits and
//! other symbols (CLIP's pattern); GPT-2's byte-to-character table; BPE with `</w>` marking
//! word ends; `<|startoftext|>` and `<|endoftext|>` around the text, truncated and padded
//! (with `<|endoftext|>`) to 77 tokens, as G3 tokenizes.

use std::io::Read;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::utils::{Lowercase, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{
    AddedToken, PaddingDirection, PaddingParams, PaddingStrategy, SplitDelimiterBehavior,
    Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::AlignError;

/// CLIP's text context: every tokenized text has exactly this many ids.
pub const CONTEXT_LENGTH: usize = 77;
/// The token that starts every text.
pub const START_OF_TEXT: &str = "<|startoftext|>";
/// The token that ends every text and pads it to [`CONTEXT_LENGTH`].
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Merges used from OpenAI's file: the vocabulary has 49,408 entries = 256 bytes, 256 bytes
/// ending a word, these merges, and the two special tokens.
const MERGES_USED: usize = 49_152 - 256 - 2;

/// CLIP's pre-tokenization pattern: special tokens, English contractions, runs of letters,
/// single digits, runs of other non-space symbols.
const CLIP_SPLIT_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Token ids of a batch of texts, each padded or truncated to [`CONTEXT_LENGTH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedTexts {
    /// `[texts, CONTEXT_LENGTH]` ids, row-major.
    pub ids: Vec<u32>,
    /// `[texts, CONTEXT_LENGTH]`: 1 for real tokens (including the two special ones), 0 for
    /// padding.
    pub attention_mask: Vec<u32>,
}

impl TokenizedTexts {
    /// Number of texts.
    pub fn len(&self) -> usize {
        self.ids.len() / CONTEXT_LENGTH
    }

    /// Whether the batch holds no text.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids of text `index`.
    pub fn row(&self, index: usize) -> &[u32] {
        &self.ids[index * CONTEXT_LENGTH..][..CONTEXT_LENGTH]
    }
}

/// CLIP's tokenizer, truncating and padding to [`CONTEXT_LENGTH`].
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    tokenizer: Tokenizer,
}

impl ClipTokenizer {
    /// Builds the tokenizer from OpenAI's merges file, `bpe_simple_vocab_16e6.txt` or its
    /// `.gz` (see [`g3_core::assets::Asset::CLIP_BPE_VOCABULARY`]).
    pub fn from_bpe_vocabulary(path: &Path) -> Result<Self, AlignError> {
        let io_error = |source| AlignError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(io_error)?;
        let text = if bytes.starts_with(&[0x1F, 0x8B]) {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .map_err(io_error)?;
            text
        } else {
            String::from_utf8(bytes).map_err(|_| AlignError::Config {
                path: path.to_path_buf(),
                reason: "not UTF-8 text".to_owned(),
            })?
        };
        Self::from_bpe_merges(&text).map_err(|reason| AlignError::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Builds the tokenizer from the text of OpenAI's merges file: a header line, then one
    /// merge (`a b`) per line.
    pub fn from_bpe_merges(text: &str) -> Result<Self, String> {
        let merges: Vec<(String, String)> = text
            .lines()
            .skip(1)
            .take(MERGES_USED)
            .enumerate()
            .map(|(index, line)| {
                let mut parts = line.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(left), Some(right), None) if !left.is_empty() && !right.is_empty() => {
                        Ok((left.to_owned(), right.to_owned()))
                    }
                    _ => Err(format!(
                        "line {}: expected a merge `left right`, found {line:?}",
                        index + 2
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        if merges.len() != MERGES_USED {
            return Err(format!(
                "{} merges, CLIP's vocabulary needs {MERGES_USED}",
                merges.len()
            ));
        }
        let byte_characters = byte_characters();
        let mut tokens: Vec<String> = byte_characters.iter().map(|c| c.to_string()).collect();
        tokens.extend(byte_characters.iter().map(|c| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|(left, right)| format!("{left}{right}")));
        tokens.push(START_OF_TEXT.to_owned());
        tokens.push(END_OF_TEXT.to_owned());
        let vocabulary: Vocab = tokens
            .into_iter()
            .enumerate()
            .map(|(id, token)| (token, id as u32))
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(vocabulary, merges)
            .unk_token(END_OF_TEXT.to_owned())
            .end_of_word_suffix("</w>".to_owned())
            .continuing_subword_prefix(String::new())
            .fuse_unk(false)
            .build()
            .map_err(|e| e.to_string())?;
        let mut tokenizer = Tokenizer::new(model);
        let whitespace = Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".to_owned()),
            " ",
        )
        .map_err(|e| e.to_string())?;
        tokenizer.with_normalizer(Some(NormalizerSequence::new(vec![
            NFC.into(),
            whitespace.into(),
            Lowercase.into(),
        ])));
        let split = Split::new(
            SplitPattern::Regex(CLIP_SPLIT_PATTERN.to_owned()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(|e| e.to_string())?;
        tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
            split.into(),
            // HF's pre_tokenizers.ByteLevel(add_prefix_space=False): offsets trimmed, GPT-2 regex on.
            ByteLevel::new(false, true, true).into(),
        ])));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        tokenizer.add_special_tokens(&[
            AddedToken::from(START_OF_TEXT, true),
            AddedToken::from(END_OF_TEXT, true),
        ]);
        let start = tokenizer
            .token_to_id(START_OF_TEXT)
            .ok_or("no start token")?;
        let end = tokenizer.token_to_id(END_OF_TEXT).ok_or("no end token")?;
        tokenizer.with_post_processor(Some(
            RobertaProcessing::new(
                (END_OF_TEXT.to_owned(), end),
                (START_OF_TEXT.to_owned(), start),
            )
            .trim_offsets(false)
            .add_prefix_space(false),
        ));
        Self::with_clip_lengths(tokenizer)
    }

    /// Loads an HF `tokenizer.json` (as in `openai/clip-vit-large-patch14`), then truncates and
    /// pads to [`CONTEXT_LENGTH`] with `<|endoftext|>` whatever the file says.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, AlignError> {
        let tokenizer = Tokenizer::from_file(path).map_err(|error| AlignError::Config {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Self::with_clip_lengths(tokenizer).map_err(|reason| AlignError::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn with_clip_lengths(mut tokenizer: Tokenizer) -> Result<Self, String> {
        let pad_id = tokenizer
            .token_to_id(END_OF_TEXT)
            .ok_or_else(|| format!("the vocabulary has no {END_OF_TEXT} token"))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: CONTEXT_LENGTH,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| e.to_string())?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(CONTEXT_LENGTH),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: END_OF_TEXT.to_owned(),
        }));
        Ok(ClipTokenizer { tokenizer })
    }

    /// Writes the tokenizer as an HF `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<(), AlignError> {
        self.tokenizer
            .save(path, true)
            .map_err(|error| AlignError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(error.to_string()),
            })
    }

    /// Size of the vocabulary, special tokens included (49,408 for CLIP).
    pub fn vocabulary_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The id of `<|endoftext|>`, which ends and pads every text.
    pub fn end_of_text_id(&self) -> u32 {
        self.tokenizer
            .token_to_id(END_OF_TEXT)
            .expect("checked when the tokenizer was built")
    }

    /// Tokenizes texts (in parallel), each into exactly [`CONTEXT_LENGTH`] ids.
    pub fn encode(&self, texts: &[&str]) -> Result<TokenizedTexts, AlignError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| AlignError::InvalidInput {
                reason: format!("cannot tokenize: {error}"),
            })?;
        let mut ids = Vec::with_capacity(texts.len() * CONTEXT_LENGTH);
        let mut attention_mask = Vec::with_capacity(texts.len() * CONTEXT_LENGTH);
        for encoding in &encodings {
            debug_assert_eq!(encoding.get_ids().len(), CONTEXT_LENGTH);
            ids.extend_from_slice(encoding.get_ids());
            attention_mask.extend_from_slice(encoding.get_attention_mask());
        }
        Ok(TokenizedTexts {
            ids,
            attention_mask,
        })
    }
}

/// GPT-2's byte-to-character table, in the order CLIP's vocabulary lists bytes: the printable
/// bytes stand for themselves, the others map to characters from U+0100 on.
fn byte_characters() -> Vec<char> {
    let printable = |byte: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&byte)
            || (0xA1..=0xAC).contains(&byte)
            || (0xAE..=0xFF).contains(&byte)
    };
    let mut characters: Vec<char> = (0..256u32)
        .filter(|&byte| printable(byte))
        .filter_map(char::from_u32)
        .collect();
    let others = (0..256u32).filter(|&byte| !printable(byte)).count() as u32;
    characters.extend((256..256 + others).filter_map(char::from_u32));
    characters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_covers_every_byte_once() {
        let characters = byte_characters();
        assert_eq!(characters.len(), 256);
        assert_eq!(characters[0], '!');
        let unique: std::collections::HashSet<_> = characters.iter().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn a_short_merges_file_is_refused_with_its_length() {
        let error = ClipTokenizer::from_bpe_merges("#version: 0.2\na b\n").unwrap_err();
        assert!(error.contains("1 merges"), "{error}");
        let error = ClipTokenizer::from_bpe_merges("#version: 0.2\nab\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }
}

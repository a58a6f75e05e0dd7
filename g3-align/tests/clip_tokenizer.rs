//! The CLIP tokenizer against HF transformers' `CLIPTokenizer` (the tokenizers-backed "fast"
//! one), both built from OpenAI's `bpe_simple_vocab_16e6.txt.gz`.
//!
//! Goldens from `tools/goldens/clip.py` (transformers 5.24.0). The vocabulary comes from the
//! asset cache filled by `scripts/fetch-assets.sh`; without it these tests fail, never skip.

use std::path::{Path, PathBuf};

use g3_align::clip::{CONTEXT_LENGTH, ClipTokenizer};
use g3_core::assets::Asset;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clip")
        .join(name)
}

fn tokenizer() -> ClipTokenizer {
    let vocabulary = Asset::CLIP_BPE_VOCABULARY
        .require()
        .unwrap_or_else(|error| panic!("{error}"));
    ClipTokenizer::from_bpe_vocabulary(&vocabulary).unwrap()
}

fn golden_strings() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixture("tokenizer_strings.json")).unwrap())
        .unwrap()
}

fn golden_ids() -> Vec<u32> {
    let bytes = std::fs::read(fixture("tokenizer_ids.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    npy.into_vec::<i64>()
        .unwrap()
        .into_iter()
        .map(|id| u32::try_from(id).unwrap())
        .collect()
}

#[test]
fn token_ids_match_hf_clip_tokenizer() {
    let tokenizer = tokenizer();
    assert_eq!(tokenizer.vocabulary_size(), 49_408);
    let strings = golden_strings();
    assert!(strings.len() >= 50);
    let texts: Vec<&str> = strings.iter().map(String::as_str).collect();
    let ours = tokenizer.encode(&texts).unwrap();
    let theirs = golden_ids();
    assert_eq!(ours.len(), strings.len());
    let mismatches: Vec<String> = (0..strings.len())
        .filter(|&row| ours.row(row) != &theirs[row * CONTEXT_LENGTH..][..CONTEXT_LENGTH])
        .map(|row| {
            format!(
                "{:?}\n  ours   {:?}\n  theirs {:?}",
                strings[row],
                ours.row(row),
                &theirs[row * CONTEXT_LENGTH..][..CONTEXT_LENGTH]
            )
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_text_is_bracketed_and_padded_to_the_context() {
    let tokenizer = tokenizer();
    let end = tokenizer.end_of_text_id();
    let long = "word ".repeat(200);
    let batch = tokenizer.encode(&["", "a photo", &long]).unwrap();
    for row in 0..3 {
        let ids = batch.row(row);
        assert_eq!(ids.len(), CONTEXT_LENGTH);
        assert_eq!(ids[0], end - 1, "row {row} starts with <|startoftext|>");
        assert!(ids.contains(&end));
    }
    // The empty text: start, end, then padding; the mask covers the two special tokens.
    assert_eq!(&batch.row(0)[..3], &[end - 1, end, end]);
    assert_eq!(batch.attention_mask[..3], [1, 1, 0]);
    // The long text is cut so that it still ends with <|endoftext|>.
    assert_eq!(batch.row(2)[CONTEXT_LENGTH - 1], end);
    assert!(
        batch.attention_mask[2 * CONTEXT_LENGTH..]
            .iter()
            .all(|&m| m == 1)
    );
}

#[test]
fn a_saved_tokenizer_json_loads_back_identical() {
    let tokenizer = tokenizer();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("tokenizer.json");
    tokenizer.save(&path).unwrap();
    let reloaded = ClipTokenizer::from_tokenizer_json(&path).unwrap();
    let strings = golden_strings();
    let texts: Vec<&str> = strings.iter().map(String::as_str).collect();
    assert_eq!(
        tokenizer.encode(&texts).unwrap(),
        reloaded.encode(&texts).unwrap()
    );
}

#[test]
fn missing_or_broken_vocabularies_are_clear_errors() {
    let error =
        ClipTokenizer::from_bpe_vocabulary(Path::new("/nonexistent/bpe.txt.gz")).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/bpe.txt.gz"),
        "{error}"
    );
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("tokenizer.json");
    std::fs::write(&path, "{ not json").unwrap();
    let error = ClipTokenizer::from_tokenizer_json(&path).unwrap_err();
    assert!(error.to_string().contains("tokenizer.json"), "{error}");
}

//! The Geo-diversification ensemble: paper defaults, rendering, validation.

use g3_core::{GeoPoint, ImageDetail, PromptEnsemble, RetrievedNeighbor};
use g3_prompt::{
    EnsembleError, PromptEnsembleConfig, PromptSpec, REFERENCE_RAG_TEMPLATE,
    REFERENCE_ZERO_SHOT_TEMPLATE, RagPromptEnsemble,
};

fn neighbours(count: usize, base_lat: f64) -> Vec<RetrievedNeighbor> {
    (0..count)
        .map(|rank| RetrievedNeighbor {
            key: rank as u64,
            rank,
            similarity: 1.0 - rank as f32 / 100.0,
            location: GeoPoint::new(base_lat + rank as f64, 2.5 + rank as f64).unwrap(),
        })
        .collect()
}

#[test]
fn the_default_is_the_papers_ensemble() {
    let ensemble = RagPromptEnsemble::default();
    let needed = ensemble.references_needed();
    assert_eq!((needed.similar, needed.dissimilar), (15, 15));
    let prompts = ensemble
        .prompts(&neighbours(15, 10.0), &neighbours(15, -40.0))
        .unwrap();
    let counts: Vec<(usize, usize)> = prompts
        .iter()
        .map(|p| (p.similar.len(), p.dissimilar.len()))
        .collect();
    assert_eq!(counts, [(0, 0), (5, 5), (10, 10), (15, 15)]);
    for (index, prompt) in prompts.iter().enumerate() {
        assert_eq!(prompt.prompt_index, index);
        assert_eq!(
            (prompt.samples, prompt.temperature, prompt.max_tokens),
            (5, 1.2, 200)
        );
        assert_eq!(prompt.image_detail, ImageDetail::Low);
    }
    assert_eq!(prompts[0].text, *REFERENCE_ZERO_SHOT_TEMPLATE);
    assert!(
        prompts[0]
            .text
            .starts_with("Suppose you are an expert in geo-localization, you have")
    );
    assert_eq!(
        prompts[0]
            .text
            .matches(r#"{"latitude": float,"longitude": float}"#)
            .count(),
        2
    );
}

#[test]
fn rag_prompts_quote_coordinates_as_the_reference() {
    let ensemble = RagPromptEnsemble::default();
    let prompts = ensemble
        .prompts(&neighbours(15, 10.0), &neighbours(15, -40.0))
        .unwrap();
    let text = &prompts[1].text;
    // str([f'[{lat}, {lon}]', ...]) in Python, with Python's float notation.
    let similar = "['[10.0, 2.5]', '[11.0, 3.5]', '[12.0, 4.5]', '[13.0, 5.5]', '[14.0, 6.5]']";
    let dissimilar =
        "['[-40.0, 2.5]', '[-39.0, 3.5]', '[-38.0, 4.5]', '[-37.0, 5.5]', '[-36.0, 6.5]']";
    let sentence = format!(
        "For your reference, these are coordinates of some similar images: {similar}, and these are coordinates of some dissimilar images: {dissimilar}."
    );
    assert!(text.contains(&sentence), "{text}");
    assert!(!text.contains("{similar}") && !text.contains("{dissimilar}"));
    assert!(text.contains("don't answer me that you can't give an location."));
    assert_eq!(prompts[3].text.matches("'[").count(), 30);
}

#[test]
fn fewer_neighbours_than_asked_are_quoted_and_counted() {
    let prompts = RagPromptEnsemble::default()
        .prompts(&neighbours(7, 0.0), &[])
        .unwrap();
    let counts: Vec<(usize, usize)> = prompts
        .iter()
        .map(|p| (p.similar.len(), p.dissimilar.len()))
        .collect();
    assert_eq!(counts, [(0, 0), (5, 0), (7, 0), (7, 0)]);
    assert!(prompts[2].text.contains("dissimilar images: []"));
}

#[test]
fn the_ablation_preset_has_one_prompt() {
    let ensemble = RagPromptEnsemble::new(PromptEnsembleConfig::without_diversification()).unwrap();
    let prompts = ensemble
        .prompts(&neighbours(10, 0.0), &neighbours(10, 0.0))
        .unwrap();
    assert_eq!(prompts.len(), 1);
    assert_eq!(
        (prompts[0].similar.len(), prompts[0].dissimilar.len()),
        (10, 10)
    );
}

#[test]
fn bad_configurations_are_refused_with_the_reason() {
    let base = PromptEnsembleConfig::default();
    let cases = [
        (
            PromptEnsembleConfig {
                prompts: vec![],
                ..base.clone()
            },
            "at least one prompt",
        ),
        (
            PromptEnsembleConfig {
                prompts: vec![PromptSpec {
                    samples: 0,
                    ..PromptSpec::default()
                }],
                ..base.clone()
            },
            "samples no answer",
        ),
        (
            PromptEnsembleConfig {
                rag_template: "Near {similar}; far {dissimlar}.".into(),
                ..base.clone()
            },
            "unknown template variable {dissimlar}",
        ),
        (
            PromptEnsembleConfig {
                rag_template: "Near {similar}.".into(),
                ..base.clone()
            },
            "no {dissimilar} template variable",
        ),
        (
            PromptEnsembleConfig {
                zero_shot_template: "Where is {city}?".into(),
                ..base.clone()
            },
            "zero-shot template has an unknown template variable {city}",
        ),
    ];
    for (config, message) in cases {
        let error: EnsembleError = RagPromptEnsemble::new(config).unwrap_err();
        assert!(
            error.to_string().contains(message),
            "{error} should mention {message:?}"
        );
    }
    // JSON braces in a template are text, not template variables.
    assert!(REFERENCE_RAG_TEMPLATE.contains(r#"{"latitude": float"#));
    assert!(RagPromptEnsemble::new(base).is_ok());
}

#[test]
fn configurations_round_trip_through_serde() {
    let config = PromptEnsembleConfig::default();
    let json = serde_json::to_string(&config).unwrap();
    let back: PromptEnsembleConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    // Missing fields take the paper's defaults.
    let partial: PromptEnsembleConfig =
        serde_json::from_str(r#"{"prompts": [{"similar": 3, "dissimilar": 1, "samples": 2}]}"#)
            .unwrap();
    assert_eq!(partial.prompts[0].temperature, 1.2);
    assert_eq!(partial.rag_template, *REFERENCE_RAG_TEMPLATE);
}

#[test]
fn templates_and_configurations_load_from_files() {
    let directory = tempfile::tempdir().unwrap();
    let rag = directory.path().join("rag.txt");
    std::fs::write(
        &rag,
        "Near {similar}, far from {dissimilar}? Answer in JSON.\n",
    )
    .unwrap();
    let config = PromptEnsembleConfig::default()
        .with_template_files(None, Some(&rag))
        .unwrap();
    assert_eq!(
        config.rag_template,
        "Near {similar}, far from {dissimilar}? Answer in JSON.\n"
    );
    assert_eq!(config.zero_shot_template, *REFERENCE_ZERO_SHOT_TEMPLATE);
    assert!(RagPromptEnsemble::new(config).is_ok());

    // A bad template variable is reported with the file that holds it.
    let zero_shot = directory.path().join("zero-shot.txt");
    std::fs::write(&zero_shot, "Where is {city}?").unwrap();
    let error = PromptEnsembleConfig::default()
        .with_template_files(Some(&zero_shot), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("zero-shot.txt") && error.contains("{city}"),
        "{error}"
    );

    // A missing file and a JSON syntax error name the file (and the line).
    let missing = directory.path().join("missing.txt");
    let error = PromptEnsembleConfig::default()
        .with_template_files(None, Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing.txt"), "{error}");
    let json = directory.path().join("ensemble.json");
    std::fs::write(
        &json,
        "{\n  \"prompts\": [\n    {\"similar\": 3,}\n  ]\n}\n",
    )
    .unwrap();
    let error = PromptEnsembleConfig::from_json_file(&json)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ensemble.json") && error.contains("line 3"),
        "{error}"
    );

    std::fs::write(
        &json,
        r#"{"prompts": [{"similar": 3, "dissimilar": 3, "samples": 1}]}"#,
    )
    .unwrap();
    let config = PromptEnsembleConfig::from_json_file(&json).unwrap();
    assert_eq!(config.prompts.len(), 1);
    assert_eq!(config.prompts[0].temperature, 1.2);
}

//! The offline generator end to end with the ensemble and the parser.

use g3_core::{
    AnswerParser, GeoPoint, ImageInput, LmmGenerator, PromptEnsemble, RetrievedNeighbor,
};
use g3_prompt::{DensityPeakGenerator, RagPromptEnsemble, RobustAnswerParser};

fn neighbour(rank: usize, lat: f64, lon: f64) -> RetrievedNeighbor {
    RetrievedNeighbor {
        key: rank as u64,
        rank,
        similarity: 0.9 - rank as f32 * 0.01,
        location: GeoPoint::new(lat, lon).unwrap(),
    }
}

#[test]
fn answers_are_the_densest_references_and_parse_back() {
    // Rank 0 is an outlier; ranks 1-4 cluster in Rome; ranks 5-6 in Milan.
    let similar = vec![
        neighbour(0, -33.86, 151.21),
        neighbour(1, 41.89, 12.49),
        neighbour(2, 41.90, 12.50),
        neighbour(3, 41.88, 12.48),
        neighbour(4, 41.91, 12.47),
        neighbour(5, 45.46, 9.19),
        neighbour(6, 45.47, 9.18),
    ];
    let ensemble = RagPromptEnsemble::default();
    let prompts = ensemble.prompts(&similar, &similar).unwrap();
    let image = ImageInput::from_bytes("query.jpg", Vec::new());
    let generated = DensityPeakGenerator::default()
        .generate(&image, &prompts)
        .unwrap();
    assert!(
        generated.lost.is_empty(),
        "an offline generator loses nothing"
    );
    let answers = generated.answers;

    // The zero-shot prompt gets no answer; the three RAG prompts get 5 samples each.
    assert_eq!(answers.len(), 15);
    assert!(answers.iter().all(|answer| answer.prompt_index > 0));
    let first = RobustAnswerParser.parse(&answers[0].text).unwrap();
    // Prompt 1 quotes ranks 0-4: the Rome cluster wins, led by its best-ranked member.
    assert_eq!((first.lat_deg(), first.lon_deg()), (41.89, 12.49));
    // Prompt 2 (10 references, 7 available): samples walk through the distinct peaks by
    // rank-weighted density: Rome 1/2+1/3+1/4+1/5 = 1.28, the lone rank-0 Sydney 1.0,
    // Milan 1/6+1/7 = 0.31.
    let prompt_two: Vec<(f64, f64)> = answers
        .iter()
        .filter(|answer| answer.prompt_index == 2)
        .map(|answer| {
            let point = RobustAnswerParser.parse(&answer.text).unwrap();
            (point.lat_deg(), point.lon_deg())
        })
        .collect();
    assert_eq!(
        prompt_two,
        [
            (41.89, 12.49),
            (-33.86, 151.21),
            (45.46, 9.19),
            (41.89, 12.49),
            (-33.86, 151.21)
        ]
    );
    let samples: Vec<u32> = answers
        .iter()
        .filter(|a| a.prompt_index == 3)
        .map(|a| a.sample_index)
        .collect();
    assert_eq!(samples, [0, 1, 2, 3, 4]);
}

#[test]
fn without_references_there_is_no_answer() {
    let prompts = RagPromptEnsemble::default().prompts(&[], &[]).unwrap();
    let image = ImageInput::from_bytes("query.jpg", Vec::new());
    let generated = DensityPeakGenerator::default()
        .generate(&image, &prompts)
        .unwrap();
    // Declined, not lost: there was nothing to answer from.
    assert!(generated.answers.is_empty() && generated.lost.is_empty());
    let description = DensityPeakGenerator::default().describe();
    assert!(!description.asks_model);
    assert!(description.notice.unwrap().contains("no LMM was asked"));
}

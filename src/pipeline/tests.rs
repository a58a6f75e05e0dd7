//! The pipeline with hand-made stages: pool assembly, verification, settings checks.

use std::sync::Mutex;

use g3_core::{
    Embeddings, GeneratedAnswers, GeoPoint, LmmAnswer, PromptRequest, ReferenceCounts,
    Result as CoreResult, SearchDirection,
};

use super::*;

/// Embeds an image as `[x, y]` read from its id `"x,y"`.
struct IdEmbedder;

impl ImageEmbedder for IdEmbedder {
    fn dimension(&self) -> usize {
        2
    }
    fn embed_images(&self, images: &[ImageInput]) -> CoreResult<Embeddings> {
        let values = images
            .iter()
            .flat_map(|image| {
                let (x, y) = image.id().split_once(',').unwrap();
                [x.parse::<f32>().unwrap(), y.parse::<f32>().unwrap()]
            })
            .collect();
        Embeddings::new(2, values)
    }
}

/// Four entries on the unit circle, at 0°, 90°, 180° and 270°, located at (0, 10 · row).
struct CircleStore;

impl VectorStore for CircleStore {
    fn dimension(&self) -> usize {
        2
    }
    fn len(&self) -> usize {
        4
    }
    fn search(
        &self,
        queries: &Embeddings,
        k: usize,
        direction: SearchDirection,
    ) -> CoreResult<Vec<Vec<RetrievedNeighbor>>> {
        let entries = [[1.0f32, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]];
        Ok(queries
            .rows()
            .map(|query| {
                let mut scored: Vec<(usize, f32)> = entries
                    .iter()
                    .enumerate()
                    .map(|(row, entry)| (row, entry[0] * query[0] + entry[1] * query[1]))
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1));
                if direction == SearchDirection::Dissimilar {
                    scored.reverse();
                }
                scored
                    .into_iter()
                    .take(k)
                    .enumerate()
                    .map(|(rank, (row, similarity))| RetrievedNeighbor {
                        key: row as u64,
                        rank,
                        similarity,
                        location: GeoPoint::new(0.0, 10.0 * row as f64).unwrap(),
                    })
                    .collect()
            })
            .collect())
    }
}

/// One prompt quoting 2 similar and 1 dissimilar references, 2 samples.
struct OnePrompt;

impl PromptEnsemble for OnePrompt {
    fn references_needed(&self) -> ReferenceCounts {
        ReferenceCounts {
            similar: 2,
            dissimilar: 1,
        }
    }
    fn prompts(
        &self,
        similar: &[RetrievedNeighbor],
        dissimilar: &[RetrievedNeighbor],
    ) -> CoreResult<Vec<PromptRequest>> {
        Ok(vec![PromptRequest {
            prompt_index: 0,
            text: "where?".into(),
            samples: 2,
            temperature: 1.0,
            max_tokens: 10,
            image_detail: Default::default(),
            similar: similar.iter().map(|n| n.location).collect(),
            dissimilar: dissimilar.iter().map(|n| n.location).collect(),
        }])
    }
}

/// Answers "40, <similar count>" then gibberish, and records the references it saw.
#[derive(Default)]
struct ScriptedGenerator {
    seen: Mutex<Vec<(usize, usize)>>,
}

impl LmmGenerator for ScriptedGenerator {
    fn generate(
        &self,
        _image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> CoreResult<GeneratedAnswers> {
        let prompt = &prompts[0];
        self.seen
            .lock()
            .unwrap()
            .push((prompt.similar.len(), prompt.dissimilar.len()));
        Ok(vec![
            LmmAnswer {
                prompt_index: 0,
                sample_index: 0,
                text: format!(
                    "{{\"latitude\": 40.0, \"longitude\": {}.0}}",
                    prompt.similar.len()
                ),
            },
            LmmAnswer {
                prompt_index: 0,
                sample_index: 1,
                text: "I cannot tell.".into(),
            },
        ]
        .into())
    }
}

/// Prefers candidates far east.
struct EastVerifier;

impl Verifier for EastVerifier {
    fn score(
        &self,
        query: &VerificationQuery<'_>,
        candidates: &[Candidate],
    ) -> CoreResult<Vec<f32>> {
        assert!(
            query.embedding.is_some(),
            "the pipeline passes the query embedding"
        );
        Ok(candidates
            .iter()
            .map(|c| c.location.lon_deg() as f32)
            .collect())
    }
}

fn image(id: &str) -> ImageInput {
    ImageInput::from_bytes(id, vec![0u8])
}

#[test]
fn a_query_runs_every_stage_and_keeps_provenance() {
    let generator = std::sync::Arc::new(ScriptedGenerator::default());
    let pipeline = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .vector_store(CircleStore)
        .prompt_ensemble(OnePrompt)
        .generator(generator.clone())
        .verifier(EastVerifier)
        .build()
        .unwrap();
    // Query at 90°: similar = rows 1, 0|2; dissimilar = row 3.
    let predictions = pipeline.locate(&[image("0,1")]).unwrap();
    let prediction = &predictions[0];
    assert_eq!(generator.seen.lock().unwrap().as_slice(), &[(2, 1)]);
    assert_eq!(prediction.image_id, "0,1");
    assert_eq!(prediction.candidates.len(), 2, "{prediction:?}");
    assert!(matches!(
        prediction.candidates[0].source,
        CandidateSource::Generated {
            prompt_index: 0,
            sample_index: 0
        }
    ));
    assert_eq!(
        prediction.candidates[1].source,
        CandidateSource::Retrieved {
            key: 1,
            rank: 0,
            similarity: 1.0
        }
    );
    assert_eq!(prediction.rejected.len(), 1);
    assert_eq!(prediction.rejected[0].answer.sample_index, 1);
    // Retrieved top-1 is at lon 10, the generated one at lon 2: the verifier picks lon 10.
    assert_eq!(prediction.chosen, 1);
    assert_eq!(prediction.location, GeoPoint::new(0.0, 10.0).unwrap());
    assert!(prediction.candidates.iter().all(|c| c.score.is_some()));
    let json = serde_json::to_string(prediction).unwrap();
    assert!(json.contains("\"kind\":\"retrieved\""), "{json}");
}

#[test]
fn results_keep_input_order_under_concurrency() {
    let pipeline = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .vector_store(CircleStore)
        .verifier(EastVerifier)
        .settings(PipelineSettings {
            concurrent_queries: 3,
            ..PipelineSettings::default()
        })
        .build()
        .unwrap();
    let ids = ["1,0", "0,1", "-1,0", "0,-1", "1,0.1", "0.1,1", "-1,0.1"];
    let images: Vec<_> = ids.iter().map(|id| image(id)).collect();
    let predictions = pipeline.locate(&images).unwrap();
    let longitudes: Vec<f64> = predictions.iter().map(|p| p.location.lon_deg()).collect();
    assert_eq!(longitudes, [0.0, 10.0, 20.0, 30.0, 0.0, 10.0, 20.0]);
    for (prediction, id) in predictions.iter().zip(ids) {
        assert_eq!(prediction.image_id, id);
    }
}

#[test]
fn an_empty_pool_falls_back_to_the_top_retrieved_image_or_fails() {
    struct Silent;
    impl LmmGenerator for Silent {
        fn generate(&self, _: &ImageInput, _: &[PromptRequest]) -> CoreResult<GeneratedAnswers> {
            Ok(GeneratedAnswers::default())
        }
    }
    let build = |empty_pool| {
        Pipeline::builder()
            .image_embedder(IdEmbedder)
            .vector_store(CircleStore)
            .prompt_ensemble(OnePrompt)
            .generator(Silent)
            .verifier(EastVerifier)
            .settings(PipelineSettings {
                retrieved_candidates: 0,
                empty_pool,
                ..PipelineSettings::default()
            })
            .build()
            .unwrap()
    };
    let prediction = &build(EmptyPool::TopRetrieved)
        .locate(&[image("-1,0")])
        .unwrap()[0];
    assert_eq!(prediction.location, GeoPoint::new(0.0, 20.0).unwrap());
    assert!(matches!(
        prediction.chosen_candidate().source,
        CandidateSource::Retrieved { .. }
    ));
    let error = build(EmptyPool::Error)
        .locate(&[image("-1,0")])
        .unwrap_err();
    assert!(matches!(error, Error::NoCandidates { .. }), "{error}");
    let each = build(EmptyPool::Error)
        .locate_each(&[image("-1,0")])
        .unwrap();
    assert!(each[0].is_err());
}

/// Answers sample 0 of every prompt and loses the others to `cause`; counts its calls.
struct LosingGenerator {
    cause: g3_core::LossCause,
    calls: std::sync::atomic::AtomicUsize,
}

impl LosingGenerator {
    fn new(cause: g3_core::LossCause) -> Self {
        LosingGenerator {
            cause,
            calls: Default::default(),
        }
    }
}

impl LmmGenerator for LosingGenerator {
    fn generate(&self, _: &ImageInput, prompts: &[PromptRequest]) -> CoreResult<GeneratedAnswers> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(GeneratedAnswers {
            answers: prompts
                .iter()
                .map(|prompt| LmmAnswer {
                    prompt_index: prompt.prompt_index,
                    sample_index: 0,
                    text: "{\"latitude\": 40.0, \"longitude\": 5.0}".into(),
                })
                .collect(),
            lost: prompts
                .iter()
                .map(|prompt| g3_core::LostAnswers {
                    prompt_index: prompt.prompt_index,
                    samples: prompt.samples - 1,
                    cause: self.cause,
                    message: "http://lmm: connection refused".into(),
                })
                .collect(),
        })
    }
}

fn losing_pipeline(generator: std::sync::Arc<LosingGenerator>, policy: AnswerPolicy) -> Pipeline {
    Pipeline::builder()
        .image_embedder(IdEmbedder)
        .vector_store(CircleStore)
        .prompt_ensemble(OnePrompt)
        .generator(generator)
        .verifier(EastVerifier)
        .answer_policy(policy)
        .settings(PipelineSettings {
            concurrent_queries: 1,
            ..PipelineSettings::default()
        })
        .build()
        .unwrap()
}

#[test]
fn a_photo_with_lost_answers_fails_unless_the_policy_accepts_the_partial_pool() {
    let generator = std::sync::Arc::new(LosingGenerator::new(g3_core::LossCause::RetriesExhausted));
    let strict = losing_pipeline(generator.clone(), AnswerPolicy::default());
    let error = strict.locate(&[image("0,1")]).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::AnswersLost {
                asked: 2,
                obtained: 1,
                required: 2,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("connection refused"), "{error}");
    assert_eq!(
        error.reason(),
        "LMM answers lost: the LMM server kept failing after every retry"
    );

    let partial = losing_pipeline(
        generator,
        AnswerPolicy {
            min_answers: MinAnswers::Count(1),
            ..AnswerPolicy::default()
        },
    );
    let prediction = &partial.locate(&[image("0,1")]).unwrap()[0];
    assert_eq!(prediction.lost_samples(), 1);
    assert_eq!(
        prediction.candidates.len(),
        2,
        "one generated, the retrieved top 1"
    );
    let report = partial.generation_report().unwrap();
    assert_eq!(
        (
            report.photos,
            report.answers_asked,
            report.answers_obtained,
            report.answers_lost
        ),
        (1, 2, 1, 1)
    );
    assert_eq!(report.generator.name, "custom generator");
}

#[test]
fn persistent_failures_stop_the_pipeline_from_asking() {
    let generator = std::sync::Arc::new(LosingGenerator::new(g3_core::LossCause::Unreachable));
    let pipeline = losing_pipeline(generator.clone(), AnswerPolicy::default());
    let photos: Vec<ImageInput> = ["1,0", "0,1", "-1,0", "0,-1", "1,1"]
        .iter()
        .map(|id| image(id))
        .collect();
    let outcomes = pipeline.locate_each(&photos).unwrap();
    assert!(
        outcomes[..3]
            .iter()
            .all(|outcome| matches!(outcome, Err(Error::AnswersLost { .. })))
    );
    for outcome in &outcomes[3..] {
        let Err(Error::GenerationHalted { photos, .. }) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(*photos, 3);
    }
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        3,
        "not asked after the halt"
    );
    assert!(pipeline.generation_halt().is_some());
    assert_eq!(pipeline.generation_report().unwrap().failed_photos, 3);
}

#[test]
fn a_fraction_outside_zero_to_one_is_refused_when_building() {
    let error = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .vector_store(CircleStore)
        .prompt_ensemble(OnePrompt)
        .generator(ScriptedGenerator::default())
        .verifier(EastVerifier)
        .answer_policy(AnswerPolicy {
            min_answers: MinAnswers::Fraction(1.5),
            ..AnswerPolicy::default()
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("min_answers = 1.5"), "{error}");
}

#[test]
fn the_builder_refuses_stages_that_do_not_fit() {
    let message = |builder: PipelineBuilder| builder.build().unwrap_err().to_string();
    assert!(message(Pipeline::builder().verifier(EastVerifier)).contains("no image embedder"));
    assert!(message(Pipeline::builder().image_embedder(IdEmbedder)).contains("no verifier"));
    struct WideStore;
    impl VectorStore for WideStore {
        fn dimension(&self) -> usize {
            3
        }
        fn len(&self) -> usize {
            1
        }
        fn search(
            &self,
            _: &Embeddings,
            _: usize,
            _: SearchDirection,
        ) -> CoreResult<Vec<Vec<RetrievedNeighbor>>> {
            unreachable!()
        }
    }
    let wide = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .vector_store(WideStore)
        .verifier(EastVerifier);
    assert!(message(wide).contains("3-d vectors"));
    let no_store = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .prompt_ensemble(OnePrompt)
        .generator(ScriptedGenerator::default())
        .verifier(EastVerifier)
        .settings(PipelineSettings {
            retrieved_candidates: 0,
            empty_pool: EmptyPool::Error,
            ..PipelineSettings::default()
        });
    assert!(message(no_store).contains("no vector store"));
    let lonely = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .prompt_ensemble(OnePrompt)
        .verifier(EastVerifier);
    assert!(message(lonely).contains("needs a generator"));
    let empty = Pipeline::builder()
        .image_embedder(IdEmbedder)
        .vector_store(CircleStore)
        .verifier(EastVerifier)
        .settings(PipelineSettings {
            retrieved_candidates: 0,
            ..PipelineSettings::default()
        });
    assert!(message(empty).contains("nothing fills the candidate pool"));
}

#[test]
fn boxed_stages_plug_in_like_concrete_ones() {
    let embedder: Box<dyn ImageEmbedder> = Box::new(IdEmbedder);
    let verifier: Box<dyn Verifier> = Box::new(EastVerifier);
    let pipeline = Pipeline::builder()
        .image_embedder(embedder)
        .vector_store(std::sync::Arc::new(CircleStore))
        .verifier(verifier)
        .build()
        .unwrap();
    assert_eq!(
        pipeline.locate(&[image("0,-1")]).unwrap()[0]
            .location
            .lon_deg(),
        30.0
    );
}

#[test]
fn every_preset_round_trips_through_toml() {
    for preset in Preset::ALL {
        let config = preset.config();
        let text = format!("preset = \"{preset}\"\n");
        assert_eq!(
            PipelineConfig::from_toml_str(&text).unwrap(),
            config,
            "{preset}"
        );
        let printed = config.to_toml().unwrap();
        assert_eq!(
            PipelineConfig::from_toml_str(&printed).unwrap(),
            config,
            "{preset}"
        );
        assert_eq!(Preset::from_name(preset.name()).unwrap(), preset);
    }
}

#[test]
fn a_config_file_overrides_its_preset_key_by_key() {
    let config = PipelineConfig::from_toml_str(
        r#"
preset = "knn"
database = "db.g3db"
[pool]
retrieved_candidates = 8
[verifier]
kind = "kernel-density"
bandwidth_km = 100.0
"#,
    )
    .unwrap();
    assert_eq!(config.pool.retrieved_candidates, 8);
    assert_eq!(config.pool.similar_neighbors, 16, "kept from the preset");
    let VerifierConfig::KernelDensity(verifier) = config.verifier else {
        panic!("{:?}", config.verifier)
    };
    assert_eq!(verifier.bandwidth_km, 100.0);
    assert_eq!(verifier.neighbors, 16, "kept from the preset");
    assert!(!config.generation.enabled);

    let switched = PipelineConfig::from_toml_str(
        "preset = \"g3\"\n[generation.generator]\nkind = \"openai\"\nmodel = \"llava\"\n",
    )
    .unwrap();
    let GeneratorConfig::OpenAi(openai) = switched.generation.generator else {
        panic!()
    };
    assert_eq!(openai.model, "llava");
    assert_eq!(
        openai.max_concurrency, 8,
        "a new kind starts from its own defaults"
    );
}

#[test]
fn config_mistakes_are_named() {
    let error = PipelineConfig::from_toml_str("preset = \"g4\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("g3-no-align"), "{error}");
    let error = PipelineConfig::from_toml_str("[pool]\nretrieved = 3\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("retrieved"), "{error}");
    let error = PipelineConfig::from_toml_str("seed = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("seed"), "{error}");
}

#[test]
fn missing_files_are_listed_together_with_how_to_get_them() {
    let mut config = Preset::G3.config();
    config.models.g3_checkpoint = "/nonexistent/g3.pth".into();
    config.models.clip = "/nonexistent/clip".into();
    let missing = config.missing_files();
    let text: Vec<String> = missing.iter().map(ToString::to_string).collect();
    assert_eq!(missing.len(), 2, "{text:#?}");
    assert!(text[0].contains("g3.pth") && text[0].contains("Jia-py/G3-checkpoint"));
    assert!(text[1].contains("database") && text[1].contains("g3 index build"));
    let error = config.build(&mut |_| {}).unwrap_err().to_string();
    assert!(
        error.contains("missing") && error.contains("g3.pth"),
        "{error}"
    );
}

#[test]
fn single_settings_are_replaced_by_dotted_keys() {
    let config = Preset::G3.config();
    let changed = config
        .with_setting("models.clip", "/models/clip")
        .unwrap()
        .with_setting("pool.retrieved_candidates", "3")
        .unwrap()
        .with_setting("database", "db")
        .unwrap();
    assert_eq!(changed.models.clip, "/models/clip");
    assert_eq!(changed.pool.retrieved_candidates, 3);
    assert_eq!(changed.database, Some("db".into()));
    let error = config
        .with_setting("pool.retrieved", "3")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("--set pool.retrieved=3") && error.contains("retrieved"),
        "{error}"
    );
    let error = config.with_setting("seed", "x").unwrap_err().to_string();
    assert!(error.contains("seed"), "{error}");
}

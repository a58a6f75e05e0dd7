//! The OpenAI-compatible client against the loopback mock server: latency, 429 with
//! Retry-After, 500s, hangs, malformed JSON, fewer choices than `n`, wrong keys, the
//! response cache, and a run killed halfway and resumed. No test touches the network.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use g3_core::{AnswerParser, ImageDetail, ImageInput, LmmGenerator, LossCause, PromptRequest};
use g3_prompt::mock::{InjectedFailure, MockBehaviour, MockChatServer};
use g3_prompt::{
    LmmClientError, LmmJob, LmmJobOutcome, OpenAiConfig, OpenAiGenerator, ResponseCache,
    RetryPolicy, RobustAnswerParser, TokenPrices,
};

const SAMPLES: u32 = 5;

fn prompt(job: usize, prompt_index: usize) -> PromptRequest {
    PromptRequest {
        prompt_index,
        text: format!("Where was photo {job} taken? Variant {prompt_index}."),
        samples: SAMPLES,
        temperature: 1.2,
        max_tokens: 200,
        image_detail: ImageDetail::Low,
        similar: Vec::new(),
        dissimilar: Vec::new(),
    }
}

/// `images` jobs of four prompts each, with distinct (fake JPEG) images.
fn workload(images: usize) -> Vec<LmmJob> {
    (0..images)
        .map(|job| {
            let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
            bytes.extend_from_slice(&(job as u64).to_le_bytes());
            LmmJob {
                image: ImageInput::from_bytes(format!("photo-{job}.jpg"), bytes),
                prompts: (0..4).map(|index| prompt(job, index)).collect(),
            }
        })
        .collect()
}

/// A client tuned for tests: fast retries, short timeouts.
fn config(server: &MockChatServer, max_concurrency: usize) -> OpenAiConfig {
    OpenAiConfig {
        max_concurrency,
        request_timeout_secs: 2.0,
        retry: RetryPolicy {
            max_retries: 8,
            initial_backoff_ms: 20,
            max_backoff_ms: 200,
            ..RetryPolicy::default()
        },
        ..OpenAiConfig::local(server.base_url(), "mock-llava")
    }
}

/// Every sample of every prompt is present, in order, and parses to the mock's location.
fn assert_complete_and_correct(jobs: &[LmmJob], outcomes: &[LmmJobOutcome]) {
    assert_eq!(outcomes.len(), jobs.len());
    for (job, outcome) in jobs.iter().zip(outcomes) {
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        let expected_order: Vec<(usize, u32)> = job
            .prompts
            .iter()
            .flat_map(|prompt| (0..prompt.samples).map(move |s| (prompt.prompt_index, s)))
            .collect();
        let order: Vec<(usize, u32)> = outcome
            .answers
            .iter()
            .map(|answer| (answer.prompt_index, answer.sample_index))
            .collect();
        assert_eq!(order, expected_order);
        for answer in &outcome.answers {
            let point = RobustAnswerParser.parse(&answer.text).unwrap();
            let expected =
                MockChatServer::expected_location(&job.prompts[answer.prompt_index].text);
            assert_eq!((point.lat_deg(), point.lon_deg()), expected);
        }
    }
}

#[test]
fn prompts_are_answered_concurrently_in_order() {
    let server = MockChatServer::start(MockBehaviour {
        latency: Duration::from_millis(100),
        ..MockBehaviour::default()
    })
    .unwrap();
    let jobs = workload(4);
    let generator = OpenAiGenerator::new(config(&server, 16)).unwrap();
    let started = Instant::now();
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    let elapsed = started.elapsed();
    assert_complete_and_correct(&jobs, &outcomes);
    // One request per prompt with n = 5.
    let log = server.log();
    assert_eq!(log.requests_received, 16);
    assert!(log.requested_n.iter().all(|&n| n == SAMPLES));
    // 16 requests of 100 ms at concurrency 16 overlap; in sequence they would take 1.6 s.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[test]
fn the_trait_method_answers_one_image() {
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let jobs = workload(1);
    let generator = OpenAiGenerator::new(config(&server, 4)).unwrap();
    let generated = generator
        .generate(&jobs[0].image, &jobs[0].prompts)
        .unwrap();
    assert_eq!(generated.answers.len(), 4 * SAMPLES as usize);
    assert!(generated.lost.is_empty());
    let description = generator.describe();
    assert!(description.asks_model && description.name.contains("mock-llava"));
}

#[test]
fn server_errors_and_malformed_json_are_retried() {
    let server = MockChatServer::start(MockBehaviour {
        failure_rate: 0.5,
        failures: vec![
            InjectedFailure::ServerError,
            InjectedFailure::MalformedJson,
            InjectedFailure::RateLimited {
                retry_after_seconds: None,
                retry_after_ms: Some(10),
            },
        ],
        seed: 7,
        ..MockBehaviour::default()
    })
    .unwrap();
    let jobs = workload(10);
    let generator = OpenAiGenerator::new(config(&server, 8)).unwrap();
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    assert_complete_and_correct(&jobs, &outcomes);
    let usage = generator.usage();
    let log = server.log();
    assert!(log.failures_injected > 5, "{log:?}");
    assert_eq!(usage.retries.total() as usize, log.failures_injected);
    let retries = usage.retries;
    assert!(
        retries.server_error > 0 && retries.malformed_response > 0 && retries.rate_limited > 0,
        "every injected kind is counted under its own cause: {retries:?}"
    );
    assert_eq!(usage.requests_sent as usize, log.requests_received);
    assert_eq!(usage.samples_received, 40 * SAMPLES as u64);
    assert_eq!(usage.failed_requests, 0);
}

#[test]
fn retry_after_in_seconds_is_honoured() {
    let server = MockChatServer::start(MockBehaviour {
        failure_rate: 1.0,
        failures: vec![InjectedFailure::RateLimited {
            retry_after_seconds: Some(1),
            retry_after_ms: None,
        }],
        ..MockBehaviour::default()
    })
    .unwrap();
    let mut config = config(&server, 1);
    config.retry.max_retries = 1;
    let generator = OpenAiGenerator::new(config).unwrap();
    let jobs = &workload(1)[..1];
    let jobs = [LmmJob {
        prompts: jobs[0].prompts[..1].to_vec(),
        ..jobs[0].clone()
    }];
    let started = Instant::now();
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    let elapsed = started.elapsed();
    // Two attempts, one second apart as the server asked (the backoff alone is 10-20 ms).
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(server.log().requests_received, 2);
    let failure = &outcomes[0].failures[0];
    assert_eq!(failure.missing_samples, SAMPLES);
    let message = failure.error.to_string();
    assert!(
        message.contains("2 attempts") && message.contains("429"),
        "{message}"
    );
    assert!(outcomes[0].answers.is_empty());
    assert_eq!(generator.usage().samples_missing, SAMPLES as u64);
}

#[test]
fn retry_after_ms_is_honoured() {
    let server = MockChatServer::start(MockBehaviour {
        failure_rate: 1.0,
        failures: vec![InjectedFailure::RateLimited {
            retry_after_seconds: Some(30),
            retry_after_ms: Some(400),
        }],
        ..MockBehaviour::default()
    })
    .unwrap();
    let mut config = config(&server, 1);
    config.retry.max_retries = 2;
    let generator = OpenAiGenerator::new(config).unwrap();
    let job = LmmJob {
        prompts: vec![prompt(0, 0)],
        ..workload(1).remove(0)
    };
    let started = Instant::now();
    let outcomes = generator.generate_many(&[job], &|_| {}).unwrap();
    let elapsed = started.elapsed();
    // Two waits of 400 ms (retry-after-ms wins over the 30 s Retry-After).
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert_eq!(outcomes[0].failures.len(), 1);
}

#[test]
fn hung_requests_time_out_and_are_retried() {
    let server = MockChatServer::start(MockBehaviour {
        failure_rate: 0.3,
        failures: vec![InjectedFailure::Hang],
        seed: 3,
        ..MockBehaviour::default()
    })
    .unwrap();
    let mut config = config(&server, 8);
    config.request_timeout_secs = 0.5;
    let generator = OpenAiGenerator::new(config).unwrap();
    let jobs = workload(4);
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    assert_complete_and_correct(&jobs, &outcomes);
    let log = server.log();
    assert!(log.failures_injected > 0, "{log:?}");
    assert_eq!(
        generator.usage().retries.total() as usize,
        log.failures_injected
    );
}

#[test]
fn a_server_that_ignores_n_gets_one_request_per_sample() {
    let server = MockChatServer::start(MockBehaviour {
        max_choices: Some(1),
        ..MockBehaviour::default()
    })
    .unwrap();
    let generator = OpenAiGenerator::new(config(&server, 1)).unwrap();
    let jobs = workload(2);
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    assert_complete_and_correct(&jobs, &outcomes);
    // The first request asks for 5 and gets 1; every later one asks for 1.
    let log = server.log();
    assert_eq!(log.requested_n[0], SAMPLES);
    assert!(
        log.requested_n[1..].iter().all(|&n| n == 1),
        "{:?}",
        log.requested_n
    );
    assert_eq!(log.requests_received, 8 * SAMPLES as usize);
}

#[test]
fn choices_beyond_the_limit_are_topped_up() {
    // A server that caps n at 2 (and so never reveals it ignores n entirely).
    let server = MockChatServer::start(MockBehaviour {
        max_choices: Some(2),
        ..MockBehaviour::default()
    })
    .unwrap();
    let generator = OpenAiGenerator::new(config(&server, 1)).unwrap();
    let job = LmmJob {
        prompts: vec![prompt(0, 0)],
        ..workload(1).remove(0)
    };
    let outcomes = generator.generate_many(&[job], &|_| {}).unwrap();
    assert_eq!(outcomes[0].answers.len(), SAMPLES as usize);
    assert_eq!(server.log().requested_n, [5, 1, 1, 1]);
}

#[test]
fn refused_credentials_stop_the_run() {
    let server = MockChatServer::start(MockBehaviour {
        required_api_key: Some("sk-right".into()),
        ..MockBehaviour::default()
    })
    .unwrap();
    let generator =
        OpenAiGenerator::with_api_key(config(&server, 2), Some("sk-wrong".into())).unwrap();
    let error = generator.generate_many(&workload(20), &|_| {}).unwrap_err();
    assert!(
        matches!(error, LmmClientError::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert!(!error.to_string().contains("sk-wrong"));
    // Both workers stop at their first refusal instead of trying 80 prompts.
    assert!(server.log().unauthorized <= 2, "{:?}", server.log());
    // The next run with the same generator fails the same way (it does not silently
    // return nothing).
    let again = generator.generate_many(&workload(1), &|_| {}).unwrap_err();
    assert!(
        matches!(again, LmmClientError::Unauthorized { .. }),
        "{again}"
    );

    let right = OpenAiGenerator::with_api_key(config(&server, 2), Some("sk-right".into())).unwrap();
    let jobs = workload(1);
    assert_complete_and_correct(&jobs, &right.generate_many(&jobs, &|_| {}).unwrap());
}

/// What the trait method reports for one image of four prompts against `server`'s
/// behaviour: every sample lost, each prompt with `cause`.
fn assert_all_lost(generator: &OpenAiGenerator, cause: LossCause, message_part: &str) {
    let jobs = workload(1);
    let generated = generator
        .generate(&jobs[0].image, &jobs[0].prompts)
        .unwrap();
    assert!(generated.answers.is_empty(), "{generated:?}");
    assert_eq!(generated.lost.len(), 4, "{generated:?}");
    assert_eq!(generated.lost_samples(), 4 * SAMPLES as u64);
    for lost in &generated.lost {
        assert_eq!(lost.cause, cause, "{lost:?}");
        assert!(lost.message.contains(message_part), "{lost:?}");
    }
    assert_eq!(
        generator.usage().samples_missing,
        generated.lost_samples(),
        "the usage report counts the same lost samples"
    );
}

#[test]
fn the_trait_reports_refused_credentials_as_lost_answers() {
    let server = MockChatServer::start(MockBehaviour {
        required_api_key: Some("sk-right".into()),
        ..MockBehaviour::default()
    })
    .unwrap();
    let generator =
        OpenAiGenerator::with_api_key(config(&server, 2), Some("sk-wrong".into())).unwrap();
    assert_all_lost(&generator, LossCause::Unauthorized, "HTTP 401");
}

#[test]
fn an_unknown_model_is_lost_without_retries() {
    let server = MockChatServer::start(MockBehaviour {
        known_models: Some(vec!["llava".into()]),
        ..MockBehaviour::default()
    })
    .unwrap();
    let generator = OpenAiGenerator::new(config(&server, 4)).unwrap();
    assert_all_lost(&generator, LossCause::NotFound, "does not exist");
    assert_eq!(server.log().requests_received, 4, "404 is never retried");
    assert_eq!(generator.usage().retries.total(), 0);
}

#[test]
fn an_exhausted_quota_is_lost_without_retries() {
    let server = MockChatServer::start(MockBehaviour {
        failure_rate: 1.0,
        failures: vec![InjectedFailure::QuotaExhausted],
        ..MockBehaviour::default()
    })
    .unwrap();
    let generator = OpenAiGenerator::new(config(&server, 4)).unwrap();
    assert_all_lost(&generator, LossCause::QuotaExhausted, "quota");
    assert_eq!(
        server.log().requests_received,
        4,
        "no retry brings credit back"
    );
}

#[test]
fn a_server_that_is_down_is_unreachable_after_the_retries() {
    // A port that was just free: nothing listens there, so connections are refused.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = OpenAiConfig::local(format!("http://{address}/v1"), "llava");
    config.retry = RetryPolicy {
        max_retries: 2,
        initial_backoff_ms: 1,
        max_backoff_ms: 2,
        ..RetryPolicy::default()
    };
    let generator = OpenAiGenerator::new(config).unwrap();
    assert_all_lost(&generator, LossCause::Unreachable, &address.to_string());
    let usage = generator.usage();
    assert_eq!(usage.requests_sent, 4 * 3, "each prompt tried three times");
    assert_eq!(usage.retries.connection, 4 * 2);
    assert_eq!(usage.failed_requests, 4);
}

#[test]
fn answers_before_a_failure_are_kept_and_the_rest_is_lost() {
    // Two of the five choices, then HTTP 500 for every later request.
    let server = MockChatServer::start(MockBehaviour {
        max_choices: Some(2),
        stop_answering_after: Some(1),
        then_fail_with: Some(InjectedFailure::ServerError),
        ..MockBehaviour::default()
    })
    .unwrap();
    let mut config = config(&server, 1);
    config.retry.max_retries = 1;
    let generator = OpenAiGenerator::new(config).unwrap();
    let jobs = workload(1);
    let generated = generator
        .generate(&jobs[0].image, &jobs[0].prompts[..1])
        .unwrap();
    assert_eq!(generated.answers.len(), 2);
    assert_eq!(generated.lost.len(), 1);
    assert_eq!(generated.lost[0].samples, SAMPLES - 2);
    assert_eq!(generated.lost[0].cause, LossCause::RetriesExhausted);
    assert!(generated.lost[0].message.contains("HTTP 500"));
}

#[test]
fn tokens_and_cost_are_accounted() {
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let mut config = config(&server, 4);
    config.prices = TokenPrices {
        input_per_million: 2.5,
        output_per_million: 10.0,
    };
    let generator = OpenAiGenerator::new(config).unwrap();
    let jobs = workload(3);
    generator.generate_many(&jobs, &|_| {}).unwrap();
    // The mock bills 85 + len/4 prompt tokens and 12 per choice.
    let prompt_tokens: u64 = jobs
        .iter()
        .flat_map(|job| &job.prompts)
        .map(|prompt| 85 + prompt.text.len() as u64 / 4)
        .sum();
    let usage = generator.usage();
    assert_eq!(usage.prompt_tokens, prompt_tokens);
    assert_eq!(usage.completion_tokens, 12 * 12 * SAMPLES as u64);
    let cost = (prompt_tokens as f64 * 2.5 + 720.0 * 10.0) / 1e6;
    assert!((usage.cost.unwrap() - cost).abs() < 1e-12);
}

#[test]
fn the_pace_limits_requests_per_minute() {
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let mut config = config(&server, 8);
    config.requests_per_minute = Some(600); // one every 100 ms
    let generator = OpenAiGenerator::new(config).unwrap();
    let jobs = workload(3); // 12 requests
    let started = Instant::now();
    generator.generate_many(&jobs, &|_| {}).unwrap();
    // The first goes at once, the other 11 wait 100 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(1050),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn cached_answers_are_never_requested_again() {
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("answers.redb");
    let jobs = workload(3);

    let first = OpenAiGenerator::new(config(&server, 4))
        .unwrap()
        .with_cache(ResponseCache::open(&path).unwrap());
    let first_outcomes = first.generate_many(&jobs, &|_| {}).unwrap();
    assert_eq!(server.log().requests_received, 12);
    drop(first);

    let second = OpenAiGenerator::new(config(&server, 4))
        .unwrap()
        .with_cache(ResponseCache::open(&path).unwrap());
    let second_outcomes = second.generate_many(&jobs, &|_| {}).unwrap();
    assert_eq!(server.log().requests_received, 12, "nothing new was sent");
    assert_eq!(second.usage().samples_from_cache, 60);
    assert_complete_and_correct(&jobs, &second_outcomes);
    for (a, b) in first_outcomes.iter().zip(&second_outcomes) {
        assert_eq!(a.answers, b.answers);
    }

    // Without the cache (`--no-cache`), everything is asked again.
    let uncached = OpenAiGenerator::new(config(&server, 4)).unwrap();
    uncached.generate_many(&jobs, &|_| {}).unwrap();
    assert_eq!(server.log().requests_received, 24);
}

#[test]
fn a_changed_setting_misses_the_cache() {
    let server = MockChatServer::start(MockBehaviour::default()).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let cache = ResponseCache::open(directory.path().join("answers.redb")).unwrap();
    let mut jobs = workload(1);
    jobs[0].prompts.truncate(1);
    let generator = OpenAiGenerator::new(config(&server, 1))
        .unwrap()
        .with_cache(cache);
    generator.generate_many(&jobs, &|_| {}).unwrap();
    jobs[0].prompts[0].temperature = 0.7;
    generator.generate_many(&jobs, &|_| {}).unwrap();
    jobs[0].prompts[0].samples = 7; // samples 5 and 6 are new
    generator.generate_many(&jobs, &|_| {}).unwrap();
    assert_eq!(server.log().requested_n, [5, 5, 2]);
}

/// The acceptance workload: 1,000 requests (250 images × 4 prompts, n = 5) at concurrency
/// 32 against 200 ms latency and 10% injected failures.
fn acceptance_behaviour() -> MockBehaviour {
    MockBehaviour {
        latency: Duration::from_millis(200),
        failure_rate: 0.1,
        seed: 2024,
        ..MockBehaviour::default()
    }
}

fn acceptance_config(base_url: String) -> OpenAiConfig {
    OpenAiConfig {
        retry: RetryPolicy {
            max_retries: 8,
            initial_backoff_ms: 50,
            max_backoff_ms: 1000,
            ..RetryPolicy::default()
        },
        max_concurrency: 32,
        request_timeout_secs: 3.0,
        ..OpenAiConfig::local(base_url, "mock-llava")
    }
}

#[test]
fn a_thousand_requests_at_concurrency_32_all_complete() {
    let server = MockChatServer::start(acceptance_behaviour()).unwrap();
    let jobs = workload(250);
    let generator = OpenAiGenerator::new(acceptance_config(server.base_url())).unwrap();
    let started = Instant::now();
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    let wall = started.elapsed();
    assert_complete_and_correct(&jobs, &outcomes);
    let log = server.log();
    assert_eq!(log.requests_answered, 1000);
    assert!(
        log.choices_served
            .values()
            .all(|&choices| choices == SAMPLES)
    );
    let usage = generator.usage();
    assert_eq!(usage.requests_sent as usize, log.requests_received);
    // Reported, not asserted: speed lives in benches/lmm_client.rs.
    let ideal = 1000.0 * 0.2 / 32.0;
    eprintln!(
        "1,000 requests, {} failures injected and retried: wall {:.2} s = {:.3} x ideal ({ideal} s)",
        log.failures_injected,
        wall.as_secs_f64(),
        wall.as_secs_f64() / ideal
    );
}

const CHILD_BASE_URL: &str = "G3_TEST_MOCK_BASE_URL";
const CHILD_CACHE: &str = "G3_TEST_MOCK_CACHE";

/// The child half of `a_killed_run_resumes_without_asking_twice`: the acceptance workload
/// with a cache, in a process the parent kills halfway.
fn run_child_workload(base_url: String) -> ! {
    let cache = std::env::var(CHILD_CACHE).expect("set by the parent");
    let generator = OpenAiGenerator::new(acceptance_config(base_url))
        .unwrap()
        .with_cache(ResponseCache::open(cache).unwrap());
    generator.generate_many(&workload(250), &|_| {}).unwrap();
    unreachable!("the parent kills this process before the server answers everything");
}

#[test]
fn a_killed_run_resumes_without_asking_twice() {
    // The test binary runs this test again as the child process to kill.
    if let Ok(base_url) = std::env::var(CHILD_BASE_URL) {
        run_child_workload(base_url);
    }
    let directory = tempfile::tempdir().unwrap();
    let cache_path = directory.path().join("answers.redb");
    let first_server = MockChatServer::start(MockBehaviour {
        stop_answering_after: Some(500),
        ..acceptance_behaviour()
    })
    .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_run_resumes_without_asking_twice",
            "--nocapture",
        ])
        .env(CHILD_BASE_URL, first_server.base_url())
        .env(CHILD_CACHE, &cache_path)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first_server.log().requests_answered < 500 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child run ended early: {status}");
        }
        assert!(Instant::now() < deadline, "{:?}", first_server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every answered request has reached the client; give it time to commit them, with
    // the rest of its requests hanging, then kill it (SIGKILL: no destructor runs).
    std::thread::sleep(Duration::from_secs(1));
    child.kill().unwrap();
    child.wait().unwrap();
    let first_log = first_server.log();
    drop(first_server);
    assert_eq!(first_log.requests_answered, 500);

    let second_server = MockChatServer::start(acceptance_behaviour()).unwrap();
    let generator = OpenAiGenerator::new(acceptance_config(second_server.base_url()))
        .unwrap()
        .with_cache(ResponseCache::open(&cache_path).unwrap());
    let jobs = workload(250);
    let outcomes = generator.generate_many(&jobs, &|_| {}).unwrap();
    assert_complete_and_correct(&jobs, &outcomes);

    let second_log = second_server.log();
    let answered_first: HashSet<&String> = first_log.choices_served.keys().collect();
    let asked_second: HashSet<&String> = second_log.prompts_received.keys().collect();
    assert_eq!(answered_first.len(), 500);
    assert_eq!(asked_second.len(), 500);
    assert!(
        answered_first.is_disjoint(&asked_second),
        "a prompt answered before the kill was asked again"
    );
    assert_eq!(generator.usage().samples_from_cache, 500 * SAMPLES as u64);
    assert_eq!(second_log.requests_answered, 500);
}

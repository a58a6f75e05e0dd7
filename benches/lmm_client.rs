//! The LMM client's wall time on the load: 1,000 chat-completion requests
//! (250 images × 4 prompts, n = 5) at concurrency 32 against the loopback mock server with
//! 200 ms latency and 10% injected failures (500s, 429s with `retry-after-ms: 50`,
//! malformed JSON), every failure retried.
//!
//! Run with `cargo bench --bench lmm_client`. The ideal is 1,000 × 0.2 s / 32 = 6.25 s; the
//! retried failures alone add about 10% of requests, so 1.1 × ideal is the floor. The bench
//! prints each run's wall time as a multiple of the ideal.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use g3_core::{ImageDetail, ImageInput, PromptRequest};
use g3_prompt::mock::{MockBehaviour, MockChatServer};
use g3_prompt::{LmmJob, OpenAiConfig, OpenAiGenerator, RetryPolicy};

const IDEAL_SECONDS: f64 = 1000.0 * 0.2 / 32.0;

fn workload() -> Vec<LmmJob> {
    (0..250u64)
        .map(|job| {
            let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
            bytes.extend_from_slice(&job.to_le_bytes());
            LmmJob {
                image: ImageInput::from_bytes(format!("photo-{job}.jpg"), bytes),
                prompts: (0..4)
                    .map(|prompt_index| PromptRequest {
                        prompt_index,
                        text: format!("Where was photo {job} taken? Variant {prompt_index}."),
                        samples: 5,
                        temperature: 1.2,
                        max_tokens: 200,
                        image_detail: ImageDetail::Low,
                        similar: Vec::new(),
                        dissimilar: Vec::new(),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn thousand_requests(criterion: &mut Criterion) {
    let jobs = workload();
    let walls = Mutex::new(Vec::new());
    let mut group = criterion.benchmark_group("lmm_client");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(60));
    group.bench_function(
        "1000_requests_concurrency_32_latency_200ms_10pct_failures",
        |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let server = MockChatServer::start(MockBehaviour {
                        latency: Duration::from_millis(200),
                        failure_rate: 0.1,
                        seed: 2024,
                        ..MockBehaviour::default()
                    })
                    .expect("the mock server starts");
                    let generator = OpenAiGenerator::new(OpenAiConfig {
                        max_concurrency: 32,
                        retry: RetryPolicy {
                            max_retries: 8,
                            initial_backoff_ms: 50,
                            max_backoff_ms: 1000,
                            ..RetryPolicy::default()
                        },
                        ..OpenAiConfig::local(server.base_url(), "mock-llava")
                    })
                    .expect("a valid config");
                    let started = Instant::now();
                    let outcomes = generator
                        .generate_many(&jobs, &|_| {})
                        .expect("no fatal error");
                    let wall = started.elapsed();
                    assert!(outcomes.iter().all(|outcome| outcome.failures.is_empty()));
                    walls.lock().unwrap().push(wall.as_secs_f64());
                    total += wall;
                }
                total
            });
        },
    );
    group.finish();
    let walls = walls.into_inner().unwrap();
    let mean = walls.iter().sum::<f64>() / walls.len() as f64;
    let worst = walls.iter().cloned().fold(0.0, f64::max);
    println!(
        "wall over {} runs: mean {mean:.2} s = {:.3} x ideal, worst {worst:.2} s = {:.3} x ideal ({IDEAL_SECONDS} s)",
        walls.len(),
        mean / IDEAL_SECONDS,
        worst / IDEAL_SECONDS,
    );
}

criterion_group!(benches, thousand_requests);
criterion_main!(benches);

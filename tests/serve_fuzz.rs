//! Untrusted uploads through `g3::serve`'s router, in-process: thousands of mutated JPEG,
//! PNG, WebP and GIF files (truncated, bit-flipped, with headers that lie about the size or
//! the format), sent as bodies and as multipart forms. Every answer must be 200 or a 4xx
//! with a message: no panic, no crash of the C JPEG decoder, no 5xx, and memory stays
//! bounded (a header claiming a huge image is refused before decoding).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use g3::Preset;
use g3::align::ImageEmbeddingKind;
use g3::serve::{ServeLimits, router};
use support::{build_database, fixture};
use tower::ServiceExt;

/// Mutated uploads per seed file.
const MUTATIONS_PER_SEED: usize = 600;

const SEEDS: [&str; 5] = [
    "upscale.jpg",
    "palette.png",
    "lossless.webp",
    "palette.gif",
    "narrow.png",
];

/// One mutation of `seed`: what a careless or hostile client might send.
fn mutate(seed: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.u8(0..6) {
        // Truncated anywhere, often inside the header.
        0 => bytes.truncate(rng.usize(0..bytes.len())),
        // A few flipped bits anywhere.
        1 => {
            for _ in 0..rng.usize(1..16) {
                let at = rng.usize(0..bytes.len());
                bytes[at] ^= 1 << rng.u8(0..8);
            }
        }
        // The header overwritten: sizes that lie (0xFF... is a huge width or height).
        2 => {
            let end = bytes.len().min(64);
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(0..end);
                bytes[at] = if rng.bool() { 0xFF } else { rng.u8(..) };
            }
        }
        // Another format's magic in front of this one's body.
        3 => {
            let magic: &[u8] = match rng.u8(0..4) {
                0 => b"\xFF\xD8\xFF\xE0",
                1 => b"\x89PNG\r\n\x1a\n",
                2 => b"GIF89a",
                _ => b"RIFF\0\0\0\0WEBPVP8 ",
            };
            bytes.splice(0..magic.len().min(bytes.len()), magic.iter().copied());
        }
        // A chunk of the middle repeated or cut out.
        4 => {
            let start = rng.usize(0..bytes.len());
            let end = rng.usize(start..bytes.len());
            if rng.bool() {
                let copy = bytes[start..end].to_vec();
                bytes.splice(end..end, copy);
            } else {
                bytes.drain(start..end);
            }
        }
        // Random garbage of the file's size.
        _ => bytes.iter_mut().for_each(|byte| *byte = rng.u8(..)),
    }
    bytes
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[test]
fn mutated_uploads_get_a_clear_answer_and_never_crash_the_server() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("g3.db");
    build_database(ImageEmbeddingKind::Database, &database);
    // G3 with the offline generator: no LMM, every stage of the pipeline runs.
    let mut config = Preset::G3.config();
    config.models.clip = fixture("model").to_string_lossy().into_owned();
    config.models.g3_checkpoint = fixture("g3.pth").to_string_lossy().into_owned();
    config.database = Some(database);
    let pipeline = config.build(&mut |_| {}).unwrap();
    let limits = ServeLimits {
        max_upload_bytes: 1 << 20,
        image: g3::core::ImageLimits {
            max_side: 4096,
            ..g3::core::ImageLimits::default()
        },
        workers: 2,
        queue: 64,
        ..ServeLimits::default()
    };
    let app = router(pipeline, None, &limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut rng = fastrand::Rng::with_seed(29);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let before = peak_rss_mib();
    for seed_name in SEEDS {
        let seed = std::fs::read(fixture("images").join(seed_name)).unwrap();
        for case in 0..MUTATIONS_PER_SEED {
            let upload = mutate(&seed, &mut rng);
            let request = if case % 5 == 0 {
                // As the page sends it: a multipart form with a `photo` file.
                let boundary = "g3fuzzboundary";
                let mut body = format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{seed_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .into_bytes();
                body.extend_from_slice(&upload);
                body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
                Request::post("/v1/locate")
                    .header(
                        header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(Body::from(body))
                    .unwrap()
            } else {
                Request::post("/v1/locate")
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(Body::from(upload))
                    .unwrap()
            };
            let response = runtime
                .block_on(app.clone().oneshot(request))
                .expect("the router answers every request");
            let status = response.status();
            let body = runtime
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 24))
                .unwrap();
            *statuses.entry(status.as_u16()).or_default() += 1;
            assert!(
                status == StatusCode::OK || status.is_client_error(),
                "{seed_name} mutation {case}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "{seed_name} mutation {case}: {status} answered no JSON: {}",
                    String::from_utf8_lossy(&body)
                )
            });
            if status == StatusCode::OK {
                assert!(answer["prediction"]["location"].is_object(), "{answer}");
            } else {
                let message = answer["error"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{status} without a message: {answer}");
            }
        }
    }
    eprintln!("answers by status: {statuses:?}");
    // Both outcomes were exercised: some mutations still decode, most are refused.
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.keys().any(|&status| status >= 400), "{statuses:?}");
    // Memory bounded: a 1 MiB upload cannot make the server hold a gigapixel image.
    if let (Some(before), Some(after)) = (before, peak_rss_mib()) {
        assert!(
            after < before + 1024,
            "peak memory grew from {before} MiB to {after} MiB"
        );
    }
}

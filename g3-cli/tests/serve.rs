//! `g3 serve` on the tiny fixture models with the mock LMM: the JSON of `POST /v1/locate`,
//! concurrent requests, uploads refused with a status and a message (too large, not an
//! image, too many pixels, empty), a full queue answering 503, a slow request 504, and the
//! page's files.

mod support;

use std::time::Duration;

use g3::prompt::mock::{MockBehaviour, MockChatServer};
use support::fixture;
use support::serve::{agent, post, serve, write_config};

fn get(base: &str, path: &str) -> (u16, String) {
    let mut response = agent().get(&format!("{base}{path}")).call().unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The CRC-32 of PNG chunks (IEEE, reflected), so that a doctored header stays valid.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(fixture("images").join(name)).unwrap()
}

#[test]
fn locates_concurrent_uploads_and_serves_the_page() {
    let directory = tempfile::tempdir().unwrap();
    let lmm = MockChatServer::start(MockBehaviour::default()).unwrap();
    let config = write_config(directory.path(), &lmm.base_url());
    let server = serve(&config, &["--workers", "2", "--queue", "8"]);

    let names = ["landscape.jpg", "cmyk.jpg", "portrait.png", "lossless.webp"];
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let base = server.base.clone();
                scope.spawn(move || post(&base, &photo(name), "application/octet-stream"))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    for ((status, answer), name) in answers.iter().zip(names) {
        assert_eq!(*status, 200, "{name}: {answer}");
        let prediction = &answer["prediction"];
        let candidates = prediction["candidates"].as_array().unwrap();
        assert_eq!(
            candidates.len(),
            21,
            "{name}: 20 generated and the retrieved top 1"
        );
        let chosen = prediction["chosen"].as_u64().unwrap() as usize;
        assert_eq!(prediction["location"], candidates[chosen]["location"]);
        assert!(
            candidates
                .iter()
                .all(|c| c["source"]["kind"].is_string() && c["score"].is_number())
        );
        assert!(
            !answer["place"]["country"].as_str().unwrap().is_empty(),
            "{answer}"
        );
        assert!(answer["timings"]["total_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(answer["generator"]["asks_model"], true);
        assert!(answer["generation"]["answers_obtained"].as_u64().unwrap() >= 20);
    }
    // The same photo gives the same prediction, as a raw body or as a form.
    let boundary = "g3testboundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"landscape.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    form.extend(photo("landscape.jpg"));
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let (status, answer) = post(
        &server.base,
        &form,
        &format!("multipart/form-data; boundary={boundary}"),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["prediction"]["location"],
        answers[0].1["prediction"]["location"]
    );

    let (status, body) = get(&server.base, "/healthz");
    assert_eq!((status, body.contains("ok")), (200, true));
    let (status, page) = get(&server.base, "/");
    assert_eq!(status, 200);
    assert!(
        page.contains("app.js") && page.contains("id=\"map\""),
        "{page}"
    );
    for path in ["/app.js", "/style.css", "/world-110m.path"] {
        assert_eq!(get(&server.base, path).0, 200, "{path}");
    }
    // Nothing else is served, and no request reaches the file system.
    for path in [
        "/Cargo.toml",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/web/app.js",
    ] {
        assert_eq!(get(&server.base, path).0, 404, "{path}");
    }
}

#[test]
fn bad_uploads_are_refused_with_a_status_and_a_message() {
    let directory = tempfile::tempdir().unwrap();
    let lmm = MockChatServer::start(MockBehaviour::default()).unwrap();
    let config = write_config(directory.path(), &lmm.base_url());
    let server = serve(
        &config,
        &["--max-upload-mib", "1", "--max-image-side", "4000"],
    );
    let refused = |body: &[u8], status: u16, words: &str| {
        let (found, answer) = post(&server.base, body, "application/octet-stream");
        assert_eq!(found, status, "{answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    };
    refused(
        &vec![0xFFu8; 2 << 20],
        413,
        "larger than the server accepts",
    );
    refused(b"hello, not a photo", 415, "not an image");
    refused(b"", 400, "empty");
    // A PNG whose header declares 20000 x 20000 pixels: refused before decoding.
    let mut huge = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut huge);
    image::ImageEncoder::write_image(encoder, &[0u8; 3], 1, 1, image::ExtendedColorType::Rgb8)
        .unwrap();
    huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let checksum = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&checksum.to_be_bytes());
    refused(&huge, 422, "at most 4000");
    // A PNG whose header is fine but whose pixel data is damaged: the pipeline cannot
    // decode it.
    let mut damaged = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut damaged);
    image::ImageEncoder::write_image(
        encoder,
        &[90u8; 64 * 64 * 3],
        64,
        64,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let middle = damaged.len() / 2;
    damaged[middle..middle + 8].copy_from_slice(b"garbage!");
    refused(&damaged, 422, "");
    let jpeg = photo("landscape.jpg");
    // The server is still fine.
    assert_eq!(post(&server.base, &jpeg, "image/jpeg").0, 200);
}

#[test]
fn a_full_queue_answers_503_and_a_slow_photo_504() {
    let directory = tempfile::tempdir().unwrap();
    let lmm = MockChatServer::start(MockBehaviour {
        latency: Duration::from_millis(1500),
        ..MockBehaviour::default()
    })
    .unwrap();
    let config = write_config(directory.path(), &lmm.base_url());
    let server = serve(
        &config,
        &["--workers", "1", "--queue", "0", "--timeout-seconds", "1"],
    );
    let jpeg = photo("landscape.jpg");
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| post(&server.base, &jpeg, "image/jpeg"));
        std::thread::sleep(Duration::from_millis(400));
        let (status, answer) = post(&server.base, &jpeg, "image/jpeg");
        assert_eq!(status, 503, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("busy"),
            "{answer}"
        );
        let (status, answer) = slow.join().unwrap();
        assert_eq!(status, 504, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("within 1 s"),
            "{answer}"
        );
    });
}

//! Downloading an HF CLIP model, against a loopback HTTP server that serves the fixture model.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use g3_align::pretrained::{HfClipDirectory, download_hf_model_into};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clip/model")
        .join(name)
}

/// Serves `/owner/name/resolve/main/FILE` from the fixture model directory (404 for files it
/// lacks, such as tokenizer.json) for `requests` requests; returns the endpoint URL.
fn serve(requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("");
            let file = path.strip_prefix("/tiny/clip/resolve/main/").unwrap_or("");
            match std::fs::read(fixture(file))
                .ok()
                .filter(|_| !file.is_empty())
            {
                Some(body) => {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .unwrap();
                    stream.write_all(&body).unwrap();
                }
                None => write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap(),
            }
        }
    });
    format!("http://{address}")
}

#[test]
fn downloads_an_hf_clip_model_file_by_file() {
    let endpoint = serve(4);
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("tiny--clip");
    let mut files_seen = Vec::new();
    download_hf_model_into("tiny/clip", &endpoint, None, &target, &mut |file, _, _| {
        if files_seen.last() != Some(&file.to_owned()) {
            files_seen.push(file.to_owned());
        }
    })
    .unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        assert_eq!(
            std::fs::read(target.join(file)).unwrap(),
            std::fs::read(fixture(file)).unwrap(),
            "{file}"
        );
    }
    assert!(!target.join("tokenizer.json").exists());
    assert_eq!(
        files_seen,
        [
            "config.json",
            "model.safetensors",
            "preprocessor_config.json"
        ]
    );
    // The downloaded directory opens as a model.
    HfClipDirectory::open(&target).unwrap();

    // A second call finds every file in place and asks for nothing but tokenizer.json.
    let endpoint = serve(1);
    download_hf_model_into("tiny/clip", &endpoint, None, &target, &mut |_, _, _| {}).unwrap();
}

#[test]
fn offline_the_error_says_which_files_to_place_where() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let directory = tempfile::tempdir().unwrap();
    let error = download_hf_model_into(
        "tiny/clip",
        &format!("http://127.0.0.1:{port}"),
        None,
        directory.path(),
        &mut |_, _, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("tiny/clip"), "{error}");
    assert!(error.contains("model.safetensors"), "{error}");
    assert!(
        error.contains(&directory.path().display().to_string()),
        "{error}"
    );
    assert!(
        std::fs::read_dir(directory.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing left behind"
    );
}

#[test]
fn a_missing_required_file_is_an_error() {
    let endpoint = serve(1);
    let directory = tempfile::tempdir().unwrap();
    let error = download_hf_model_into(
        "other/model",
        &endpoint,
        None,
        directory.path(),
        &mut |_, _, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("404"), "{error}");
}

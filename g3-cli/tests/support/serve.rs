//! `g3 serve` started for a test: a pipeline on the tiny models, the mock LMM, a free port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use g3::align::ImageEmbeddingKind;

use super::{build_database, fixture};

/// A running `g3 serve`, stopped when dropped.
pub struct Served {
    child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// G3 on the tiny models, the fixture database and the mock LMM at `lmm`.
pub fn write_config(directory: &Path, lmm: &str) -> PathBuf {
    let database = directory.join("g3.db");
    if !database.exists() {
        build_database(ImageEmbeddingKind::Database, &database);
    }
    let path = directory.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "preset = \"g3\"\ndatabase = \"g3.db\"\n\n[models]\nclip = \"{}\"\ng3_checkpoint = \"{}\"\n\n[generation.generator]\nkind = \"openai\"\nbase_url = \"{lmm}\"\nmodel = \"mock-lmm\"\napi_key_env = \"\"\n",
            fixture("model").display(),
            fixture("g3.pth").display()
        ),
    )
    .unwrap();
    path
}

/// Starts `g3 serve` on a free loopback port and waits until it listens.
pub fn serve(config: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(config)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("g3 serve stopped before listening")
            .unwrap();
        if let Some(address) = line.split("listening on ").nth(1) {
            break address.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, base }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build(),
    )
}

/// Posts `body` and returns (status, JSON).
///
/// A server that refuses an upload by its `Content-Length` answers before reading the body
/// and closes the connection; a client still writing the body then sees a broken pipe or a
/// reset instead of the answer, depending on timing (HTTP/1.1 without `Expect:
/// 100-continue`). Those transport errors are retried a few times, so the answer itself is
/// what the tests check.
pub fn post(base: &str, body: &[u8], content_type: &str) -> (u16, serde_json::Value) {
    let mut attempts = 0;
    let mut response = loop {
        attempts += 1;
        match agent()
            .post(&format!("{base}/v1/locate"))
            .header("Content-Type", content_type)
            .send(body)
        {
            Ok(response) => break response,
            Err(ureq::Error::Io(error))
                if attempts < 5
                    && matches!(
                        error.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) =>
            {
                continue;
            }
            Err(error) => panic!("POST {base}/v1/locate: {error}"),
        }
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

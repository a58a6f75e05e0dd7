//! An OpenAI-compatible chat-completions server on loopback with injected latency and
//! failures, to test LMM clients and whole pipelines without a network or a model.
//!
//! Every answer is the JSON G3 asks for, at a location derived from the prompt text alone
//! ([`MockChatServer::expected_location`]), so a test can check each parsed answer. The
//! server records what it was asked and what it answered ([`MockChatServer::log`]).
//!
//! The HTTP side is a small HTTP/1.1 server on `std::net` (one thread per connection,
//! keep-alive, `Content-Length` bodies), which is all a chat-completions client needs.
//! tiny_http was tried first: its connection task pool can queue a new connection behind a
//! long-lived keep-alive one, and about one request in a thousand was never read under a
//! 32-connection load, which is exactly the load these tests must measure.
//!
//! ```
//! use g3_prompt::mock::{MockBehaviour, MockChatServer};
//!
//! let server = MockChatServer::start(MockBehaviour::default()).unwrap();
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! ```

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

/// A failure the server can inject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InjectedFailure {
    /// HTTP 500 with an error body.
    ServerError,
    /// HTTP 429 with a `Retry-After` in whole seconds and/or OpenAI's `retry-after-ms`.
    RateLimited {
        /// `Retry-After: {seconds}`.
        retry_after_seconds: Option<u32>,
        /// `retry-after-ms: {milliseconds}`.
        retry_after_ms: Option<u64>,
    },
    /// Accept the request and never answer (until the server is dropped).
    Hang,
    /// HTTP 200 with a body cut off in the middle of the JSON.
    MalformedJson,
    /// HTTP 429 with OpenAI's `insufficient_quota` error: the account has no credit left.
    QuotaExhausted,
}

/// How the server behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MockBehaviour {
    /// Delay before every response, failures included (default 0).
    pub latency: Duration,
    /// Fraction of requests that fail, each with a failure drawn from `failures` (default 0).
    pub failure_rate: f64,
    /// Failures to draw from (default: one of each except [`InjectedFailure::Hang`]).
    pub failures: Vec<InjectedFailure>,
    /// Most choices returned per request, as servers that ignore `n` do (default: no limit).
    pub max_choices: Option<u32>,
    /// The API key requests must carry as `Authorization: Bearer ...`; others get 401.
    pub required_api_key: Option<String>,
    /// After this many successful answers, every further request hangs (or fails with
    /// [`then_fail_with`](Self::then_fail_with)): a server that stopped mid-run, for
    /// kill-and-resume tests.
    pub stop_answering_after: Option<usize>,
    /// What requests get once [`stop_answering_after`](Self::stop_answering_after) is
    /// reached (default: they hang).
    pub then_fail_with: Option<InjectedFailure>,
    /// The model names the server serves; a request for another gets HTTP 404 with
    /// OpenAI's `model_not_found` error (default: any model).
    pub known_models: Option<Vec<String>>,
    /// Seed of the failure draws.
    pub seed: u64,
}

impl Default for MockBehaviour {
    fn default() -> Self {
        MockBehaviour {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            failures: vec![
                InjectedFailure::ServerError,
                InjectedFailure::RateLimited {
                    retry_after_seconds: None,
                    retry_after_ms: Some(50),
                },
                InjectedFailure::MalformedJson,
            ],
            max_choices: None,
            required_api_key: None,
            stop_answering_after: None,
            then_fail_with: None,
            known_models: None,
            seed: 0,
        }
    }
}

/// What the server saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockLog {
    /// Requests received, whatever happened to them.
    pub requests_received: usize,
    /// Requests answered with HTTP 200 and choices.
    pub requests_answered: usize,
    /// Failures injected, of every kind.
    pub failures_injected: usize,
    /// Requests refused for a missing or wrong API key.
    pub unauthorized: usize,
    /// Per prompt text: how many requests asked it, whatever happened to them.
    pub prompts_received: HashMap<String, u32>,
    /// Per prompt text: how many choices were served for it.
    pub choices_served: HashMap<String, u32>,
    /// The `n` of every request received, in arrival order.
    pub requested_n: Vec<u32>,
    /// Requests refused for an unknown model.
    pub unknown_model: usize,
    /// The `usage.prompt_tokens` of every answer served, summed.
    pub prompt_tokens: u64,
    /// The `usage.completion_tokens` of every answer served, summed.
    pub completion_tokens: u64,
}

/// A running mock server; it stops when dropped.
pub struct MockChatServer {
    address: SocketAddr,
    state: Arc<State>,
    accept_thread: Option<JoinHandle<()>>,
}

struct State {
    behaviour: MockBehaviour,
    log: Mutex<MockLog>,
    random: Mutex<fastrand::Rng>,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for MockChatServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockChatServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl MockChatServer {
    /// Starts a server on a free loopback port.
    pub fn start(behaviour: MockBehaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            random: Mutex::new(fastrand::Rng::with_seed(behaviour.seed)),
            behaviour,
            log: Mutex::new(MockLog::default()),
            shutting_down: AtomicBool::new(false),
        });
        let accept_thread = {
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name("g3-mock-chat-server".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if state.shutting_down.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let state = Arc::clone(&state);
                        std::thread::spawn(move || serve_connection(&state, stream));
                    }
                })?
        };
        Ok(MockChatServer {
            address,
            state,
            accept_thread: Some(accept_thread),
        })
    }

    /// The base URL to configure a client with (`http://127.0.0.1:{port}/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// A copy of the log so far.
    pub fn log(&self) -> MockLog {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The location every answer to `prompt` gives: latitude in [-80, 80), longitude in
    /// [-180, 180), both with four decimals.
    pub fn expected_location(prompt: &str) -> (f64, f64) {
        let digest = Sha256::digest(prompt.as_bytes());
        let fraction = |bytes: &[u8]| {
            u32::from_le_bytes(bytes.try_into().expect("four bytes")) as f64 / 4_294_967_296.0
        };
        let round = |value: f64| (value * 1e4).floor() / 1e4;
        (
            round(-80.0 + 160.0 * fraction(&digest[0..4])),
            round(-180.0 + 360.0 * fraction(&digest[4..8])),
        )
    }
}

impl Drop for MockChatServer {
    /// Stops accepting, releases hanging requests and lets idle connections close.
    fn drop(&mut self) {
        self.state.shutting_down.store(true, Ordering::Relaxed);
        // Wake the accept loop with one last connection.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP response to write.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: String) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }
}

/// Reads requests from one connection and answers them in order until the client closes it
/// or the server shuts down.
fn serve_connection(state: &State, mut stream: TcpStream) {
    // Reads wake up regularly so that a shut-down server's idle connections end.
    if stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buffered = Vec::new();
    while let Some(request) = read_request(state, &mut stream, &mut buffered) {
        let Some(reply) = handle(state, &request) else {
            // A hang: hold the connection without answering until shutdown.
            while !state.shutting_down.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        };
        let reason = match reply.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Internal Server Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(reply.body.as_bytes()))
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
}

/// A request as the handler needs it.
struct HttpRequest {
    authorization: Option<String>,
    body: Vec<u8>,
}

/// The next request on the connection; `None` at end of stream, on errors or at shutdown.
fn read_request(
    state: &State,
    stream: &mut TcpStream,
    buffered: &mut Vec<u8>,
) -> Option<HttpRequest> {
    let mut chunk = [0u8; 16 * 1024];
    let mut fill = |buffered: &mut Vec<u8>| -> Option<()> {
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(read) => {
                    buffered.extend_from_slice(&chunk[..read]);
                    return Some(());
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if state.shutting_down.load(Ordering::Relaxed) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    };
    let header_end = loop {
        if let Some(position) = buffered.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
        fill(buffered)?;
    };
    let head = String::from_utf8_lossy(&buffered[..header_end]).into_owned();
    let mut content_length = 0usize;
    let mut authorization = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_string());
        }
    }
    while buffered.len() < header_end + content_length {
        fill(buffered)?;
    }
    let body = buffered[header_end..header_end + content_length].to_vec();
    buffered.drain(..header_end + content_length);
    Some(HttpRequest {
        authorization,
        body,
    })
}

/// What to answer, or `None` to hang.
fn handle(state: &State, request: &HttpRequest) -> Option<Reply> {
    let behaviour = &state.behaviour;
    let parsed = serde_json::from_slice::<serde_json::Value>(&request.body).ok();
    let prompt = parsed
        .as_ref()
        .and_then(|value| value.pointer("/messages/0/content/0/text"))
        .and_then(|text| text.as_str())
        .map(str::to_owned);
    let n = parsed
        .as_ref()
        .and_then(|value| value.get("n"))
        .and_then(|n| n.as_u64())
        .unwrap_or(1) as u32;

    let authorized = match &behaviour.required_api_key {
        None => true,
        Some(key) => request.authorization.as_deref() == Some(format!("Bearer {key}").as_str()),
    };
    let failure = {
        let mut random = state.random.lock().unwrap_or_else(|e| e.into_inner());
        (random.f64() < behaviour.failure_rate && !behaviour.failures.is_empty())
            .then(|| behaviour.failures[random.usize(..behaviour.failures.len())])
    };
    {
        let mut log = state.log.lock().unwrap_or_else(|e| e.into_inner());
        log.requests_received += 1;
        log.requested_n.push(n);
        if let Some(prompt) = &prompt {
            *log.prompts_received.entry(prompt.clone()).or_default() += 1;
        }
    }

    std::thread::sleep(behaviour.latency);
    if !authorized {
        state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unauthorized += 1;
        let body = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}});
        return Some(Reply::json(401, body.to_string()));
    }
    let Some(prompt) = prompt else {
        let body = json!({"error": {"message": "the body is not a chat completion request"}});
        return Some(Reply::json(400, body.to_string()));
    };
    let model = parsed
        .as_ref()
        .and_then(|value| value.get("model"))
        .and_then(|model| model.as_str())
        .unwrap_or_default()
        .to_owned();
    if let Some(known) = &behaviour.known_models
        && !known.contains(&model)
    {
        state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unknown_model += 1;
        let body = json!({"error": {
            "message": format!("The model `{model}` does not exist or you do not have access to it."),
            "type": "invalid_request_error",
            "code": "model_not_found",
        }});
        return Some(Reply::json(404, body.to_string()));
    }
    if let Some(failure) = failure {
        state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures_injected += 1;
        return injected(failure);
    }

    let choices = behaviour.max_choices.map_or(n, |limit| n.min(limit)).max(1);
    let prompt_tokens = 85 + prompt.len() as u64 / 4;
    let completion_tokens = 12 * choices as u64;
    {
        // Deciding and counting under one lock: exactly `stop_answering_after` answers go out.
        let mut log = state.log.lock().unwrap_or_else(|e| e.into_inner());
        if behaviour
            .stop_answering_after
            .is_some_and(|limit| log.requests_answered >= limit)
        {
            return match behaviour.then_fail_with {
                Some(failure) => {
                    log.failures_injected += 1;
                    injected(failure)
                }
                None => None,
            };
        }
        log.requests_answered += 1;
        log.prompt_tokens += prompt_tokens;
        log.completion_tokens += completion_tokens;
        *log.choices_served.entry(prompt.clone()).or_default() += choices;
    }
    let (latitude, longitude) = MockChatServer::expected_location(&prompt);
    let answer = format!(r#"{{"latitude": {latitude},"longitude": {longitude}}}"#);
    let body = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "model": model,
        "choices": (0..choices).map(|index| json!({
            "index": index,
            "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop",
        })).collect::<Vec<_>>(),
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    });
    Some(Reply::json(200, body.to_string()))
}

/// The reply of an injected failure, or `None` to hang.
fn injected(failure: InjectedFailure) -> Option<Reply> {
    match failure {
        InjectedFailure::Hang => None,
        InjectedFailure::ServerError => {
            let body =
                json!({"error": {"message": "The server had an error", "type": "server_error"}});
            Some(Reply::json(500, body.to_string()))
        }
        InjectedFailure::RateLimited {
            retry_after_seconds,
            retry_after_ms,
        } => {
            let body = json!({"error": {"message": "Rate limit reached", "type": "requests"}});
            let mut reply = Reply::json(429, body.to_string());
            if let Some(seconds) = retry_after_seconds {
                reply.headers.push(("Retry-After", seconds.to_string()));
            }
            if let Some(milliseconds) = retry_after_ms {
                reply
                    .headers
                    .push(("retry-after-ms", milliseconds.to_string()));
            }
            Some(reply)
        }
        InjectedFailure::MalformedJson => Some(Reply::json(
            200,
            r#"{"id": "chatcmpl-1", "choices": [{"ind"#.into(),
        )),
        InjectedFailure::QuotaExhausted => {
            let body = json!({"error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }});
            Some(Reply::json(429, body.to_string()))
        }
    }
}

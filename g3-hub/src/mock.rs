//! [`MockHub`]: an HF hub on a loopback port, for tests. It serves repositories as the real
//! hub does (the repository info with its file listing at `/api/…/revision/…`, LFS files
//! through a redirect to a storage path carrying `X-Linked-Etag` and `X-Linked-Size`, other
//! files directly with their git blob id as `ETag`, `Range` requests, `X-Error-Code` on
//! 404s, 401 without the token), a Python package index's simple API (`/simple/{project}/`
//! in JSON, the files under `/packages/`), and injects the failures real downloads meet: a
//! connection dropped mid-file, a corrupted body.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha1::Digest as _;

use crate::repo::{Repo, RepoKind};

/// One request the mock received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

struct MockFile {
    bytes: Vec<u8>,
    lfs: bool,
}

struct MockRepo {
    commit: String,
    files: BTreeMap<String, MockFile>,
}

/// A failure injected into the next `times` bodies of a file.
#[derive(Debug, Clone)]
enum Failure {
    /// Send the headers of the whole answer, then only `bytes` of the body, then close.
    DropAfter { bytes: usize },
    /// Flip one byte of the body.
    Corrupt,
}

#[derive(Default)]
struct State {
    repos: HashMap<(RepoKind, String), MockRepo>,
    /// sha256 → (repo key, file) for the storage path.
    storage: HashMap<String, ((RepoKind, String), String)>,
    token: Option<String>,
    failures: HashMap<String, Vec<Failure>>,
    log: Vec<LoggedRequest>,
    /// Package index: normalized project name → file names; file name → bytes.
    projects: HashMap<String, Vec<String>>,
    package_files: HashMap<String, Vec<u8>>,
}

/// A loopback HF hub; stops when dropped.
pub struct MockHub {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
}

impl MockHub {
    /// Starts serving on `127.0.0.1` at a free port.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stopping) = (state.clone(), stopping.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = thread_state.clone();
                std::thread::spawn(move || serve(&state, stream, address));
            }
        });
        Ok(MockHub {
            address,
            state,
            stopping,
        })
    }

    /// The endpoint to give clients (`HF_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Serves `bytes` as `file` of `repo` (at `main` and at the repository's commit); `lfs`
    /// files are served the way the hub serves LFS files.
    pub fn add_file(&self, repo: &Repo, file: &str, bytes: Vec<u8>, lfs: bool) {
        let mut state = self.state.lock().unwrap();
        let key = (repo.kind(), repo.id().to_owned());
        if lfs {
            state
                .storage
                .insert(sha256_hex(&bytes), (key.clone(), file.to_owned()));
        }
        state
            .repos
            .entry(key)
            .or_insert_with(|| MockRepo {
                commit: hex(&sha1::Sha1::digest(repo.cache_folder().as_bytes())),
                files: BTreeMap::new(),
            })
            .files
            .insert(file.to_owned(), MockFile { bytes, lfs });
    }

    /// The package index's simple API on this server (`G3_PACKAGE_INDEX`).
    pub fn package_index(&self) -> String {
        format!("http://{}/simple", self.address)
    }

    /// Serves `bytes` as the file `filename` of the package index's project `project` (a
    /// normalized name), listed with its sha256 and size; failures injected with
    /// [`drop_connection`](Self::drop_connection) and [`corrupt`](Self::corrupt) under
    /// `filename` apply to its bodies.
    pub fn add_package_file(&self, project: &str, filename: &str, bytes: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        state
            .projects
            .entry(project.to_owned())
            .or_default()
            .push(filename.to_owned());
        state.package_files.insert(filename.to_owned(), bytes);
    }

    /// The commit `main` points to in `repo` (fixed per repository).
    pub fn commit(&self, repo: &Repo) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .repos
            .get(&(repo.kind(), repo.id().to_owned()))
            .map(|mock| mock.commit.clone())
    }

    /// From now on every resolve request needs `Authorization: Bearer <token>`.
    pub fn require_token(&self, token: &str) {
        self.state.lock().unwrap().token = Some(token.to_owned());
    }

    /// The next `times` bodies of `file` stop after `bytes` bytes (connection closed).
    pub fn drop_connection(&self, file: &str, bytes: usize, times: usize) {
        self.inject(file, Failure::DropAfter { bytes }, times);
    }

    /// The next `times` bodies of `file` have one byte flipped.
    pub fn corrupt(&self, file: &str, times: usize) {
        self.inject(file, Failure::Corrupt, times);
    }

    fn inject(&self, file: &str, failure: Failure, times: usize) {
        let mut state = self.state.lock().unwrap();
        let queue = state.failures.entry(file.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(failure, times));
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<LoggedRequest> {
        self.state.lock().unwrap().log.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// An answer: status, headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn error(status: u16, code: &str) -> Self {
        Reply {
            status,
            headers: vec![("X-Error-Code".into(), code.into())],
            body: code.as_bytes().to_vec(),
        }
    }
}

fn serve(state: &Mutex<State>, stream: TcpStream, address: SocketAddr) {
    let Ok(reader_stream) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader_stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return;
    };
    let mut range = None;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(value.trim().to_owned()),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    let request = LoggedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        range: range.clone(),
        authorization: authorization.clone(),
    };
    let (reply, failure) = {
        let mut state = state.lock().unwrap();
        state.log.push(request.clone());
        answer(&mut state, &request, address)
    };
    write_reply(stream, method == "HEAD", reply, range.as_deref(), failure);
}

/// The reply to a request, and the failure to inject into its body.
fn answer(
    state: &mut State,
    request: &LoggedRequest,
    address: SocketAddr,
) -> (Reply, Option<Failure>) {
    let path = request.path.split('?').next().unwrap_or("");
    if let Some(sha256) = path.strip_prefix("/cdn/") {
        let Some((key, file)) = state.storage.get(sha256).cloned() else {
            return (Reply::error(404, "NotFound"), None);
        };
        let bytes = state.repos[&key].files[&file].bytes.clone();
        let failure = take_failure(state, request, &file);
        return (
            Reply {
                status: 200,
                headers: vec![("ETag".into(), format!("\"{sha256}\""))],
                body: bytes,
            },
            failure,
        );
    }
    if let Some(project) = path
        .strip_prefix("/simple/")
        .map(|project| project.trim_end_matches('/'))
    {
        return (project_page(state, project, address), None);
    }
    if let Some(filename) = path.strip_prefix("/packages/") {
        let Some(bytes) = state.package_files.get(filename).cloned() else {
            return (Reply::error(404, "NotFound"), None);
        };
        let failure = take_failure(state, request, filename);
        let reply = Reply {
            status: 200,
            headers: Vec::new(),
            body: bytes,
        };
        return (reply, failure);
    }
    if let Some(rest) = path.strip_prefix("/api/") {
        return (listing(state, request, rest), None);
    }
    let (kind, rest) = match path.strip_prefix("/datasets/") {
        Some(rest) => (RepoKind::Dataset, rest),
        None => (RepoKind::Model, path.trim_start_matches('/')),
    };
    let mut segments = rest.splitn(5, '/');
    let (Some(owner), Some(name), Some("resolve"), Some(revision), Some(file)) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return (Reply::error(404, "NotFound"), None);
    };
    if let Some(token) = &state.token
        && request.authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        return (Reply::error(401, "GatedRepo"), None);
    }
    let Some(repo) = state.repos.get(&(kind, format!("{owner}/{name}"))) else {
        return (Reply::error(404, "RepoNotFound"), None);
    };
    if revision != "main" && revision != repo.commit {
        return (Reply::error(404, "RevisionNotFound"), None);
    }
    let Some(mock_file) = repo.files.get(file) else {
        return (Reply::error(404, "EntryNotFound"), None);
    };
    let commit = repo.commit.clone();
    if mock_file.lfs {
        let sha256 = sha256_hex(&mock_file.bytes);
        let reply = Reply {
            status: 302,
            headers: vec![
                ("Location".into(), format!("http://{address}/cdn/{sha256}")),
                ("X-Repo-Commit".into(), commit),
                ("X-Linked-Etag".into(), format!("\"{sha256}\"")),
                ("X-Linked-Size".into(), mock_file.bytes.len().to_string()),
                (
                    "ETag".into(),
                    format!("\"{}\"", git_blob_id(b"lfs pointer")),
                ),
            ],
            body: Vec::new(),
        };
        return (reply, None);
    }
    let reply = Reply {
        status: 200,
        headers: vec![
            ("X-Repo-Commit".into(), commit),
            (
                "ETag".into(),
                format!("\"{}\"", git_blob_id(&mock_file.bytes)),
            ),
        ],
        body: mock_file.bytes.clone(),
    };
    let failure = take_failure(state, request, file);
    (reply, failure)
}

/// The simple API's JSON page of a project: every file with its URL, sha256 and size.
fn project_page(state: &State, project: &str, address: SocketAddr) -> Reply {
    let Some(files) = state.projects.get(project) else {
        return Reply::error(404, "NotFound");
    };
    let entries: Vec<String> = files
        .iter()
        .map(|filename| {
            let bytes = &state.package_files[filename];
            format!(
                "{{\"filename\":\"{filename}\",\"url\":\"http://{address}/packages/{filename}\",\"hashes\":{{\"sha256\":\"{}\"}},\"size\":{}}}",
                sha256_hex(bytes),
                bytes.len()
            )
        })
        .collect();
    Reply {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "application/vnd.pypi.simple.v1+json".into(),
        )],
        body: format!(
            "{{\"meta\":{{\"api-version\":\"1.1\"}},\"name\":\"{project}\",\"files\":[{}]}}",
            entries.join(",")
        )
        .into_bytes(),
    }
}

/// `GET /api/{models|datasets}/{owner}/{name}/revision/{revision}`: the commit and the file
/// listing, as the hub's repository info gives them.
fn listing(state: &State, request: &LoggedRequest, rest: &str) -> Reply {
    let segments: Vec<&str> = rest.split('/').collect();
    let (kind, owner, name, revision) = match segments.as_slice() {
        ["models", owner, name, "revision", revision] => (RepoKind::Model, owner, name, revision),
        ["datasets", owner, name, "revision", revision] => {
            (RepoKind::Dataset, owner, name, revision)
        }
        _ => return Reply::error(404, "NotFound"),
    };
    if let Some(token) = &state.token
        && request.authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        return Reply::error(401, "GatedRepo");
    }
    let Some(repo) = state.repos.get(&(kind, format!("{owner}/{name}"))) else {
        return Reply::error(404, "RepoNotFound");
    };
    if *revision != "main" && *revision != repo.commit {
        return Reply::error(404, "RevisionNotFound");
    }
    let siblings: Vec<String> = repo
        .files
        .keys()
        .map(|file| format!("{{\"rfilename\":\"{file}\"}}"))
        .collect();
    Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: format!(
            "{{\"id\":\"{owner}/{name}\",\"sha\":\"{}\",\"siblings\":[{}]}}",
            repo.commit,
            siblings.join(",")
        )
        .into_bytes(),
    }
}

/// The next failure queued for `file`'s body (bodies are only sent to `GET`s).
fn take_failure(state: &mut State, request: &LoggedRequest, file: &str) -> Option<Failure> {
    if request.method != "GET" {
        return None;
    }
    let queue = state.failures.get_mut(file)?;
    (!queue.is_empty()).then(|| queue.remove(0))
}

fn write_reply(
    mut stream: TcpStream,
    head: bool,
    reply: Reply,
    range: Option<&str>,
    failure: Option<Failure>,
) {
    let Reply {
        mut status,
        mut headers,
        body,
    } = reply;
    let total = body.len();
    let mut start = 0;
    if status == 200
        && let Some(from) = range
            .and_then(|range| range.strip_prefix("bytes="))
            .and_then(|range| range.strip_suffix('-'))
            .and_then(|from| from.parse::<usize>().ok())
    {
        if from >= total {
            let _ = write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        status = 206;
        start = from;
        headers.push((
            "Content-Range".into(),
            format!("bytes {from}-{}/{total}", total - 1),
        ));
    }
    let mut body = body[start..].to_vec();
    let mut send = body.len();
    match failure {
        Some(Failure::DropAfter { bytes }) => send = send.min(bytes),
        Some(Failure::Corrupt) if !body.is_empty() => {
            let middle = body.len() / 2;
            body[middle] ^= 0xff;
        }
        _ => {}
    }
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    if stream.write_all(text.as_bytes()).is_err() || head {
        return;
    }
    let _ = stream.write_all(&body[..send]);
    let _ = stream.flush();
    // Dropping the stream closes it: after a short body, the client sees the connection end.
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn git_blob_id(bytes: &[u8]) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex(&hasher.finalize())
}

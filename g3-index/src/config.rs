//! Store settings as plain serde data: which store, which similarity, which storage precision.

use serde::{Deserialize, Serialize};

/// How a query and an entry are compared. Both rank by a similarity where higher means
/// closer; the reference (faiss `IndexFlatIP` over L2-normalised vectors) is
/// [`Metric::InnerProduct`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// The plain inner product. G3's database vectors are already unit length, so this is the
    /// cosine there, and it is what faiss `IndexFlatIP` returns.
    #[default]
    #[serde(alias = "ip")]
    InnerProduct,
    /// The cosine: vectors and queries are scaled to unit length before the inner product.
    #[serde(alias = "cos")]
    Cosine,
}

impl Metric {
    /// The command-line and manifest name: `ip` or `cos`.
    pub fn short_name(self) -> &'static str {
        match self {
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cos",
        }
    }
}

/// How a store keeps its vectors: an HNSW graph in any of these, the exact store in f32
/// (the ground truth) or f16 (half the memory, scores within about 1e-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorPrecision {
    /// 4 bytes per component.
    #[default]
    F32,
    /// IEEE half precision, 2 bytes per component.
    F16,
    /// Signed bytes, 1 byte per component: [-1, 1] maps onto [-127, 127], so the vectors must
    /// be unit length or at least have components within [-1, 1].
    I8,
}

impl VectorPrecision {
    /// Bytes per stored component.
    pub fn bytes_per_component(self) -> usize {
        match self {
            VectorPrecision::F32 => 4,
            VectorPrecision::F16 => 2,
            VectorPrecision::I8 => 1,
        }
    }
}

/// Which store holds the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// [`ExactStore`](crate::ExactStore): every entry scored, like faiss `IndexFlatIP`.
    Exact,
    /// [`HnswStore`](crate::HnswStore): a usearch HNSW graph, approximate and fast.
    #[default]
    Hnsw,
}

/// The HNSW graph's settings; the defaults are usearch's, except the dissimilar-search beam.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswConfig {
    /// Edges per node (HNSW's `M`). More edges: better recall, more memory, slower build.
    pub connectivity: usize,
    /// Candidate list size while inserting (`efConstruction`).
    pub expansion_add: usize,
    /// Candidate list size while searching (`ef`); raised to `k` when a search asks for more.
    pub expansion_search: usize,
    /// Candidate list size for dissimilar searches. The negated query they search for lies
    /// far from every entry, where the graph's greedy search finds the extremes poorly with
    /// a normal `ef`; a wider beam buys the recall back (see [`HnswStore`](crate::HnswStore)).
    pub expansion_dissimilar: usize,
    /// Graph candidates re-ranked by their exact f32 inner product (0, the default: none).
    /// Only graphs over f16 or i8 vectors re-rank; they then also keep the vectors in f32
    /// (see [`HnswStore`](crate::HnswStore)).
    pub rerank: usize,
    /// i8 graphs only: each component is multiplied by this and rounded to an integer in
    /// [−127, 127]. `None` when building: 127 over the largest component magnitude of the
    /// first vectors added, so that the integers span their whole range (embeddings of
    /// unit length have components of a few hundredths, which a fixed ×127 leaves at a
    /// handful of levels). The chosen value is kept in the database's manifest; later
    /// components beyond the range saturate. Databases written before this setting existed
    /// have none and keep usearch's own conversion (each vector scaled to unit length, ×127).
    pub i8_scale: Option<f32>,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
            expansion_dissimilar: 256,
            rerank: 0,
            i8_scale: None,
        }
    }
}

/// Everything needed to build a store.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Exact or HNSW.
    pub kind: StoreKind,
    /// Inner product or cosine.
    pub metric: Metric,
    /// Storage precision (the exact store: f32 or f16).
    pub precision: VectorPrecision,
    /// Graph settings (HNSW only).
    pub hnsw: HnswConfig,
}

impl StoreConfig {
    /// The exact store with the given metric.
    pub fn exact(metric: Metric) -> Self {
        StoreConfig {
            kind: StoreKind::Exact,
            metric,
            ..StoreConfig::default()
        }
    }

    /// An HNSW store with the given metric and precision and usearch's graph defaults.
    pub fn hnsw(metric: Metric, precision: VectorPrecision) -> Self {
        StoreConfig {
            kind: StoreKind::Hnsw,
            metric,
            precision,
            hnsw: HnswConfig::default(),
        }
    }
}

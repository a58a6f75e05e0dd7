//! What the G3 authors publish on the HF hub, and where `g3 fetch` puts it: the files keep
//! their names in the standard HF cache (shared with Python's `huggingface_hub`), and the
//! retrieval index, imported once into a g3 database, sits next to it in the same snapshot.
//! Every command that needs one of them looks there ([`published_database`], and the models'
//! repo ids in [`PipelineConfig`](crate::PipelineConfig)).

use std::path::PathBuf;

use g3_hub::{HubCache, Repo};

/// The model repository with G3's checkpoint and retrieval index.
pub const G3_CHECKPOINT_REPO: &str = "Jia-py/G3-checkpoint";
/// G3's trained model (a PyTorch state_dict): CLIP towers, projection heads, GPS encoder.
pub const G3_CHECKPOINT_FILE: &str = "g3.pth";
/// G3's retrieval index: faiss `IndexFlatIP` over MP16-Pro's 4.12M × 2304 database
/// embeddings (~38 GB), where the reference's `IndexSearch.py` writes it.
pub const G3_INDEX_FILE: &str = "index/g3.index";
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

/// The database `g3 fetch g3` made from the index of `checkpoint_repo` (a repo id), if
/// the cache holds one.
pub fn published_database(cache: &HubCache, checkpoint_repo: &str) -> Option<PathBuf> {
    let repo = Repo::model(checkpoint_repo).ok()?;
    let manifest = cache.cached_file(&repo, &format!("{DATABASE_DIRECTORY}/manifest.json"))?;
    manifest.parent().map(PathBuf::from)
}

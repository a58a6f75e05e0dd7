//! The CLIP fixtures shared by `clip_parity` and `gpu_parity`: files under
//! `tests/fixtures/clip/` (made by `tools/goldens/clip.py`) and the photos `images.csv` lists.

use std::path::{Path, PathBuf};

/// A file of the CLIP fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clip")
        .join(name)
}

/// The fixture photos, in `images.csv`'s order.
pub fn fixture_images() -> Vec<g3_core::ImageInput> {
    std::fs::read_to_string(fixture("images.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let name = line.split(',').next().unwrap();
            g3_core::ImageInput::from_path(fixture(&format!("images/{name}"))).unwrap()
        })
        .collect()
}

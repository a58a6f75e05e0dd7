//! The goldens' files, shared by this crate's integration tests.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

/// A file of the tiny model's goldens (`tools/goldens/qwen2_vl.py`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny")
        .join(name)
}

/// A fixture photo of g3-align's CLIP goldens.
pub fn photo_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../g3-align/tests/fixtures/clip/images")
        .join(name)
}

/// The bytes of a fixture photo.
pub fn photo_bytes(name: &str) -> Vec<u8> {
    let path = photo_path(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// An `.npy` file of the goldens: its shape and values.
pub fn read_npy<T: npyz::Deserialize>(name: &str) -> (Vec<usize>, Vec<T>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&n| n as usize).collect();
    (shape, npy.into_vec::<T>().unwrap())
}

/// Rows of a CSV file of the goldens after its header.
pub fn csv_rows(name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

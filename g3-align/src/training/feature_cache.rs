//! Cached CLIP features on disk, as Geo-alignment training reads them (`g3 train`).
//!
//! A cache is two row-aligned float32 `.npy` matrices, CLIP's projected image features and
//! (for the IMG+GPS+TEXT variant) the projected text features of each image's description,
//! plus a CSV giving each row's latitude and longitude. The matrices are memory-mapped
//! ([`MappedMatrix`]): the page cache serves MP16-Pro's millions of rows on demand instead
//! of RAM holding them.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use g3_core::atomic::AtomicFile;
use g3_core::npy::{GrowingEmbeddingFile, MappedMatrix};
use g3_core::{Embeddings, Error as CoreError, GeoPoint};

use super::{AlignmentData, FeatureRows};
use crate::error::AlignError;

/// Training data read from a feature cache: implements [`AlignmentData`] for
/// [`Trainer`](super::Trainer).
#[derive(Debug)]
pub struct FeatureCache {
    image_features: MappedMatrix,
    text_features: Option<MappedMatrix>,
    locations: Vec<GeoPoint>,
}

impl FeatureCache {
    /// Opens the image features, optionally the text features, and each row's location from
    /// a CSV's `latitude_column` and `longitude_column`. All three must have the same rows.
    pub fn open(
        image_features: &Path,
        text_features: Option<&Path>,
        locations_csv: &Path,
        latitude_column: &str,
        longitude_column: &str,
    ) -> Result<Self, AlignError> {
        let image_features = MappedMatrix::open(image_features)?;
        let text_features = text_features.map(MappedMatrix::open).transpose()?;
        let locations =
            g3_core::table::read_points_csv(locations_csv, latitude_column, longitude_column)?;
        let mismatch = |path: &Path, what: String| CoreError::InvalidNpy {
            path: path.to_path_buf(),
            reason: what,
        };
        if image_features.rows() != locations.len() {
            return Err(AlignError::from(mismatch(
                image_features.path(),
                format!(
                    "{} rows, but {} has {} locations",
                    image_features.rows(),
                    locations_csv.display(),
                    locations.len()
                ),
            )));
        }
        if let Some(text) = &text_features
            && (text.rows() != image_features.rows() || text.columns() != image_features.columns())
        {
            return Err(AlignError::from(mismatch(
                text.path(),
                format!(
                    "[{}, {}] text features for [{}, {}] image features",
                    text.rows(),
                    text.columns(),
                    image_features.rows(),
                    image_features.columns()
                ),
            )));
        }
        Ok(FeatureCache {
            image_features,
            text_features,
            locations,
        })
    }
}

impl AlignmentData for FeatureCache {
    fn len(&self) -> usize {
        self.locations.len()
    }

    fn feature_size(&self) -> usize {
        self.image_features.columns()
    }

    fn has_text(&self) -> bool {
        self.text_features.is_some()
    }

    fn gather(&self, rows: &[usize]) -> std::result::Result<FeatureRows, AlignError> {
        let take = |matrix: &MappedMatrix| -> std::result::Result<Vec<f32>, AlignError> {
            let mut values = Vec::with_capacity(rows.len() * matrix.columns());
            for &row in rows {
                if row >= matrix.rows() {
                    return Err(AlignError::InvalidInput {
                        reason: format!(
                            "{}: row {row} is out of range ({} rows)",
                            matrix.path().display(),
                            matrix.rows()
                        ),
                    });
                }
                let slice = matrix.row(row);
                if slice.iter().any(|value| !value.is_finite()) {
                    return Err(AlignError::InvalidInput {
                        reason: format!(
                            "{}: row {row} holds a value that is not finite",
                            matrix.path().display()
                        ),
                    });
                }
                values.extend_from_slice(slice);
            }
            Ok(values)
        };
        Ok(FeatureRows {
            image_features: take(&self.image_features)?,
            text_features: self.text_features.as_ref().map(take).transpose()?,
            locations: rows.iter().map(|&row| self.locations[row]).collect(),
        })
    }
}

/// The image features of a cache directory, `[rows, dimension]`.
pub const IMAGE_FEATURES_FILE: &str = "image_features.npy";
/// The text features of a cache directory, row-aligned with the image features.
pub const TEXT_FEATURES_FILE: &str = "text_features.npy";
/// Each row's `IMG_ID,LAT,LON,description`.
pub const METADATA_FILE: &str = "metadata.csv";
/// The header of [`METADATA_FILE`].
pub const METADATA_HEADER: &str = "IMG_ID,LAT,LON,description";
/// The rows left out because their image could not be read: `IMG_ID,error`.
pub const SKIPPED_FILE: &str = "skipped.csv";
/// The header of [`SKIPPED_FILE`].
pub const SKIPPED_HEADER: &str = "IMG_ID,error";

/// Writes a feature cache that [`FeatureCache::open`] reads: rows appended in order, the
/// matrices and CSVs streamed to temporary files (bounded memory at MP16-Pro's 4.12M rows)
/// that appear together on [`finish`](Self::finish), so an interrupted write leaves no
/// half cache behind.
pub struct FeatureCacheWriter {
    directory: PathBuf,
    with_text: bool,
    image: Option<GrowingEmbeddingFile>,
    text: Option<GrowingEmbeddingFile>,
    metadata: BufWriter<AtomicFile>,
    skipped: BufWriter<AtomicFile>,
    skipped_rows: usize,
}

impl FeatureCacheWriter {
    /// A cache in `directory` (created if needed), with text features when `with_text`.
    pub fn create(directory: &Path, with_text: bool) -> Result<Self, AlignError> {
        std::fs::create_dir_all(directory).map_err(|source| CoreError::Io {
            path: directory.to_owned(),
            source,
        })?;
        let csv = |name: &str, header: &str| -> Result<BufWriter<AtomicFile>, AlignError> {
            let path = directory.join(name);
            let mut file = BufWriter::new(AtomicFile::create(&path)?);
            writeln!(file, "{header}").map_err(|source| CoreError::Io { path, source })?;
            Ok(file)
        };
        Ok(FeatureCacheWriter {
            directory: directory.to_owned(),
            with_text,
            image: None,
            text: None,
            metadata: csv(METADATA_FILE, METADATA_HEADER)?,
            skipped: csv(SKIPPED_FILE, SKIPPED_HEADER)?,
            skipped_rows: 0,
        })
    }

    /// Appends rows: their image features, their text features (exactly when the cache has
    /// them) and their metadata lines (`IMG_ID,LAT,LON,description`, CSV-quoted, one per
    /// row).
    pub fn append(
        &mut self,
        image_features: &Embeddings,
        text_features: Option<&Embeddings>,
        metadata_lines: &[String],
    ) -> Result<(), AlignError> {
        let rows = image_features.len();
        let mismatch = |what: String| {
            AlignError::from(CoreError::InvalidNpy {
                path: self.directory.join(IMAGE_FEATURES_FILE),
                reason: what,
            })
        };
        if metadata_lines.len() != rows {
            return Err(mismatch(format!(
                "{rows} feature rows for {} metadata rows",
                metadata_lines.len()
            )));
        }
        match (self.with_text, text_features) {
            (true, Some(text)) if text.len() == rows => {
                grow(
                    &mut self.text,
                    &self.directory.join(TEXT_FEATURES_FILE),
                    text,
                )?;
            }
            (false, None) => {}
            (true, Some(text)) => {
                return Err(mismatch(format!(
                    "{} text feature rows for {rows} image feature rows",
                    text.len()
                )));
            }
            (with_text, _) => {
                return Err(mismatch(format!(
                    "text features {} for a cache {} them",
                    if with_text { "missing" } else { "given" },
                    if with_text { "with" } else { "without" }
                )));
            }
        }
        grow(
            &mut self.image,
            &self.directory.join(IMAGE_FEATURES_FILE),
            image_features,
        )?;
        for line in metadata_lines {
            writeln!(self.metadata, "{line}").map_err(|source| CoreError::Io {
                path: self.directory.join(METADATA_FILE),
                source,
            })?;
        }
        Ok(())
    }

    /// Records a row left out (`IMG_ID,error`, CSV-quoted).
    pub fn skip(&mut self, skipped_line: &str) -> Result<(), AlignError> {
        self.skipped_rows += 1;
        writeln!(self.skipped, "{skipped_line}").map_err(|source| {
            AlignError::from(CoreError::Io {
                path: self.directory.join(SKIPPED_FILE),
                source,
            })
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.image.as_ref().map_or(0, GrowingEmbeddingFile::rows)
    }

    /// Puts the files in place: the matrices, then the metadata, then the skipped list when
    /// a row was skipped. Returns (rows cached, rows skipped). A cache with no row is an
    /// error: nothing could be read.
    pub fn finish(self) -> Result<(usize, usize), AlignError> {
        let Some(image) = self.image else {
            return Err(AlignError::from(CoreError::InvalidNpy {
                path: self.directory.join(IMAGE_FEATURES_FILE),
                reason: "no image could be read: nothing to cache".into(),
            }));
        };
        let rows = image.rows();
        image.finish()?;
        if let Some(text) = self.text {
            text.finish()?;
        }
        commit(self.metadata, &self.directory.join(METADATA_FILE))?;
        if self.skipped_rows > 0 {
            commit(self.skipped, &self.directory.join(SKIPPED_FILE))?;
        }
        Ok((rows, self.skipped_rows))
    }
}

fn grow(
    file: &mut Option<GrowingEmbeddingFile>,
    path: &Path,
    rows: &Embeddings,
) -> Result<(), AlignError> {
    let file = match file {
        Some(file) => file,
        None => file.insert(GrowingEmbeddingFile::create(path, rows.dimension())?),
    };
    Ok(file.write(rows)?)
}

fn commit(file: BufWriter<AtomicFile>, path: &Path) -> Result<(), AlignError> {
    let file = file.into_inner().map_err(|error| CoreError::Io {
        path: path.to_owned(),
        source: error.into_error(),
    })?;
    Ok(file.commit()?)
}

#[cfg(test)]
mod tests {
    use npyz::WriterBuilder;

    use super::*;

    fn write_npy(path: &Path, rows: usize, columns: usize, values: &[f32]) {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, columns as u64])
            .writer(std::fs::File::create(path).unwrap())
            .begin_nd()
            .unwrap();
        writer.extend(values.iter().copied()).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn rows_come_back_as_written() {
        let directory = tempfile::tempdir().unwrap();
        let images = directory.path().join("images.npy");
        let locations = directory.path().join("locations.csv");
        let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
        write_npy(&images, 3, 4, &values);
        std::fs::write(&locations, "IMG_ID,LAT,LON\na,1,2\nb,3,4\nc,5,6\n").unwrap();
        let cache = FeatureCache::open(&images, None, &locations, "LAT", "LON").unwrap();
        assert_eq!((cache.len(), cache.feature_size()), (3, 4));
        let rows = cache.gather(&[2, 0]).unwrap();
        assert_eq!(
            rows.image_features,
            [8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(rows.locations[0], GeoPoint::new(5.0, 6.0).unwrap());
        assert!(rows.text_features.is_none());
    }

    #[test]
    fn mismatched_truncated_and_non_finite_caches_are_clear_errors() {
        let directory = tempfile::tempdir().unwrap();
        let images = directory.path().join("images.npy");
        let locations = directory.path().join("locations.csv");
        let mut values = vec![0.5f32; 8];
        values[5] = f32::INFINITY;
        write_npy(&images, 2, 4, &values);
        std::fs::write(&locations, "LAT,LON\n1,2\n").unwrap();
        let error = FeatureCache::open(&images, None, &locations, "LAT", "LON").unwrap_err();
        assert!(error.to_string().contains("2 rows, but"), "{error}");

        std::fs::write(&locations, "LAT,LON\n1,2\n3,4\n").unwrap();
        let cache = FeatureCache::open(&images, None, &locations, "LAT", "LON").unwrap();
        let error = cache.gather(&[1]).unwrap_err();
        assert!(error.to_string().contains("row 1 holds a value"), "{error}");

        let text = directory.path().join("text.npy");
        write_npy(&text, 2, 3, &[0.0; 6]);
        let error = FeatureCache::open(&images, Some(&text), &locations, "LAT", "LON").unwrap_err();
        assert!(error.to_string().contains("text features"), "{error}");

        let bytes = std::fs::read(&images).unwrap();
        std::fs::write(&images, &bytes[..bytes.len() - 3]).unwrap();
        let error = FeatureCache::open(&images, None, &locations, "LAT", "LON").unwrap_err();
        assert!(
            error.to_string().contains("images.npy") && error.to_string().contains("truncated"),
            "{error}"
        );
    }
}

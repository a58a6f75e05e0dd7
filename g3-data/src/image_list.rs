//! The list of image files a command works on: a directory (sorted by file name) or a CSV
//! naming one file per row.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use g3_core::table::header_names;
use g3_core::{Error, RowProblem};

use crate::error::Result;

/// File extensions read as images when a directory is listed (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "jfif"];

/// Columns that name the image of a CSV row, in order of preference: `path`, then
/// `IMG_ID` (the IM2GPS3K, YFCC4K and MP16-Pro metadata), then `file`.
pub const IMAGE_COLUMNS: [&str; 3] = ["path", "IMG_ID", "file"];

/// The image files of `input`, in the order their embeddings will be written:
///
/// - a directory: its files with an image extension ([`IMAGE_EXTENSIONS`]), sorted by file
///   name (byte order), not recursing; hidden files are left out;
/// - a CSV file: one image per row from the first of [`IMAGE_COLUMNS`] the header has.
///   Relative paths are resolved against `root`, or else the CSV's directory.
pub fn list_images(input: &Path, root: Option<&Path>) -> Result<Vec<PathBuf>> {
    let io_error = |source| Error::Io {
        path: input.to_path_buf(),
        source,
    };
    if input.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(input).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let path = entry.path();
            let name = entry.file_name();
            let is_hidden = name.to_string_lossy().starts_with('.');
            let is_image = path
                .extension()
                .and_then(|extension| extension.to_str())
                .is_some_and(|extension| {
                    IMAGE_EXTENSIONS
                        .iter()
                        .any(|known| extension.eq_ignore_ascii_case(known))
                });
            if is_image && !is_hidden && path.is_file() {
                files.push(path);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        return Ok(files);
    }
    let base = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| input.parent().unwrap_or(Path::new(".")).to_path_buf());
    Ok(list_image_names(input)?
        .into_iter()
        .map(|name| base.join(name))
        .collect())
}

/// The image of each row of a CSV list, as written: the first of [`IMAGE_COLUMNS`] the header
/// has (a path, or an id to look up in an archive). An empty value is an error naming its
/// line.
pub fn list_image_names(input: &Path) -> Result<Vec<String>> {
    let io_error = |source| Error::Io {
        path: input.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(io_error)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::new(file));
    let csv_error = |source| Error::Csv {
        path: input.to_path_buf(),
        source,
    };
    let names = header_names(reader.byte_headers().map_err(csv_error)?);
    let column = IMAGE_COLUMNS
        .iter()
        .find_map(|wanted| names.iter().position(|name| name == wanted))
        .ok_or_else(|| Error::MissingColumn {
            path: input.to_path_buf(),
            column: IMAGE_COLUMNS.join(" or "),
            found: names.clone(),
        })?;
    let mut values = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |position| position.line());
        let value = record.get(column).map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Err(Error::InvalidRow {
                path: input.to_path_buf(),
                line,
                problem: RowProblem::MissingValue {
                    column: names[column].clone(),
                },
            }
            .into());
        }
        values.push(value.to_owned());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_lists_images_sorted_by_name() {
        let directory = tempfile::tempdir().unwrap();
        for name in ["b.JPG", "a.png", "c.txt", ".hidden.jpg", "10.webp"] {
            std::fs::write(directory.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(directory.path().join("sub.jpg")).unwrap();
        let names: Vec<String> = list_images(directory.path(), None)
            .unwrap()
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10.webp", "a.png", "b.JPG"]);
    }

    #[test]
    fn a_csv_names_files_relative_to_its_directory_or_a_root() {
        let directory = tempfile::tempdir().unwrap();
        let csv = directory.path().join("list.csv");
        std::fs::write(&csv, "IMG_ID,LAT,LON\nx/1.jpg,1,2\n/abs/2.jpg,3,4\n").unwrap();
        let files = list_images(&csv, None).unwrap();
        assert_eq!(
            files,
            [
                directory.path().join("x/1.jpg"),
                PathBuf::from("/abs/2.jpg")
            ]
        );
        let files = list_images(&csv, Some(Path::new("/images"))).unwrap();
        assert_eq!(files[0], PathBuf::from("/images/x/1.jpg"));
    }

    #[test]
    fn a_csv_without_an_image_column_or_value_is_a_clear_error() {
        let directory = tempfile::tempdir().unwrap();
        let csv = directory.path().join("list.csv");
        std::fs::write(&csv, "LAT,LON\n1,2\n").unwrap();
        let error = list_images(&csv, None).unwrap_err().to_string();
        assert!(error.contains("IMG_ID"), "{error}");
        std::fs::write(&csv, "path\na.jpg\n\"\"\n").unwrap();
        let error = list_images(&csv, None).unwrap_err().to_string();
        assert!(error.contains("list.csv:3"), "{error}");
    }
}

//! Metadata readers: the reference's filters, other columns, and malformed files.

use std::path::Path;

use g3_data::{DataError, DatasetKind, MetadataOptions, MetadataReader};
use proptest::prelude::*;

fn write(directory: &Path, text: &[u8]) -> std::path::PathBuf {
    let path = directory.join("metadata.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every record, or every error message, of a file.
fn read_all(path: &Path, options: MetadataOptions) -> Result<Vec<Result<String, String>>, String> {
    let reader = MetadataReader::open(path, options).map_err(|error| error.to_string())?;
    Ok(reader
        .map(|record| {
            record
                .map(|record| format!("{}@{}", record.image_id, record.line))
                .map_err(|error| error.to_string())
        })
        .collect())
}

#[test]
fn mp16_pro_rows_are_typed_and_filtered_like_the_reference() {
    let directory = tempfile::tempdir().unwrap();
    let path = write(
        directory.path(),
        "\u{feff}IMG_ID,author,LAT,LON,neighbourhood,city,county,state,region,country,country_code,continent\r\n\
         1a/2b/123.jpg,x,41.9,12.5,Monti,Rome,,Lazio,,Italy,it,Europe\r\n\
         3c/4d/456.jpg,y,0.5,0.5,,,,,,,,\r\n\
         \"5e/6f/789.jpg\",\"z, with comma\",-33.86,151.21,,Sydney,,New South Wales,,Australia,au,Oceania\r\n"
            .as_bytes(),
    );
    let mut reader =
        MetadataReader::open(&path, MetadataOptions::for_dataset(DatasetKind::Mp16Pro)).unwrap();
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.image_id, "1a_2b_123.jpg");
    assert_eq!(first.line, 2);
    assert_eq!(
        (first.location.lat_deg(), first.location.lon_deg()),
        (41.9, 12.5)
    );
    assert_eq!(first.names.city, "Rome");
    assert_eq!(first.names.neighbourhood, "Monti");
    assert_eq!(first.names.country_code, "it");
    assert_eq!(first.get("author"), Some("x"));
    assert_eq!(first.columns().next(), Some("IMG_ID"));
    // The row without a country is dropped; the quoted one keeps its comma.
    let third = reader.next().unwrap().unwrap();
    assert_eq!(third.image_id, "5e_6f_789.jpg");
    assert_eq!(third.line, 4);
    assert_eq!(third.get("author"), Some("z, with comma"));
    assert!(reader.next().is_none());
    assert_eq!(reader.dropped_rows(), 1);

    // Without the filters (IM2GPS3K/YFCC4K settings) every row comes back as written.
    let ids: Vec<String> = MetadataReader::open(&path, MetadataOptions::default())
        .unwrap()
        .map(|record| record.unwrap().image_id)
        .collect();
    assert_eq!(ids, ["1a/2b/123.jpg", "3c/4d/456.jpg", "5e/6f/789.jpg"]);
}

#[test]
fn malformed_files_are_errors_naming_the_line() {
    let directory = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &str); 8] = [
        (b"", "no records"),
        (b"IMG_ID,LAT\na,1\n", "no LON column"),
        (
            b"IMG_ID,LAT,LON\na,1,2\nb,north,2\n",
            "metadata.csv:3: column LAT: \"north\" is not a number",
        ),
        (
            b"IMG_ID,LAT,LON\na,1,2\n\n\nb,1,NaN\n",
            "metadata.csv:5: column LON",
        ),
        (
            b"IMG_ID,LAT,LON\na,91,2\n",
            "metadata.csv:2: columns LAT/LON",
        ),
        (
            b"IMG_ID,LAT,LON\na,1,2\nb,1\n",
            "metadata.csv:3: 2 fields where the header has 3",
        ),
        (
            b"IMG_ID,LAT,LON\n,1,2\n",
            "metadata.csv:2: column IMG_ID: the image id is empty",
        ),
        (
            b"IMG_ID,LAT,LON\r\na,1,2\r\n\xff\xfe,1,2\r\n",
            "metadata.csv:3: invalid UTF-8",
        ),
    ];
    for (text, expected) in cases {
        let path = write(directory.path(), text);
        let messages: Vec<String> = match read_all(&path, MetadataOptions::default()) {
            Err(message) => vec![message],
            Ok(results) => results.into_iter().filter_map(Result::err).collect(),
        };
        assert!(
            messages.iter().any(|message| message.contains(expected)),
            "{expected:?} not in {messages:?}"
        );
    }
    // A country filter needs a country column.
    let path = write(directory.path(), b"IMG_ID,LAT,LON\na,1,2\n");
    let error = MetadataReader::open(&path, MetadataOptions::for_dataset(DatasetKind::Mp16Pro))
        .unwrap_err();
    assert!(matches!(error, DataError::MissingColumn { ref column, .. } if column == "country"));
}

/// One line of a CSV that may be broken in the ways real files are.
fn line_strategy() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (-90.0f64..90.0).prop_map(|value| format!("{value}")),
        Just("".to_string()),
        Just("abc".to_string()),
        Just("1e999".to_string()),
        Just("\"12.5\"".to_string()),
    ];
    let id = prop_oneof![
        "[a-z0-9/]{1,8}".prop_map(|id| id),
        Just("\"a,b\"".to_string()),
        Just("\"unterminated".to_string()),
        Just(String::new()),
    ];
    prop_oneof![
        (id, number.clone(), number).prop_map(|(id, lat, lon)| format!("{id},{lat},{lon}")),
        Just(String::new()),
        Just("only,two".to_string()),
        Just("a,1,2,extra".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the rows, the reader never panics, every error names the file and a line
    /// that exists, and every record's line holds its id.
    #[test]
    fn malformed_rows_never_panic_and_errors_name_real_lines(
        bom in any::<bool>(),
        crlf in any::<bool>(),
        lines in prop::collection::vec(line_strategy(), 0..20),
    ) {
        let directory = tempfile::tempdir().unwrap();
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        if bom {
            text.push('\u{feff}');
        }
        text.push_str("IMG_ID,LAT,LON");
        for line in &lines {
            text.push_str(end);
            text.push_str(line);
        }
        let path = write(directory.path(), text.as_bytes());
        let total_lines = text.split('\n').count() as u64;
        let reader = MetadataReader::open(&path, MetadataOptions::default()).unwrap();
        for result in reader.take(100) {
            match result {
                Ok(record) => {
                    prop_assert!(record.line >= 2 && record.line <= total_lines);
                    prop_assert!(!record.image_id.is_empty());
                }
                Err(DataError::Row { path: error_path, line, .. }) => {
                    prop_assert_eq!(&error_path, &path);
                    prop_assert!(line >= 1 && line <= total_lines, "line {} of {}", line, total_lines);
                }
                Err(other) => prop_assert!(false, "unexpected error {}", other),
            }
        }
    }
}

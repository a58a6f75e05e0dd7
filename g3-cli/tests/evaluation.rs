//! `g3::evaluation` and the `g3 eval` command on small predictions files.

use std::path::{Path, PathBuf};
use std::process::Command;

use g3::core::Error;
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};
use g3::{GeoPoint, RowProblem};

fn write(directory: &Path, name: &str, contents: &str) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn evaluate(
    input: &Path,
    output: Option<&Path>,
    skip_invalid: bool,
) -> g3::core::Result<g3::evaluation::Evaluation> {
    let options = EvaluationOptions {
        skip_invalid,
        ..EvaluationOptions::default()
    };
    evaluate_predictions_csv(input, output, &options, &mut |_| {})
}

fn geodesic_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    GeoPoint::new(a.0, a.1)
        .unwrap()
        .geodesic_distance_km(GeoPoint::new(b.0, b.1).unwrap())
}

const GOOD: &str = "\
IMG_ID,LAT,LON,LAT_pred,LON_pred,note
a.jpg,48.8566,2.3522,48.8566,2.3522,exact
b.jpg,48.8566,2.3522,51.5074,-0.1278,\"Paris, predicted London\"
c.jpg,-33.8688,151.2093,40.7128,-74.006,far
";

#[test]
fn scores_rows_keeps_columns_and_order() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(directory.path(), "predictions.csv", GOOD);
    let output = directory.path().join("scored.csv");
    let evaluation = evaluate(&input, Some(&output), false).unwrap();
    let report = &evaluation.report;
    assert_eq!(report.rows, 3);
    let within: Vec<u64> = report.thresholds.iter().map(|t| t.within).collect();
    assert_eq!(within, [1, 1, 1, 2, 2]);

    let mut reader = csv::Reader::from_path(&output).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "IMG_ID", "LAT", "LON", "LAT_pred", "LON_pred", "note", "geodesic"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows[1][5], *"Paris, predicted London");
    let paris_london: f64 = rows[1][6].parse().unwrap();
    assert_eq!(
        paris_london,
        geodesic_km((48.8566, 2.3522), (51.5074, -0.1278))
    );
    assert_eq!(rows[0][6], *"0");
    assert_eq!(rows[2][0], *"c.jpg");
}

#[test]
fn an_existing_distance_column_is_replaced() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(
        directory.path(),
        "p.csv",
        "LAT,LON,geodesic,LAT_pred,LON_pred\n0,0,999,0,1\n",
    );
    let output = directory.path().join("out.csv");
    evaluate(&input, Some(&output), false).unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    let expected = geodesic_km((0.0, 0.0), (0.0, 1.0));
    assert_eq!(
        text,
        format!("LAT,LON,geodesic,LAT_pred,LON_pred\n0,0,{expected},0,1\n")
    );
}

#[test]
fn byte_order_mark_crlf_and_spaces_are_accepted() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(
        directory.path(),
        "p.csv",
        "\u{feff}LAT,LON,LAT_pred,LON_pred\r\n 10.5 ,20,10.5, 20 \r\n",
    );
    let evaluation = evaluate(&input, None, false).unwrap();
    assert_eq!(evaluation.report.rows, 1);
    assert_eq!(evaluation.report.mean_error_km, Some(0.0));
}

#[test]
fn a_bad_row_is_an_error_naming_its_line_and_column() {
    let directory = tempfile::tempdir().unwrap();
    let cases = [
        (
            "LAT,LON,LAT_pred,LON_pred\n1,2,3,4\n1,2,abc,4\n",
            3,
            "LAT_pred: \"abc\" is not a number",
        ),
        (
            "LAT,LON,LAT_pred,LON_pred\n1,2,,4\n",
            2,
            "LAT_pred: value is missing",
        ),
        (
            "LAT,LON,LAT_pred,LON_pred\n1,2,3,4\n\n95,2,3,4\n",
            4,
            "latitude 95 is outside",
        ),
        (
            "LAT,LON,LAT_pred,LON_pred\n1,2,3\n",
            2,
            "the row has 3 fields but the header has 4",
        ),
        (
            "LAT,LON,LAT_pred,LON_pred\n1,2,NaN,4\n",
            2,
            "latitude is not a finite number",
        ),
        (
            "LAT,LON,LAT_pred,LON_pred,note\r\n1,2,3,4,\"two\r\nlines\"\r\n\r\n\n1,2,x,4,n\r\n",
            6,
            "LAT_pred: \"x\" is not a number",
        ),
    ];
    for (contents, line, message) in cases {
        let input = write(directory.path(), "bad.csv", contents);
        let output = directory.path().join("never-written.csv");
        let error = evaluate(&input, Some(&output), false).unwrap_err();
        match &error {
            Error::InvalidRow { line: found, .. } => assert_eq!(*found, line, "{error}"),
            other => panic!("expected an invalid row, got {other}"),
        }
        let text = error.to_string();
        assert!(text.contains(&format!("bad.csv:{line}:")), "{text}");
        assert!(text.contains(message), "{text}");
        assert!(
            !output.exists(),
            "a failed run must not leave an output file"
        );
    }
}

#[test]
fn invalid_rows_can_be_skipped_and_are_still_written() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(
        directory.path(),
        "p.csv",
        "ID,LAT,LON,LAT_pred,LON_pred\nx,1,2,1,2\ny,1,2,nan,nan\nz,1\nw,0,0,0,0\n",
    );
    let output = directory.path().join("out.csv");
    let evaluation = evaluate(&input, Some(&output), true).unwrap();
    assert_eq!(evaluation.report.rows, 2);
    assert_eq!(evaluation.report.skipped_rows, 2);
    let lines: Vec<u64> = evaluation.skipped_examples.iter().map(|s| s.line).collect();
    assert_eq!(lines, [3, 4]);
    assert!(matches!(
        evaluation.skipped_examples[1].problem,
        RowProblem::FieldCount { .. }
    ));
    let text = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        text,
        "ID,LAT,LON,LAT_pred,LON_pred,geodesic\nx,1,2,1,2,0\ny,1,2,nan,nan,\nz,1,,,,\nw,0,0,0,0,0\n"
    );
}

#[test]
fn a_missing_column_lists_the_header() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(directory.path(), "p.csv", "LAT,LON,lat_pred,LON_pred\n");
    let error = evaluate(&input, None, false).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("no column named \"LAT_pred\""), "{text}");
    assert!(text.contains("LAT, LON, lat_pred, LON_pred"), "{text}");
}

#[test]
fn the_output_replaces_an_old_file_only_on_success() {
    let directory = tempfile::tempdir().unwrap();
    let output = write(directory.path(), "out.csv", "old contents\n");
    let bad = write(
        directory.path(),
        "bad.csv",
        "LAT,LON,LAT_pred,LON_pred\n1,2,x,4\n",
    );
    assert!(evaluate(&bad, Some(&output), false).is_err());
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "old contents\n");
    let good = write(directory.path(), "good.csv", GOOD);
    evaluate(&good, Some(&output), false).unwrap();
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .starts_with("IMG_ID,")
    );
    let leftovers: Vec<_> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

fn g3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_g3"))
}

#[test]
fn cli_prints_a_table_or_json() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(directory.path(), "predictions.csv", GOOD);
    let table = g3()
        .args(["eval", "--predictions"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let stdout = String::from_utf8(table.stdout).unwrap();
    assert!(stdout.contains("rows evaluated: 3"), "{stdout}");
    assert!(stdout.contains("66.67%"), "{stdout}");

    let json = g3()
        .args([
            "eval",
            "--json",
            "--thresholds",
            "10,20000",
            "--predictions",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["rows"], 3);
    assert_eq!(report["thresholds"][0]["threshold_km"], 10.0);
    assert_eq!(report["thresholds"][1]["within"], 3);
    assert_eq!(report["convention"], "strict");
    assert!(report["mean_geoguessr_score"].as_f64().unwrap() > 0.0);
    assert_eq!(report["places"]["rows"], 3);
    assert!(report["places"]["country_percent"].is_number());
}

#[test]
fn cli_names_the_threshold_convention_and_counts_an_exact_threshold_when_inclusive() {
    let directory = tempfile::tempdir().unwrap();
    // A threshold equal to the first row's own error (written as the shortest text that
    // reads back as the same double): only the conventions tell it apart.
    let input = write(
        directory.path(),
        "predictions.csv",
        "LAT,LON,LAT_pred,LON_pred\n0,0,0,1\n10,10,10,10\n",
    );
    let distance = g3::DistanceMetric::Geodesic.distance_km(
        g3::GeoPoint::new(0.0, 0.0).unwrap(),
        g3::GeoPoint::new(0.0, 1.0).unwrap(),
    );
    let thresholds = format!("{distance:?},20000");
    let run = |extra: &[&str]| {
        let output = g3()
            .args(["eval", "--no-places", "--thresholds", &thresholds])
            .args(extra)
            .arg("--predictions")
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let strict = run(&[]);
    assert!(
        strict.contains("error <") && strict.contains("50.00%"),
        "{strict}"
    );
    assert!(!strict.contains("country:"), "{strict}");
    let inclusive = run(&["--inclusive"]);
    assert!(
        inclusive.contains("error ≤") && inclusive.contains("100.00%"),
        "{inclusive}"
    );
    assert!(inclusive.contains("GeoGuessr score"), "{inclusive}");
}

#[test]
fn cli_reports_bad_rows_and_bad_thresholds_clearly() {
    let directory = tempfile::tempdir().unwrap();
    let input = write(
        directory.path(),
        "bad.csv",
        "LAT,LON,LAT_pred,LON_pred\n1,2,x,4\n",
    );
    let failed = g3()
        .args(["eval", "--predictions"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8(failed.stderr).unwrap();
    assert!(stderr.contains("bad.csv:2: column LAT_pred"), "{stderr}");

    let skipped = g3()
        .args(["eval", "--skip-invalid", "--predictions"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(skipped.status.success());
    let stderr = String::from_utf8(skipped.stderr).unwrap();
    assert!(stderr.contains("skipped 1 invalid rows"), "{stderr}");

    let thresholds = g3()
        .args(["eval", "--thresholds", "25,1", "--predictions"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!thresholds.status.success());
    assert!(
        String::from_utf8(thresholds.stderr)
            .unwrap()
            .contains("strictly increasing")
    );
}

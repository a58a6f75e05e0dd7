//! The `g3 embed-gps` command on GeoCLIP's pretrained weights (from `scripts/fetch-assets.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("g3-align/tests/fixtures/gps_encoder")
        .join(name)
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    let values = match npy.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 8 => npy.into_vec::<f64>().unwrap(),
        _ => npy
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    (shape, values)
}

fn g3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_g3"))
}

#[test]
fn embeds_a_csv_in_input_order_as_float32_npy() {
    let directory = tempfile::tempdir().unwrap();
    // Extra columns are ignored; the rows are the fixture's, in its order.
    let coordinates = std::fs::read_to_string(fixture("coordinates.csv")).unwrap();
    let input = directory.path().join("coords.csv");
    let with_ids: String = coordinates
        .lines()
        .enumerate()
        .map(|(index, line)| match index {
            0 => format!("ID,{line}\n"),
            _ => format!("{index},{line}\n"),
        })
        .collect();
    std::fs::write(&input, with_ids).unwrap();
    let output = directory.path().join("emb.npy");
    let run = g3()
        .args([
            "embed-gps",
            "--projection",
            "equal-earth",
            "--batch",
            "16",
            "--input",
        ])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let (shape, ours) = read_npy(&output);
    let (reference_shape, reference) = read_npy(&fixture("equal_earth_f64.npy"));
    assert_eq!(shape, reference_shape);
    let worst = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-4, "max |diff| {worst:e}");
    let bytes = std::fs::read(&output).unwrap();
    let header = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert!(
        matches!(header.dtype(), npyz::DType::Plain(t) if t.size_field() == 4),
        "float32 expected"
    );
}

#[test]
fn a_bad_row_names_its_line_and_leaves_no_output() {
    let directory = tempfile::tempdir().unwrap();
    let input = directory.path().join("coords.csv");
    std::fs::write(&input, "LAT,LON\n1,2\n3,4\n100,5\n").unwrap();
    let output = directory.path().join("emb.npy");
    let run = g3()
        .args(["embed-gps", "--projection", "mercator", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("coords.csv:4:") && stderr.contains("latitude 100"),
        "{stderr}"
    );
    assert!(!output.exists());
    let leftovers = std::fs::read_dir(directory.path()).unwrap().count();
    assert_eq!(leftovers, 1, "only the input should remain");
}

#[test]
fn asking_for_the_g3_head_on_geoclip_weights_explains_the_mismatch() {
    let directory = tempfile::tempdir().unwrap();
    let run = g3()
        .args(["embed-gps", "--projection", "mercator", "--head", "--input"])
        .arg(fixture("coordinates.csv"))
        .arg("--output")
        .arg(directory.path().join("emb.npy"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("missing keys: ") && stderr.contains("location_projection_else.0.weight"),
        "{stderr}"
    );
}

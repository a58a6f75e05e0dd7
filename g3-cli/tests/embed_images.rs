//! The `g3 embed-images` command on the CLIP fixtures of `tools/goldens/clip.py`: a small
//! random CLIP in HF's layout and a G3-structured checkpoint around it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("g3-align/tests/fixtures/clip")
        .join(name)
}

fn g3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_g3"))
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

/// The fixture images in `images.csv` order (which is file-name order).
fn image_names() -> Vec<String> {
    std::fs::read_to_string(fixture("images.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap().to_owned())
        .collect()
}

/// `g3 embed-images` with the G3 fixture checkpoint.
fn embed_with_g3(input: &Path, output: &Path, kind: &str, extra: &[&str]) -> Output {
    g3().args(["embed-images", "--model"])
        .arg(fixture("g3.pth"))
        .arg("--clip-config")
        .arg(fixture("model/config.json"))
        .arg("--preprocessor-config")
        .arg(fixture("model/preprocessor_config.json"))
        .args(["--kind", kind, "--batch", "3", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra)
        .output()
        .unwrap()
}

fn assert_rows_match(output: &Path, golden: &str, rows: &[usize]) {
    let (shape, ours) = read_npy(output);
    let (golden_shape, theirs) = read_npy(&fixture(golden));
    let width = golden_shape[1] as usize;
    assert_eq!(shape, [rows.len() as u64, width as u64]);
    for (row, &golden_row) in rows.iter().enumerate() {
        for column in 0..width {
            let (a, b) = (
                ours[row * width + column],
                theirs[golden_row * width + column],
            );
            assert!(
                (a - b).abs() < 1e-4,
                "row {row} column {column}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn embeds_a_directory_in_file_name_order_with_a_row_sidecar() {
    let directory = tempfile::tempdir().unwrap();
    let output = directory.path().join("emb.npy");
    let run = embed_with_g3(&fixture("images"), &output, "database", &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let names = image_names();
    assert_rows_match(
        &output,
        "g3_database.npy",
        &(0..names.len()).collect::<Vec<_>>(),
    );
    let rows = std::fs::read_to_string(directory.path().join("emb.rows.csv")).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines[0], "row,file,id");
    assert_eq!(lines.len(), names.len() + 1);
    assert!(
        lines[1].starts_with("0,") && lines[1].ends_with(&names[0]),
        "{}",
        lines[1]
    );
}

#[test]
fn a_csv_list_gives_rows_in_list_order() {
    let directory = tempfile::tempdir().unwrap();
    let names = image_names();
    let list = directory.path().join("list.csv");
    std::fs::write(
        &list,
        format!(
            "IMG_ID,LAT\n{},1\n{},2\n{},3\n",
            names[5], names[0], names[5]
        ),
    )
    .unwrap();
    let output = directory.path().join("gps.npy");
    let images = fixture("images");
    let run = embed_with_g3(&list, &output, "gps", &["--root", images.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_rows_match(&output, "g3_image_gps.npy", &[5, 0, 5]);
}

#[test]
fn an_undecodable_file_stops_the_run_or_is_skipped_and_listed() {
    let directory = tempfile::tempdir().unwrap();
    let images = directory.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let names = image_names();
    for name in &names[..3] {
        std::fs::copy(fixture(&format!("images/{name}")), images.join(name)).unwrap();
    }
    std::fs::write(images.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let output = directory.path().join("emb.npy");

    let run = embed_with_g3(&images, &output, "clip", &[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("broken.png"), "{stderr}");
    assert!(stderr.contains("--skip-bad"), "{stderr}");
    assert!(!output.exists(), "no partial output");

    let run = embed_with_g3(&images, &output, "clip", &["--skip-bad"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // broken.png sorts first and is skipped; the three real images keep their order.
    let (shape, _) = read_npy(&output);
    assert_eq!(shape, [3, 24]);
    let skipped = std::fs::read_to_string(directory.path().join("emb.skipped.csv")).unwrap();
    assert!(skipped.starts_with("file,error\n"), "{skipped}");
    assert!(skipped.contains("broken.png"), "{skipped}");
    let rows = std::fs::read_to_string(directory.path().join("emb.rows.csv")).unwrap();
    assert!(!rows.contains("broken.png"), "{rows}");
    assert!(rows.lines().nth(1).unwrap().ends_with(&names[0]), "{rows}");
}

#[test]
fn an_hf_clip_directory_embeds_clip_features_but_has_no_g3_heads() {
    let directory = tempfile::tempdir().unwrap();
    let output = directory.path().join("clip.npy");
    let run = g3()
        .args(["embed-images", "--model"])
        .arg(fixture("model"))
        .args(["--kind", "clip", "--input"])
        .arg(fixture("images"))
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (shape, values) = read_npy(&output);
    assert_eq!(shape, [image_names().len() as u64, 24]);
    let norm: f64 = values[..24].iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "rows are L2-normalised: {norm}");

    let run = g3()
        .args(["embed-images", "--model"])
        .arg(fixture("model"))
        .args(["--kind", "database", "--input"])
        .arg(fixture("images"))
        .arg("--output")
        .arg(directory.path().join("db.npy"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("g3.pth"), "{stderr}");
}

#[test]
fn a_model_that_is_not_here_names_the_files_to_place() {
    let directory = tempfile::tempdir().unwrap();
    let run = g3()
        .env("HF_HUB_CACHE", directory.path())
        .env("G3_CACHE_DIR", directory.path())
        .args([
            "embed-images",
            "--model",
            "openai/clip-vit-large-patch14",
            "--kind",
            "clip",
        ])
        .arg("--input")
        .arg(fixture("images"))
        .arg("--output")
        .arg(directory.path().join("x.npy"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("openai/clip-vit-large-patch14"), "{stderr}");
    assert!(stderr.contains("model.safetensors"), "{stderr}");
}

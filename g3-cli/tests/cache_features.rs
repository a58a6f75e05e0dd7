//! `g3 cache-features` on the CLIP fixtures of `tools/goldens/clip.py` (a small random CLIP
//! in HF's layout): unnormalised CLIP features in metadata order, the reference's row filter,
//! unreadable images skipped or stopping the run, and a stopped run resuming part by part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("g3-align/tests/fixtures/clip")
        .join(name)
}

fn g3(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(arguments)
        .output()
        .expect("the g3 binary runs")
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

const IMAGES: [&str; 6] = [
    "landscape.jpg",
    "portrait.png",
    "gray.png",
    "rgba.png",
    "palette.gif",
    "cmyk.jpg",
];

/// An MP16-Pro-style metadata file over the fixture images; the row without a country is
/// dropped, as G3's loader drops it.
fn write_metadata(directory: &Path) -> PathBuf {
    let mut csv = String::from("IMG_ID,LAT,LON,city,state,country\n");
    for (index, image) in IMAGES.iter().enumerate() {
        csv.push_str(&format!(
            "{image},{},{},City {index},State,Country\n",
            10.0 + index as f64,
            20.0 - index as f64
        ));
    }
    csv.push_str("narrow.png,1,2,Nowhere,,\n");
    let path = directory.join("metadata.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn cache(metadata: &Path, images: &Path, output: &Path, extra: &[&str]) -> Output {
    cache_from(metadata, "--images", images, output, extra)
}

/// `g3 cache-features` reading the photos from `source` (`--images DIR` or `--archive A.tar`).
fn cache_from(
    metadata: &Path,
    source_flag: &str,
    source: &Path,
    output: &Path,
    extra: &[&str],
) -> Output {
    let model = fixture("model");
    let mut arguments = vec![
        "cache-features",
        "--model",
        model.to_str().unwrap(),
        "--metadata",
        metadata.to_str().unwrap(),
        source_flag,
        source.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--batch",
        "2",
        "--part-rows",
        "2",
        "--no-text",
    ];
    arguments.extend_from_slice(extra);
    g3(&arguments)
}

#[test]
fn features_are_clips_unnormalised_and_follow_the_metadata() {
    let directory = tempfile::tempdir().unwrap();
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("cache");
    let result = cache(&metadata, &fixture("images"), &output, &[]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let (shape, features) = read_npy(&output.join("image_features.npy"));
    assert_eq!(shape, [6, 24]);
    assert!(
        !output.join("parts").exists(),
        "parts are removed at the end"
    );
    let rows = std::fs::read_to_string(output.join("metadata.csv")).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines[0], "IMG_ID,LAT,LON,description");
    assert_eq!(lines.len(), 7);
    assert_eq!(
        lines[1],
        "landscape.jpg,10,20,\"A street view photo taken in City 0, State, Country\""
    );

    // The same images through `g3 embed-images --kind clip` give the normalised rows.
    let list = directory.path().join("list.csv");
    std::fs::write(&list, format!("file\n{}\n", IMAGES.join("\n"))).unwrap();
    let embedded = directory.path().join("clip.npy");
    let model = fixture("model");
    let images = fixture("images");
    let result = g3(&[
        "embed-images",
        "--model",
        model.to_str().unwrap(),
        "--input",
        list.to_str().unwrap(),
        "--root",
        images.to_str().unwrap(),
        "--output",
        embedded.to_str().unwrap(),
        "--kind",
        "clip",
    ]);
    assert!(result.status.success());
    let (_, normalised) = read_npy(&embedded);
    for (row, expected) in features.chunks(24).zip(normalised.chunks(24)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() > 1e-3,
            "the cache keeps unnormalised features"
        );
        for (value, want) in row.iter().zip(expected) {
            assert!((value / norm - want).abs() < 1e-5);
        }
    }
}

#[test]
fn a_stopped_run_resumes_and_bad_images_are_skipped_or_named() {
    let directory = tempfile::tempdir().unwrap();
    let metadata = write_metadata(directory.path());
    // A copy of the images with the fifth one missing.
    let images = directory.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for image in IMAGES {
        std::fs::copy(fixture("images").join(image), images.join(image)).unwrap();
    }
    std::fs::remove_file(images.join("palette.gif")).unwrap();
    let output = directory.path().join("cache");

    let result = cache(&metadata, &images, &output, &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("palette.gif"), "{stderr}");
    assert!(stderr.contains("--skip-bad"), "{stderr}");
    // Parts before the bad image are kept.
    assert!(output.join("parts/000000.rows.csv").is_file());
    assert!(output.join("parts/000001.rows.csv").is_file());

    std::fs::copy(fixture("images/palette.gif"), images.join("palette.gif")).unwrap();
    let result = cache(&metadata, &images, &output, &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("1 of 3 parts"), "{stderr}");
    let (resumed_shape, resumed) = read_npy(&output.join("image_features.npy"));

    let fresh = directory.path().join("fresh");
    assert!(cache(&metadata, &images, &fresh, &[]).status.success());
    let (fresh_shape, expected) = read_npy(&fresh.join("image_features.npy"));
    assert_eq!(resumed_shape, fresh_shape);
    assert_eq!(resumed, expected);

    std::fs::remove_file(images.join("palette.gif")).unwrap();
    let skipping = directory.path().join("skipping");
    let result = cache(&metadata, &images, &skipping, &["--skip-bad"]);
    assert!(result.status.success());
    let (shape, _) = read_npy(&skipping.join("image_features.npy"));
    assert_eq!(shape, [5, 24]);
    let skipped = std::fs::read_to_string(skipping.join("skipped.csv")).unwrap();
    assert!(
        skipped.starts_with("IMG_ID,error\npalette.gif,"),
        "{skipped}"
    );
    let rows = std::fs::read_to_string(skipping.join("metadata.csv")).unwrap();
    assert!(!rows.contains("palette.gif"));
}

#[test]
fn text_features_outside_the_models_vocabulary_are_a_clear_error() {
    // The fixture's text tower knows 1,000 tokens; CLIP's tokenizer produces ids up to 49,407.
    let directory = tempfile::tempdir().unwrap();
    let metadata = write_metadata(directory.path());
    let output = directory.path().join("cache");
    let model = fixture("model");
    let images = fixture("images");
    let result = g3(&[
        "cache-features",
        "--model",
        model.to_str().unwrap(),
        "--metadata",
        metadata.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("outside the vocabulary"), "{stderr}");
    // The image features already computed are kept for the next run.
    assert!(output.join("parts/000000.image.npy").is_file());
}

/// The images in a tar archive, under `a/b/IMG_ID` names as MP16-Pro's archive has them.
fn write_archive(path: &Path) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (index, image) in IMAGES.iter().enumerate() {
        let bytes = std::fs::read(fixture("images").join(image)).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("0{index}/1{index}/{image}"),
                &bytes[..],
            )
            .unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn shards_read_from_an_archive_join_into_the_single_run_cache_for_training() {
    let directory = tempfile::tempdir().unwrap();
    let metadata = write_metadata(directory.path());
    let archive = directory.path().join("mp-16-images.tar");
    write_archive(&archive);
    let cache_from_archive = |output: &Path, extra: &[&str]| {
        let result = cache_from(&metadata, "--archive", &archive, output, extra);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
    };
    // The folder run is the reference.
    let whole = directory.path().join("whole");
    let result = cache(&metadata, &fixture("images"), &whole, &[]);
    assert!(result.status.success());
    let sharded = directory.path().join("sharded");
    for shard in ["1/2", "0/2"] {
        cache_from_archive(&sharded, &["--shard", shard]);
    }
    assert!(sharded.join("part-0-of-2.json").is_file());

    // `g3 train` joins the shards beside its image_features path, then trains on them.
    std::fs::write(
        sharded.join("train.toml"),
        "image_features = \"image_features.npy\"\nlocations = \"metadata.csv\"\noutput = \"run\"\nlocation_encoder = \"fresh\"\n\n[model]\nfeature_size = 24\n\n[model.location_encoder]\nsigmas = [1.0]\nencoded_size = 4\nhidden_width = 8\nhidden_layers = 1\noutput_size = 6\n\n[training]\nvariant = \"image-gps\"\nepochs = 1\nbatch_size = 3\n",
    )
    .unwrap();
    let result = g3(&[
        "train",
        "--config",
        sharded.join("train.toml").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("joined 2 feature parts"), "{stderr}");
    for file in ["image_features.npy", "metadata.csv"] {
        assert_eq!(
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(sharded.join(file)).unwrap(),
            "{file}"
        );
    }

    // A missing shard is named.
    let lonely = directory.path().join("lonely");
    cache_from_archive(&lonely, &["--shard", "1/3"]);
    std::fs::copy(sharded.join("train.toml"), lonely.join("train.toml")).unwrap();
    let result = g3(&[
        "train",
        "--config",
        lonely.join("train.toml").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("missing 2 of 3 feature parts: part-0-of-3, part-2-of-3"),
        "{stderr}"
    );
}

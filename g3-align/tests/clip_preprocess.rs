//! CLIP image preprocessing against HF transformers' PIL `CLIPImageProcessor`.
//!
//! Fixtures in `tests/fixtures/clip/` come from `tools/goldens/clip.py` (transformers 5.24.0,
//! Pillow 13.0.0): 16 images of every mode PIL opens and the resized, cropped bytes the
//! processor produced from each.

use std::path::{Path, PathBuf};

use g3_align::clip::{ClipImageProcessor, ClipImageProcessorConfig};

/// The acceptance bar: normalised pixel values within 2/255 of the reference. The
/// implementation is byte-exact on every fixture, which the test also holds it to.
const MAX_NORMALIZED_DIFF: f32 = 2.0 / 255.0;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clip")
        .join(name)
}

fn image_names() -> Vec<String> {
    std::fs::read_to_string(fixture("images.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap().to_owned())
        .collect()
}

/// `pixels_u8.npy`: [n, 224, 224, 3] bytes.
fn reference_pixels() -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(fixture("pixels_u8.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&n| n as usize).collect();
    (shape, npy.into_vec::<u8>().unwrap())
}

fn processor() -> ClipImageProcessor {
    ClipImageProcessor::new(
        ClipImageProcessorConfig::from_json_file(&fixture("model/preprocessor_config.json"))
            .unwrap(),
    )
}

#[test]
fn preprocessing_matches_the_pil_clip_image_processor() {
    let names = image_names();
    let (shape, reference) = reference_pixels();
    assert_eq!(shape, [names.len(), 224, 224, 3]);
    let processor = processor();
    let per_image = 224 * 224 * 3;
    let mut failures = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let encoded = std::fs::read(fixture(&format!("images/{name}"))).unwrap();
        let rgb = processor.decode(&encoded, name).unwrap();
        let ours = processor.resize_and_crop(&rgb).unwrap();
        let theirs = image::RgbImage::from_raw(
            224,
            224,
            reference[index * per_image..][..per_image].to_vec(),
        )
        .unwrap();
        let byte_diffs: Vec<i32> = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .collect();
        let max_byte = byte_diffs.iter().copied().max().unwrap();
        let differing = byte_diffs.iter().filter(|&&d| d > 0).count();
        let normalized_ours = processor.normalize(&ours);
        let normalized_theirs = processor.normalize(&theirs);
        let max_normalized = normalized_ours
            .iter()
            .zip(&normalized_theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{name}: max byte diff {max_byte}, {differing} of {} bytes differ, max normalised diff {max_normalized:.5}",
            byte_diffs.len()
        );
        if max_normalized > MAX_NORMALIZED_DIFF || max_byte > 0 {
            failures.push(format!(
                "{name}: {differing} bytes differ (max {max_byte}), max normalised diff {max_normalized}"
            ));
        }
    }
    assert!(failures.is_empty(), "not byte-exact: {failures:?}");
}

#[test]
fn preprocess_gives_channel_first_normalized_values() {
    let processor = processor();
    let encoded = std::fs::read(fixture("images/one_pixel.png")).unwrap();
    let values = processor.preprocess(&encoded, "one_pixel.png").unwrap();
    assert_eq!(values.len(), processor.values_per_image());
    // A single (200, 30, 90) pixel stretched to 224 x 224 stays that colour.
    let config = processor.config();
    for (channel, byte) in [200.0f32, 30.0, 90.0].into_iter().enumerate() {
        let expected = (byte / 255.0 - config.image_mean[channel]) / config.image_std[channel];
        let plane = &values[channel * 224 * 224..][..224 * 224];
        assert!(
            plane.iter().all(|v| (v - expected).abs() < 1e-5),
            "channel {channel}"
        );
    }
}

#[test]
fn broken_jpegs_give_errors_not_crashes() {
    let processor = processor();
    let encoded = std::fs::read(fixture("images/landscape.jpg")).unwrap();
    // Cut inside the entropy-coded data, inside the headers, and garbage after the magic.
    for (label, bytes) in [
        ("truncated.jpg", encoded[..encoded.len() / 2].to_vec()),
        ("headers_only.jpg", encoded[..200].to_vec()),
        ("garbage.jpg", {
            let mut garbage = vec![0xFF, 0xD8, 0xFF];
            garbage.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
            garbage
        }),
    ] {
        match processor.preprocess(&bytes, label) {
            // libjpeg, like PIL with LOAD_TRUNCATED_IMAGES (G3 sets it), fills in a cut image.
            Ok(values) => assert_eq!(values.len(), processor.values_per_image(), "{label}"),
            Err(error) => assert!(error.to_string().contains(label), "{error}"),
        }
    }
}

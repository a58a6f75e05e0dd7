//! Qwen2-VL's preprocessing against `qwen_vl_utils.fetch_image` + transformers'
//! `Qwen2VLImageProcessor` (goldens: `tools/goldens/qwen2_vl.py`): sizes, resized bytes and
//! patches identical.

mod common;

use common::{csv_rows, fixture, photo_bytes, read_npy};

use g3_qwen2_vl::{ImageProcessor, ImageProcessorConfig, smart_resize};

fn processor(min_pixels: u64, max_pixels: u64) -> ImageProcessor {
    ImageProcessor::new(ImageProcessorConfig {
        min_pixels,
        max_pixels,
        ..ImageProcessorConfig::default()
    })
}

#[test]
fn smart_resize_matches_qwen_vl_utils() {
    let rows = csv_rows("smart_resize.csv");
    assert!(rows.len() > 150);
    for row in rows {
        let number = |index: usize| row[index].parse::<u64>().unwrap();
        let found = smart_resize(number(0) as u32, number(1) as u32, 28, number(2), number(3));
        let case = format!("{row:?}");
        if row[4].is_empty() || row[4] == "0" || row[5] == "0" {
            // The reference raises, here or at PIL's resize to a 0-pixel side.
            assert!(found.is_err(), "{case}: {found:?}");
        } else {
            assert_eq!(
                found.unwrap(),
                (number(4) as u32, number(5) as u32),
                "{case}"
            );
        }
    }
}

#[test]
fn resized_bytes_match_fetch_image() {
    let processor = processor(4 * 28 * 28, 12 * 28 * 28);
    let rows = csv_rows("resized.csv");
    assert_eq!(rows.len(), 6);
    for row in rows {
        let name = &row[0];
        let decoded =
            g3_align::clip::decode_rgb_like_pil(&photo_bytes(name), name, Default::default())
                .unwrap();
        let resized = processor.resize(&decoded, name).unwrap();
        let stem = name.split('.').next().unwrap();
        let (shape, expected) = read_npy::<u8>(&format!("resized_{stem}.npy"));
        assert_eq!(
            shape,
            [resized.height() as usize, resized.width() as usize, 3],
            "{name}"
        );
        let differing = resized
            .as_raw()
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{name}: {differing} bytes differ");
    }
}

#[test]
fn patches_match_the_image_processor_bit_for_bit() {
    let processor = processor(28 * 28, 28 * 28 * 6);
    for row in csv_rows("images.csv") {
        let name = &row[0];
        let processed = processor.process(&photo_bytes(name), name).unwrap();
        let number = |index: usize| row[index].parse::<usize>().unwrap();
        assert_eq!(
            (
                processed.grid.frames,
                processed.grid.rows,
                processed.grid.columns
            ),
            (number(3), number(4), number(5)),
            "{name}"
        );
        let stem = name.split('.').next().unwrap();
        let (shape, expected) = read_npy::<f32>(&format!("pixels_{stem}.npy"));
        assert_eq!(shape, [processed.grid.patches(), 1176], "{name}");
        let differing = processed
            .pixel_values
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "{name}: {differing} values differ");
    }
}

#[test]
fn jpeg_reencoding_writes_pils_bytes() {
    use sha2::{Digest, Sha256};
    let rows = csv_rows("reencoded.csv");
    assert_eq!(rows.len(), 7);
    for row in rows {
        let name = &row[0];
        let source = if name == "gray_photo.jpg" {
            std::fs::read(fixture(name)).unwrap()
        } else {
            photo_bytes(name)
        };
        let written =
            g3_align::clip::reencode_jpeg_like_pil(&source, name, Default::default(), 75).unwrap();
        let digest: String = Sha256::digest(&written)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            (written.len().to_string(), digest),
            (row[1].clone(), row[2].clone()),
            "{name}"
        );
    }
}

#[test]
fn undecodable_and_degenerate_photos_are_named() {
    let processor = ImageProcessor::default();
    let error = processor.process(b"not an image", "notes.txt").unwrap_err();
    assert!(error.to_string().contains("notes.txt"), "{error}");
    // 3 × 500 pixels in a budget of 12 squares of 28 × 28: a side of 0 pixels.
    let tight = self::processor(4 * 28 * 28, 12 * 28 * 28);
    let Err(error) = tight.process(&photo_bytes("narrow.png"), "narrow.png") else {
        panic!("narrow.png was resized to a side of 0 pixels without an error");
    };
    assert!(error.to_string().contains("narrow.png"), "{error}");
}

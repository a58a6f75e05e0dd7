//! GeoRanker's reward model against transformers + PEFT on a tiny random Qwen2-VL
//! (goldens: `tools/goldens/qwen2_vl.py`): multimodal positions, the vision tower's tokens,
//! and rewards of a left-padded batch and of each sequence alone, with the LoRA merged at
//! load compared with PEFT's unmerged forward.

mod common;

use common::{csv_rows, fixture, read_npy};

use burn::prelude::*;
use g3_qwen2_vl::{
    ImageGrid, LoraAdapter, MultimodalBatch, Qwen2VlError, RewardModel, load_reward_model,
    multimodal_positions,
};

const TOLERANCE: f32 = 1e-4;

fn device() -> Device {
    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    Device::ndarray()
}

fn model() -> RewardModel {
    load_reward_model(&fixture("model"), &fixture("adapter"), &device()).unwrap()
}

/// Each photo's grid and pixel values.
fn photo(name: &str) -> (ImageGrid, Vec<f32>) {
    let row = csv_rows("images.csv")
        .into_iter()
        .find(|row| row[0] == name)
        .unwrap();
    let number = |index: usize| row[index].parse::<usize>().unwrap();
    let grid = ImageGrid {
        frames: number(3),
        rows: number(4),
        columns: number(5),
    };
    let stem = name.split('.').next().unwrap();
    let (shape, values) = read_npy::<f32>(&format!("pixels_{stem}.npy"));
    assert_eq!(shape, [grid.patches(), 1176]);
    (grid, values)
}

/// The photos of each sequence, in token order.
fn sequence_photos() -> Vec<Vec<String>> {
    let mut photos: Vec<Vec<String>> = Vec::new();
    for row in csv_rows("sequence_images.csv") {
        let sequence: usize = row[0].parse().unwrap();
        if photos.len() <= sequence {
            photos.resize(sequence + 1, Vec::new());
        }
        photos[sequence].push(row[1].clone());
    }
    photos
}

fn images_of(names: &[String]) -> (Vec<ImageGrid>, Vec<f32>) {
    let mut grids = Vec::new();
    let mut pixels = Vec::new();
    for name in names {
        let (grid, values) = photo(name);
        grids.push(grid);
        pixels.extend(values);
    }
    (grids, pixels)
}

/// The padded batch of the goldens.
fn batch() -> MultimodalBatch {
    let (shape, ids) = read_npy::<i64>("input_ids.npy");
    let (_, mask) = read_npy::<i64>("attention_mask.npy");
    let names: Vec<String> = sequence_photos().into_iter().flatten().collect();
    let (image_grids, pixel_values) = images_of(&names);
    MultimodalBatch {
        batch: shape[0],
        input_ids: ids.iter().map(|&id| id as u32).collect(),
        attention_mask: mask.iter().map(|&bit| bit == 1).collect(),
        pixel_values,
        image_grids,
    }
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: lengths");
    let worst = found
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(
        worst <= tolerance,
        "{what}: largest difference {worst:e} over {tolerance:e}\n found    {found:?}\n expected {expected:?}"
    );
}

#[test]
fn positions_match_get_rope_index_on_real_tokens() {
    let inputs = batch();
    let model = model();
    let positions = multimodal_positions(
        &inputs.input_ids,
        &inputs.attention_mask,
        inputs.batch,
        &inputs.image_grids,
        2,
        model.qwen2_vl.model.config(),
    )
    .unwrap();
    let (shape, expected) = read_npy::<i64>("position_ids.npy");
    let [axes, batch, length] = shape[..] else {
        panic!("position_ids.npy is {shape:?}")
    };
    assert_eq!((axes, batch, length), (3, inputs.batch, inputs.length()));
    let mut compared = 0;
    for axis in 0..3 {
        for sequence in 0..batch {
            for token in 0..length {
                // Padding positions differ between transformers versions (0 or 1) and are
                // never seen by a real token.
                if inputs.attention_mask[sequence * length + token] {
                    assert_eq!(
                        positions.get(axis, sequence, token),
                        expected[(axis * batch + sequence) * length + token],
                        "axis {axis}, sequence {sequence}, token {token}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 100);
}

#[test]
fn vision_tower_matches_transformers() {
    let model = model();
    let (grids, pixels) = images_of(&sequence_photos()[0]);
    let patches: usize = grids.iter().map(ImageGrid::patches).sum();
    let input = Tensor::<2>::from_data(TensorData::new(pixels, [patches, 1176]), &device());
    let output = model.qwen2_vl.visual.forward(input, &grids).unwrap();
    let (shape, expected) = read_npy::<f32>("image_embeds.npy");
    assert_eq!(output.dims().to_vec(), shape);
    let found = output
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    assert_close(&found, &expected, TOLERANCE, "image embeddings");
}

#[test]
fn batched_rewards_match_peft_unmerged_forward() {
    let model = model();
    let rewards = model.rewards(&batch()).unwrap();
    let (_, expected) = read_npy::<f32>("rewards.npy");
    assert_close(&rewards, &expected, TOLERANCE, "batched rewards");
    // The reference's own merge lands within the same tolerance.
    let (_, merged) = read_npy::<f32>("rewards_merged.npy");
    assert_close(&rewards, &merged, TOLERANCE, "against merge_and_unload");
}

#[test]
fn each_sequence_alone_matches_its_reward() {
    let model = model();
    let padded = batch();
    let length = padded.length();
    let photos = sequence_photos();
    let (_, expected) = read_npy::<f32>("rewards_alone.npy");
    for (sequence, names) in photos.iter().enumerate() {
        let row = sequence * length..(sequence + 1) * length;
        let input_ids: Vec<u32> = row
            .clone()
            .filter(|&index| padded.attention_mask[index])
            .map(|index| padded.input_ids[index])
            .collect();
        let (image_grids, pixel_values) = images_of(names);
        let alone = MultimodalBatch {
            batch: 1,
            attention_mask: vec![true; input_ids.len()],
            input_ids,
            pixel_values,
            image_grids,
        };
        let reward = model.rewards(&alone).unwrap();
        assert_close(
            &reward,
            &expected[sequence..=sequence],
            TOLERANCE,
            &format!("sequence {sequence} alone"),
        );
    }
}

#[test]
fn the_lora_changes_the_rewards() {
    // Without the adapter's matrices (value head only) the rewards move: the merge is not
    // a no-op that the tolerance would hide.
    let adapter = LoraAdapter::read(&fixture("adapter")).unwrap();
    assert_eq!(adapter.merged_layers(), 6);
    assert_eq!(adapter.scale, 2.0);
    let merged = model().rewards(&batch()).unwrap();
    let mut base = RewardModel::new(
        &g3_qwen2_vl::Qwen2VlConfig::from_file(&fixture("model/config.json")).unwrap(),
        &device(),
    );
    g3_qwen2_vl::load_base_weights(&mut base, &fixture("model")).unwrap();
    base.value_head = model().value_head;
    let unmerged = base.rewards(&batch()).unwrap();
    let change = merged
        .iter()
        .zip(&unmerged)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(change > 0.1, "the LoRA moved the rewards by only {change}");
}

#[test]
fn right_padding_is_refused() {
    let mut inputs = batch();
    let length = inputs.length();
    inputs.attention_mask[length - 1] = false;
    let error = model().rewards(&inputs).unwrap_err();
    assert!(error.to_string().contains("pad on the left"), "{error}");
}

#[test]
fn missing_files_are_named() {
    let empty = tempfile::tempdir().unwrap();
    let error = load_reward_model(empty.path(), &fixture("adapter"), &device()).unwrap_err();
    assert!(matches!(error, Qwen2VlError::Io { .. }), "{error}");
    assert!(error.to_string().contains("config.json"), "{error}");
    let error = LoraAdapter::read(empty.path()).unwrap_err();
    assert!(error.to_string().contains("adapter_config.json"), "{error}");
    // A model folder with a config but no weights.
    std::fs::copy(
        fixture("model/config.json"),
        empty.path().join("config.json"),
    )
    .unwrap();
    let error = load_reward_model(empty.path(), &fixture("adapter"), &device()).unwrap_err();
    assert!(
        error.to_string().contains("no model.safetensors"),
        "{error}"
    );
}

#[test]
fn an_adapter_without_value_head_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("adapter/adapter_config.json"),
        folder.path().join("adapter_config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(fixture("adapter/adapter_model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.contains("value_head"))
        .collect();
    safetensors::serialize_to_file(kept, None, &folder.path().join("adapter_model.safetensors"))
        .unwrap();
    let error = load_reward_model(&fixture("model"), folder.path(), &device()).unwrap_err();
    assert!(error.to_string().contains("value_head"), "{error}");
}

#[test]
fn half_precision_rewards_stay_close_on_a_half_precision_backend() {
    use g3_qwen2_vl::{Precision, load_reward_model_in};
    let (_, expected) = read_npy::<f32>("rewards.npy");
    let flex = Device::flex();
    for (precision, tolerance) in [(Precision::F16, 0.05), (Precision::Bf16, 0.5)] {
        let model =
            load_reward_model_in(&fixture("model"), &fixture("adapter"), &flex, precision).unwrap();
        let rewards = model.rewards(&batch()).unwrap();
        let worst = rewards
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        println!("{precision}: rewards {rewards:?}, largest difference {worst}");
        assert!(
            worst <= tolerance,
            "{precision}: {rewards:?} against {expected:?}"
        );
    }
    // burn-ndarray computes in f32 only: half precision is refused, not ignored.
    let error = load_reward_model_in(
        &fixture("model"),
        &fixture("adapter"),
        &device(),
        Precision::F16,
    )
    .unwrap_err();
    assert!(error.to_string().contains("float32"), "{error}");
}

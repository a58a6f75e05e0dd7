//! Multimodal rotary positions (HF `get_rope_index`): every token gets a (time, row,
//! column) position. Text tokens move all three together; an image's merged tokens share
//! the image's start along time and spread over its rows and columns, and the text after
//! the image resumes one past the largest position the image used. Padding (left, in
//! batches) gets position 1 on every axis and is not counted.

use crate::config::TextConfig;
use crate::error::Qwen2VlError;
use crate::vision::ImageGrid;

/// Positions of a batch, `[3, batch, length]` in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultimodalPositions {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence (padding included).
    pub length: usize,
    /// Time positions, then row positions, then column positions, each `[batch, length]`.
    pub values: Vec<i64>,
}

impl MultimodalPositions {
    /// The position of token `token` of sequence `sequence` along `axis` (0 time, 1 row,
    /// 2 column).
    pub fn get(&self, axis: usize, sequence: usize, token: usize) -> i64 {
        self.values[(axis * self.batch + sequence) * self.length + token]
    }
}

/// Computes the positions of `input_ids` (`[batch, length]`, row-major) whose attended
/// tokens are marked in `attention_mask`; `grids` are the batch's images in the order their
/// tokens appear, `merge` the vision tower's `spatial_merge_size`.
pub fn multimodal_positions(
    input_ids: &[u32],
    attention_mask: &[bool],
    batch: usize,
    grids: &[ImageGrid],
    merge: usize,
    config: &TextConfig,
) -> Result<MultimodalPositions, Qwen2VlError> {
    let invalid = |reason: String| Qwen2VlError::InvalidInput { reason };
    if batch == 0
        || !input_ids.len().is_multiple_of(batch)
        || attention_mask.len() != input_ids.len()
    {
        return Err(invalid(format!(
            "{} token ids and {} mask entries do not make a batch of {batch} sequences",
            input_ids.len(),
            attention_mask.len()
        )));
    }
    let length = input_ids.len() / batch;
    let mut values = vec![1_i64; 3 * batch * length];
    let mut images = grids.iter();
    for sequence in 0..batch {
        let row = sequence * length..(sequence + 1) * length;
        let attended: Vec<usize> = row
            .clone()
            .filter(|&index| attention_mask[index])
            .map(|index| index - row.start)
            .collect();
        let mut set = |token: usize, position: [i64; 3]| {
            for (axis, value) in position.into_iter().enumerate() {
                values[(axis * batch + sequence) * length + token] = value;
            }
        };
        let mut next = 0_i64;
        let mut cursor = 0;
        while cursor < attended.len() {
            let token = input_ids[row.start + attended[cursor]];
            if token == config.video_token_id {
                return Err(invalid(format!(
                    "sequence {sequence} holds video tokens; only images are supported"
                )));
            }
            if token != config.image_token_id {
                set(attended[cursor], [next; 3]);
                next += 1;
                cursor += 1;
                continue;
            }
            let grid = images.next().ok_or_else(|| {
                invalid(format!(
                    "sequence {sequence} has more images than the {} image grids given",
                    grids.len()
                ))
            })?;
            let (rows, columns) = (grid.rows / merge, grid.columns / merge);
            let tokens = grid.frames * rows * columns;
            let run = attended.get(cursor..cursor + tokens).filter(|run| {
                run.iter()
                    .all(|&index| input_ids[row.start + index] == config.image_token_id)
            });
            let Some(run) = run else {
                return Err(invalid(format!(
                    "sequence {sequence}: an image of grid {grid:?} needs {tokens} consecutive image tokens"
                )));
            };
            for (offset, &index) in run.iter().enumerate() {
                let frame = offset / (rows * columns);
                let row_index = offset / columns % rows;
                let column = offset % columns;
                set(
                    index,
                    [
                        next + frame as i64,
                        next + row_index as i64,
                        next + column as i64,
                    ],
                );
            }
            let largest = grid.frames.max(rows).max(columns) as i64 - 1;
            next += largest + 1;
            cursor += tokens;
        }
    }
    if images.next().is_some() {
        return Err(invalid(format!(
            "{} image grids were given but the token ids hold fewer images",
            grids.len()
        )));
    }
    Ok(MultimodalPositions {
        batch,
        length,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TextConfig {
        TextConfig {
            image_token_id: 9,
            vision_start_token_id: 7,
            vision_end_token_id: 8,
            ..TextConfig::default()
        }
    }

    #[test]
    fn text_after_an_image_resumes_past_its_largest_position() {
        // 2 text tokens, an image of 4 × 6 patches (2 × 3 merged), 2 text tokens.
        let ids = [1, 7, 9, 9, 9, 9, 9, 9, 8, 2];
        let mask = [true; 10];
        let grid = ImageGrid {
            frames: 1,
            rows: 4,
            columns: 6,
        };
        let positions = multimodal_positions(&ids, &mask, 1, &[grid], 2, &config()).unwrap();
        let axis = |axis: usize| {
            (0..10)
                .map(|t| positions.get(axis, 0, t))
                .collect::<Vec<_>>()
        };
        assert_eq!(axis(0), [0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(axis(1), [0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(axis(2), [0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn left_padding_gets_position_one_and_is_not_counted() {
        let ids = [0, 0, 3, 4, 5, 6, 7, 8];
        let mask = [false, false, true, true, true, true, true, true];
        let positions = multimodal_positions(&ids, &mask, 2, &[], 2, &config()).unwrap();
        assert_eq!(positions.length, 4);
        let first: Vec<i64> = (0..4).map(|t| positions.get(1, 0, t)).collect();
        assert_eq!(first, [1, 1, 0, 1]);
        let second: Vec<i64> = (0..4).map(|t| positions.get(2, 1, t)).collect();
        assert_eq!(second, [0, 1, 2, 3]);
    }

    #[test]
    fn images_and_grids_must_agree() {
        let grid = ImageGrid {
            frames: 1,
            rows: 4,
            columns: 4,
        };
        let short = [7, 9, 9, 9, 8];
        let error = multimodal_positions(&short, &[true; 5], 1, &[grid], 2, &config()).unwrap_err();
        assert!(
            error.to_string().contains("4 consecutive image tokens"),
            "{error}"
        );
        let error =
            multimodal_positions(&[1, 2], &[true; 2], 1, &[grid], 2, &config()).unwrap_err();
        assert!(error.to_string().contains("fewer images"), "{error}");
        let error = multimodal_positions(&[7, 9], &[true; 2], 1, &[], 2, &config()).unwrap_err();
        assert!(error.to_string().contains("more images"), "{error}");
    }
}

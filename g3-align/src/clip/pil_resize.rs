//! PIL's bicubic resampling of 8-bit RGB, to the byte.
//!
//! Resampling crates (the image crate's CatmullRom, fast_image_resize's convolution) use the
//! same kernel as PIL but round differently; measured on the CLIP fixtures they land up to
//! 10 grey levels away from PIL. CLIP's features must come from the pixels PyTorch users feed
//! it, so this module follows PIL's algorithm (`Resample.c`): per output pixel, kernel weights
//! over the source window, normalised to sum 1, converted to fixed point with 22 fractional
//! bits; a horizontal pass into 8-bit rows (only the rows the vertical pass will read), then a
//! vertical pass, each rounding half up and clamping to 0..=255.

use image::RgbImage;

/// Fractional bits of PIL's fixed-point weights for 8-bit images (32 - 8 - 2).
const PRECISION_BITS: u32 = 22;
/// PIL's bicubic kernel reaches two source pixels either side (before scaling).
const BICUBIC_SUPPORT: f64 = 2.0;
/// PIL's bicubic kernel parameter.
const BICUBIC_A: f64 = -0.5;

/// PIL's bicubic kernel (Keys, a = -0.5).
fn bicubic(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * BICUBIC_A
    } else {
        0.0
    }
}

/// The weights of one axis: for output index `i`, source indices `first[i]..first[i] + count[i]`
/// with fixed-point weights `weights[i * window..][..count[i]]`.
struct AxisWeights {
    first: Vec<usize>,
    count: Vec<usize>,
    window: usize,
    weights: Vec<i32>,
}

impl AxisWeights {
    /// PIL's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
    fn new(input_size: usize, output_size: usize) -> AxisWeights {
        let scale = input_size as f64 / output_size as f64;
        let filter_scale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filter_scale;
        let window = support.ceil() as usize * 2 + 1;
        let mut first = Vec::with_capacity(output_size);
        let mut count = Vec::with_capacity(output_size);
        let mut weights = vec![0i32; output_size * window];
        let mut row = vec![0.0f64; window];
        for output in 0..output_size {
            let center = (output as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; negative starts clamp to 0 either way.
            let start = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(input_size as i64) as usize;
            let taps = end.saturating_sub(start);
            let mut total = 0.0;
            for (tap, weight) in row.iter_mut().enumerate().take(taps) {
                *weight = bicubic((tap as f64 + start as f64 - center + 0.5) / filter_scale);
                total += *weight;
            }
            for (tap, weight) in row.iter().enumerate().take(taps) {
                let normalized = if total == 0.0 {
                    *weight
                } else {
                    weight / total
                };
                let fixed = normalized * f64::from(1u32 << PRECISION_BITS);
                weights[output * window + tap] = if fixed < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            first.push(start);
            count.push(taps);
        }
        AxisWeights {
            first,
            count,
            window,
            weights,
        }
    }

    fn taps(&self, output: usize) -> (usize, &[i32]) {
        let weights = &self.weights[output * self.window..][..self.count[output]];
        (self.first[output], weights)
    }
}

/// PIL's `clip8`: drop the fractional bits of a rounded accumulator, clamped to a byte.
fn clip8(accumulator: i64) -> u8 {
    (accumulator >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUNDING: i64 = 1 << (PRECISION_BITS - 1);

/// `Image.resize((width, height), Image.BICUBIC)` on an RGB image, as PIL computes it (the
/// same bytes): CLIP's and Qwen2-VL's preprocessing both resize this way.
pub fn resize_bicubic_like_pil(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (input_width, input_height) = (image.width() as usize, image.height() as usize);
    let (output_width, output_height) = (width as usize, height as usize);
    if (input_width, input_height) == (output_width, output_height) {
        return image.clone();
    }
    let horizontal =
        (input_width != output_width).then(|| AxisWeights::new(input_width, output_width));
    let vertical =
        (input_height != output_height).then(|| AxisWeights::new(input_height, output_height));

    // Horizontal pass over only the rows the vertical pass will read.
    let (row_offset, rows, row_width, stage): (usize, usize, usize, Vec<u8>) = match &horizontal {
        None => (0, input_height, input_width, image.as_raw().clone()),
        Some(weights) => {
            let (first_row, end_row) = match &vertical {
                Some(v) => (
                    v.first[0],
                    v.first[output_height - 1] + v.count[output_height - 1],
                ),
                None => (0, input_height),
            };
            let source = image.as_raw();
            let mut stage = vec![0u8; (end_row - first_row) * output_width * 3];
            for (row_index, out_row) in stage.chunks_exact_mut(output_width * 3).enumerate() {
                let in_row =
                    &source[(first_row + row_index) * input_width * 3..][..input_width * 3];
                for (x, out_pixel) in out_row.chunks_exact_mut(3).enumerate() {
                    let (start, taps) = weights.taps(x);
                    let mut sums = [ROUNDING; 3];
                    for (tap, &weight) in taps.iter().enumerate() {
                        let pixel = &in_row[(start + tap) * 3..][..3];
                        for channel in 0..3 {
                            sums[channel] += i64::from(pixel[channel]) * i64::from(weight);
                        }
                    }
                    for channel in 0..3 {
                        out_pixel[channel] = clip8(sums[channel]);
                    }
                }
            }
            (first_row, end_row - first_row, output_width, stage)
        }
    };

    let output = match &vertical {
        None => stage,
        Some(weights) => {
            let mut output = vec![0u8; output_height * row_width * 3];
            for (y, out_row) in output.chunks_exact_mut(row_width * 3).enumerate() {
                let (start, taps) = weights.taps(y);
                let start = start - row_offset;
                debug_assert!(start + taps.len() <= rows);
                for (index, out_value) in out_row.iter_mut().enumerate() {
                    let mut sum = ROUNDING;
                    for (tap, &weight) in taps.iter().enumerate() {
                        let value = stage[(start + tap) * row_width * 3 + index];
                        sum += i64::from(value) * i64::from(weight);
                    }
                    *out_value = clip8(sum);
                }
            }
            output
        }
    };
    RgbImage::from_raw(width, height, output).expect("buffer sized from the output dimensions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_each_output_sum_to_one() {
        for (input, output) in [(640, 335), (3, 224), (100, 224), (4032, 298), (7, 7)] {
            let weights = AxisWeights::new(input, output);
            for index in 0..output {
                let (start, taps) = weights.taps(index);
                assert!(start + taps.len() <= input);
                let total: i64 = taps.iter().map(|&w| i64::from(w)).sum();
                assert!(
                    (total - (1 << PRECISION_BITS)).abs() <= taps.len() as i64,
                    "{input} -> {output}, output {index}: {total}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let image = RgbImage::from_pixel(37, 53, image::Rgb([12, 200, 255]));
        let resized = resize_bicubic_like_pil(&image, 224, 320);
        assert!(resized.pixels().all(|p| p.0 == [12, 200, 255]));
    }

    #[test]
    fn same_size_is_a_copy() {
        let image = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize_bicubic_like_pil(&image, 5, 4), image);
    }
}

//! CLIP vision tower throughput on one device: images per second of the image-feature
//! forward pass (ViT-L/14 by default, random weights), pixels already preprocessed, features
//! copied back to the host after every batch (as `g3 embed-images` does). On the CPU the
//! default engine is the one `g3 embed-images` uses there, the native tower
//! (`CpuVisionTower`); `--engine burn` times the burn module instead.
//!
//! Each batch size is warmed up first, so GPU shader compilation and kernel autotuning stay
//! out of the measured loop. Time one batch size per process on GPUs: burn's autotuner
//! keeps the kernels it tuned for the first batch size for similar shapes, and batch 32 after
//! batch 1 ran 2.2x slower than batch 32 alone on an H200. One line per batch size is printed, for
//! `benches/compare/clip_vit.py` to read:
//!
//! ```text
//! batch=8 images=32 seconds=12.3 images_per_second=2.6
//! ```
//!
//! ```sh
//! cargo run --release --example clip_throughput -- --device cpu --runs 1:2,8:16
//! cargo run --release --features wgpu --example clip_throughput -- --device wgpu --runs 32:512
//! ```

use std::hint::black_box;
use std::time::Instant;

use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::Distribution;
use burn::tensor::ops::PadMode;
use clap::{Parser, ValueEnum};
use g3::align::clip::{AttentionKernel, ClipConfig, ClipModel, CpuVisionTower, FLASH_QUERY_BLOCK};
use g3::align::{ComputeDevice, Precision};

#[derive(Debug, Parser)]
struct Arguments {
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Architecture: OpenAI's ViT-L/14 (G3's) or ViT-B/32.
    #[arg(long, value_enum, default_value_t = PresetArg::VitLarge14)]
    preset: PresetArg,
    /// Batch sizes to time, each over its own number of images (batch:images).
    #[arg(long, value_delimiter = ',', default_value = "1:2,8:16")]
    runs: Vec<String>,
    /// Attention kernel: burn's fused operation or explicit matrix products and softmax.
    #[arg(long, value_enum, default_value_t = KernelArg::Explicit)]
    attention: KernelArg,
    /// Also time the parts of one block at the largest batch (matrix products, attention,
    /// norms, a whole block), to show where the time goes (burn's parts).
    #[arg(long)]
    profile: bool,
    /// What runs the tower: native (the CPU inference path, CPU only) or burn.
    #[arg(long, value_enum, default_value_t = EngineArg::Native)]
    engine: EngineArg,
    /// Floating-point format of weights and activations (burn engine): f32, f16 or bf16.
    #[arg(long, default_value_t = Precision::F32)]
    precision: Precision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    Native,
    Burn,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KernelArg {
    Fused,
    FusedPadded,
    Explicit,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Flex,
    Wgpu,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PresetArg {
    VitLarge14,
    VitBase32,
}

fn parse_run(text: &str) -> Result<(usize, usize), String> {
    let (batch, images) = text
        .split_once(':')
        .ok_or_else(|| format!("run {text:?} is not BATCH:IMAGES"))?;
    let parse = |value: &str| {
        value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&number| number > 0)
            .ok_or_else(|| format!("run {text:?}: {value:?} is not a positive integer"))
    };
    Ok((parse(batch)?, parse(images)?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments = Arguments::parse();
    let device = match arguments.device {
        DeviceArg::Cpu => ComputeDevice::Cpu,
        DeviceArg::Flex => ComputeDevice::Flex,
        DeviceArg::Wgpu => ComputeDevice::Wgpu,
    }
    .to_device()?;
    let config = match arguments.preset {
        PresetArg::VitLarge14 => ClipConfig::vit_large_patch14(),
        PresetArg::VitBase32 => ClipConfig::vit_base_patch32(),
    };
    device.seed(0);
    let mut model = arguments
        .precision
        .cast_module(ClipModel::new(&config, &device));
    model.set_attention_kernel(match arguments.attention {
        KernelArg::Fused => AttentionKernel::Fused,
        KernelArg::FusedPadded => AttentionKernel::FusedPadded,
        KernelArg::Explicit => AttentionKernel::Explicit,
    });
    let side = config.vision.image_size;
    let native = match arguments.engine {
        EngineArg::Native
            if matches!(arguments.device, DeviceArg::Cpu)
                && arguments.precision == Precision::F32 =>
        {
            Some(CpuVisionTower::from_tower(&model.vision_model)?)
        }
        EngineArg::Native => None,
        EngineArg::Burn => None,
    };
    let mut largest_batch = 1;
    for run in &arguments.runs {
        let (batch, images) = parse_run(run)?;
        largest_batch = largest_batch.max(batch);
        // Pixels in CLIP's normalised range, made once on the host like preprocessed images.
        let values: Vec<f32> = (0..batch * 3 * side * side)
            .map(|index| ((index * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        // As `ImageEncoder` uploads them: in the model's precision, converted on the host.
        let pixels = || {
            Tensor::<4>::from_data(
                arguments
                    .precision
                    .host_data(&values, [batch, 3, side, side]),
                (&device, arguments.precision.dtype().into()),
            )
        };
        let forward = || -> Result<Vec<f32>, Box<dyn std::error::Error>> {
            let features = match &native {
                // As `ImageEncoder` does on the CPU: the native tower, then the projection.
                Some(tower) => {
                    let pooled = tower.pooled(&values, batch)?;
                    model.visual_projection.forward(Tensor::<2>::from_data(
                        TensorData::new(pooled, [batch, tower.width()]),
                        &device,
                    ))
                }
                None => model.image_features(pixels())?,
            };
            let data = features.into_data().convert::<f32>();
            let values = data
                .as_slice::<f32>()
                .map_err(|error| format!("{error:?}"))?;
            Ok(values.to_vec())
        };
        for _ in 0..2 {
            black_box(forward()?);
        }
        let batches = images.div_ceil(batch);
        let started = Instant::now();
        for _ in 0..batches {
            black_box(forward()?);
        }
        let seconds = started.elapsed().as_secs_f64();
        let timed = batches * batch;
        println!(
            "batch={batch} images={timed} seconds={seconds:.4} images_per_second={:.2}",
            timed as f64 / seconds.max(1e-9)
        );
    }
    if arguments.profile {
        profile(&model, &config, largest_batch, &device, arguments.precision)?;
    }
    Ok(())
}

/// Milliseconds per call of `operation` (its result read back to the host), after warm-up.
fn time_ms<F: Fn() -> Tensor<D>, const D: usize>(operation: F) -> f64 {
    let wait = |tensor: Tensor<D>| {
        // Reading one value back waits for the device to finish.
        let first: f32 = tensor.flatten::<1>(0, D - 1).slice(0..1).into_scalar();
        black_box(first);
    };
    for _ in 0..3 {
        wait(operation());
    }
    let repeats = 10;
    let started = Instant::now();
    for _ in 0..repeats {
        wait(operation());
    }
    started.elapsed().as_secs_f64() * 1000.0 / repeats as f64
}

/// Where a forward pass of the vision tower spends its time, part by part, in the
/// precision the model computes in: host-to-device copy of the pixels, matrix products,
/// attention, layer norm, one whole block, and the copy of the features back.
fn profile(
    model: &ClipModel,
    config: &ClipConfig,
    batch: usize,
    device: &Device,
    precision: Precision,
) -> Result<(), Box<dyn std::error::Error>> {
    let vision = &config.vision;
    let tokens = vision.sequence_length();
    let width = vision.hidden_size;
    let heads = vision.num_attention_heads;
    let head_width = width / heads;
    let rows = batch * tokens;
    let normal = Distribution::Normal(0.0, 1.0);
    let dtype = precision.dtype();
    let hidden = Tensor::<3>::random([batch, tokens, width], normal, device).cast(dtype);
    let flat = hidden.clone().reshape([rows, width]);
    let up = Tensor::<2>::random([width, vision.intermediate_size], normal, device).cast(dtype);
    let gflops = |flops: f64, ms: f64| flops / ms / 1e6;

    // Transfers: the pixels of a batch to the device (in the model's precision, as
    // ImageEncoder uploads them), and a batch of features back to the host.
    let side = vision.image_size;
    let pixel_values = vec![0.25f32; batch * 3 * side * side];
    let ms = time_ms(|| {
        Tensor::<4>::from_data(
            precision.host_data(&pixel_values, [batch, 3, side, side]),
            (device, precision.dtype().into()),
        )
    });
    println!(
        "profile batch={batch} part=pixels_to_device ms={ms:.3} gb_per_s={:.1}",
        (pixel_values.len() * 4) as f64 / ms / 1e6
    );
    let features = Tensor::<2>::random([batch, config.projection_dim], normal, device).cast(dtype);
    let started = Instant::now();
    let repeats = 10;
    for _ in 0..repeats {
        let data = (features.clone() + 1.0).into_data().convert::<f32>();
        black_box(data);
    }
    println!(
        "profile batch={batch} part=features_to_host ms={:.3}",
        started.elapsed().as_secs_f64() * 1000.0 / repeats as f64
    );

    let ms = time_ms(|| hidden.clone().matmul(up.clone().unsqueeze_dim::<3>(0)));
    let mlp_flops = 2.0 * rows as f64 * width as f64 * vision.intermediate_size as f64;
    println!(
        "profile batch={batch} part=fc1_matmul_3d ms={ms:.3} gflops={:.0}",
        gflops(mlp_flops, ms)
    );
    let ms = time_ms(|| flat.clone().matmul(up.clone()));
    println!(
        "profile batch={batch} part=fc1_matmul_2d ms={ms:.3} gflops={:.0}",
        gflops(mlp_flops, ms)
    );
    let layer = &model.vision_model.encoder.layers[0];
    let ms = time_ms(|| layer.mlp.fc1.forward(hidden.clone()));
    println!(
        "profile batch={batch} part=fc1_linear ms={ms:.3} gflops={:.0}",
        gflops(mlp_flops, ms)
    );

    let split = |t: Tensor<3>| {
        t.reshape([batch, tokens, heads, head_width])
            .swap_dims(1, 2)
    };
    let (query, key, value) = (
        split(hidden.clone()),
        split(hidden.clone()),
        split(hidden.clone()),
    );
    let attention_flops = 4.0 * batch as f64 * heads as f64 * (tokens * tokens * head_width) as f64;
    for kernel in [
        AttentionKernel::Fused,
        AttentionKernel::FusedPadded,
        AttentionKernel::Explicit,
    ] {
        let ms = time_ms(|| match kernel {
            AttentionKernel::Fused => burn::tensor::module::attention(
                query.clone(),
                key.clone(),
                value.clone(),
                None,
                None,
                Default::default(),
            ),
            // As the tower's `FusedPadded` computes it: queries padded for the flash kernels.
            AttentionKernel::FusedPadded => {
                let padding = tokens.next_multiple_of(FLASH_QUERY_BLOCK) - tokens;
                burn::tensor::module::attention(
                    query
                        .clone()
                        .pad([(0, padding), (0, 0)], PadMode::Constant(0.0)),
                    key.clone(),
                    value.clone(),
                    None,
                    None,
                    Default::default(),
                )
                .slice([0..batch, 0..heads, 0..tokens, 0..head_width])
            }
            AttentionKernel::Explicit => burn::tensor::activation::softmax(
                query.clone().matmul(key.clone().swap_dims(2, 3)) / (head_width as f64).sqrt(),
                3,
            )
            .matmul(value.clone()),
        });
        println!(
            "profile batch={batch} part=attention_{kernel:?} ms={ms:.3} gflops={:.0}",
            gflops(attention_flops, ms)
        );
    }
    let ms = time_ms(|| layer.layer_norm1.forward(hidden.clone()));
    println!("profile batch={batch} part=layer_norm ms={ms:.3}");
    let ms = time_ms(|| layer.forward(hidden.clone(), false));
    let block_flops = 2.0
        * rows as f64
        * (4.0 * (width * width) as f64 + 2.0 * (width * vision.intermediate_size) as f64)
        + attention_flops;
    println!(
        "profile batch={batch} part=block ms={ms:.3} gflops={:.0}",
        gflops(block_flops, ms)
    );
    println!(
        "profile batch={batch} part=tower_estimate ms={:.1} (block x {} layers)",
        ms * vision.num_hidden_layers as f64,
        vision.num_hidden_layers
    );
    Ok(())
}

//! The GPU path against the CPU tower: burn's wgpu device embeds the fixture photos in float32
//! and float16 (the padded flash attention too), and each embedding must stay within cosine
//! 0.999 of the CPU's (the half-precision bar: an angle of 2.6°, which changes no ranking that
//! is not a near-tie); float32 must also match within 1e-4 per value, as the CPU does with
//! transformers. The photos go in batches of 5, so the last one is padded to the compiled
//! batch shape.
//!
//! Continuous integration runs it on Mesa's software Vulkan driver (lavapipe), which executes
//! wgpu's compute shaders on the CPU, so burn's GPU kernels, fusion and the f16 path are
//! checked without a GPU:
//!
//! ```sh
//! cargo test -p g3-align --features wgpu --test gpu_parity
//! ```
//!
//! With `--features wgpu` the kernels reach Vulkan as WGSL translated by wgpu. The `vulkan`
//! feature's own SPIR-V kernels (cubecl's SPIR-V compiler, cooperative matrices) cannot run
//! on lavapipe: Mesa 22.3 and 25.0 (Debian 12 and its backports, LLVM 15) crash while
//! compiling cubecl's fused reduction and matrix-product pipelines, so that build is checked
//! on a real GPU (`benches/gpu/vit_embedding.sh`). Without a Vulkan driver the test fails; it
//! never skips.

mod clip_fixtures;

use burn::prelude::Device;
use g3_align::clip::AttentionKernel;
use g3_align::pretrained::HfClipDirectory;
use g3_align::{ComputeDevice, G3Model, ImageEmbeddingKind, ImageEncoder, ImageModel, Precision};
use g3_core::Embeddings;

use clip_fixtures::{fixture, fixture_images};

/// G3's database embedding (CLIP, image-text and image-GPS parts) of the fixture photos.
fn embed(
    device: &Device,
    batch: usize,
    precision: Precision,
    kernel: AttentionKernel,
) -> Embeddings {
    let directory = HfClipDirectory::open(&fixture("model")).unwrap();
    let model = G3Model::load(&fixture("g3.pth"), directory.config(), device).unwrap();
    ImageEncoder::new(
        ImageModel::G3(model),
        ImageEmbeddingKind::Database,
        directory.image_processor().unwrap(),
        device.clone(),
        batch,
    )
    .unwrap()
    .with_precision(precision)
    .unwrap()
    .with_attention_kernel(kernel)
    .embed(&fixture_images())
    .unwrap()
}

/// The smallest cosine and the largest absolute difference between matching rows.
fn compare(ours: &Embeddings, reference: &Embeddings) -> (f64, f64) {
    assert_eq!(ours.len(), reference.len());
    assert_eq!(ours.dimension(), reference.dimension());
    let norm = |row: &[f32]| {
        row.iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    ours.rows()
        .zip(reference.rows())
        .map(|(ours, reference)| {
            let dot: f64 = ours
                .iter()
                .zip(reference)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let difference = ours
                .iter()
                .zip(reference)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
                .fold(0.0, f64::max);
            (dot / (norm(ours) * norm(reference)), difference)
        })
        .fold(
            (1.0, 0.0),
            |(cosine, difference), (row_cosine, row_difference)| {
                (cosine.min(row_cosine), difference.max(row_difference))
            },
        )
}

#[test]
fn the_gpu_device_matches_the_cpu_tower_in_f32_and_f16() {
    #[allow(deprecated)] // burn-ndarray is the CPU backend this project is asked to use
    let cpu = Device::ndarray();
    let reference = embed(&cpu, 16, Precision::F32, AttentionKernel::Explicit);
    let gpu = ComputeDevice::Wgpu
        .to_device()
        .expect("a wgpu device (a Vulkan driver: lavapipe on CPUs)");
    // The default kernel in both precisions, and the padded flash attention meant for half
    // precision (burn's unpadded fused attention runs its fallback at CLIP's 257 tokens, which
    // the CPU tests cover). Each setup compiles and tunes its kernels anew: minutes here.
    for (precision, kernel) in [
        (Precision::F32, AttentionKernel::Explicit),
        (Precision::F16, AttentionKernel::Explicit),
        (Precision::F16, AttentionKernel::FusedPadded),
    ] {
        // Batches of 5 over 16 photos: the last batch is padded to the compiled shape.
        let ours = embed(&gpu, 5, precision, kernel);
        let (cosine, difference) = compare(&ours, &reference);
        eprintln!(
            "wgpu {precision} {kernel:?}: smallest cosine {cosine:.7}, max |diff| {difference:.2e}"
        );
        assert!(cosine >= 0.999, "{precision} {kernel:?}: cosine {cosine}");
        if precision == Precision::F32 {
            assert!(
                difference <= 1e-4,
                "{precision} {kernel:?}: max |diff| {difference}"
            );
        }
    }
}

#!/usr/bin/env python3
"""CLIP vision tower: g3-rs (burn) against PyTorch eager, side by side on one machine.

Both sides run the image-feature forward pass (vision transformer, post-LN class token,
visual_projection) of a randomly initialised CLIP (ViT-L/14 by default) on preprocessed
pixels, warm up first, and copy the features back to the host after every batch. PyTorch
runs in float32 and, on CUDA, also in float16; g3-rs in float32.

    # CPU (this machine):
    cargo build --release --example clip_throughput
    python3 benches/compare/clip_vit.py --runs 1:2,8:8

    # GPU: g3-rs through wgpu (SPIR-V with --features vulkan), PyTorch on CUDA
    cargo build --release --features vulkan --example clip_throughput
    python3 benches/compare/clip_vit.py --torch-device cuda --g3-device wgpu --g3-precision f16 --runs 32:512,128:1024

Prints one table row per batch size: images/s of each side and the ratio g3-rs / PyTorch.
Needs torch and transformers (tools/goldens/requirements.txt pins the versions used for
the committed results).
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

ROOT = Path(__file__).resolve().parents[2]


def vision_config(preset):
    if preset == "vit-large14":
        return CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                num_attention_heads=16, image_size=224, patch_size=14,
                                projection_dim=768, hidden_act="quick_gelu")
    return CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, image_size=224, patch_size=32,
                            projection_dim=512, hidden_act="quick_gelu")


def torch_rate(model, batch, images, device, dtype):
    pixels = torch.randn(batch, 3, 224, 224, dtype=dtype, device=device)

    def forward():
        with torch.inference_mode():
            return model(pixel_values=pixels).image_embeds.float().cpu()

    for _ in range(2):
        forward()
    batches = -(-images // batch)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        forward()
    if device == "cuda":
        torch.cuda.synchronize()
    return batches * batch / (time.perf_counter() - started)


def g3_rates(binary, device, preset, runs, attention, engine, threads, precision):
    """One process per batch size: burn's autotuner caches the kernel it picks per group of
    shapes, and a kernel tuned at batch 1 then runs batch 32 2.2x slower (measured on an
    H200), which a user embedding a dataset at one batch size never sees."""
    rates = {}
    for run in runs:
        command = [str(binary), "--device", device, "--preset", preset, "--runs", run,
                   "--attention", attention, "--engine", engine, "--precision", precision]
        environment = dict(os.environ)
        if threads:
            environment["RAYON_NUM_THREADS"] = str(threads)
        output = subprocess.run(command, check=True, capture_output=True, text=True,
                                env=environment).stdout
        for line in output.splitlines():
            match = re.search(r"batch=(\d+) .*images_per_second=([\d.]+)", line)
            if match:
                rates[int(match.group(1))] = float(match.group(2))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch-device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--g3-device", default="cpu", choices=["cpu", "flex", "wgpu"])
    parser.add_argument("--preset", default="vit-large14", choices=["vit-large14", "vit-base32"])
    parser.add_argument("--runs", default="1:2,8:8", help="BATCH:IMAGES,... timed on both sides")
    parser.add_argument("--binary", default=str(ROOT / "target/release/examples/clip_throughput"))
    parser.add_argument("--attention", default="explicit", choices=["fused", "explicit"],
                        help="g3-rs attention kernel")
    parser.add_argument("--engine", default="native", choices=["native", "burn"],
                        help="g3-rs engine on the CPU: the native tower (what g3 embed-images runs) or burn")
    parser.add_argument("--g3-precision", default="f32", choices=["f32", "f16", "bf16"],
                        help="g3-rs weights and activations (half precision on GPUs)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of both sides (0: each side's default, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    runs = [tuple(int(part) for part in run.split(":")) for run in args.runs.split(",")]
    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(vision_config(args.preset)).eval().to(args.torch_device)
    model.set_attn_implementation("eager")
    torch32 = {batch: torch_rate(model, batch, images, args.torch_device, torch.float32) for batch, images in runs}
    torch16 = {}
    if args.torch_device == "cuda":
        model = model.half()
        torch16 = {batch: torch_rate(model, batch, images, "cuda", torch.float16) for batch, images in runs}
    del model
    if args.torch_device == "cuda":
        torch.cuda.empty_cache()
    ours = g3_rates(args.binary, args.g3_device, args.preset, [f"{b}:{n}" for b, n in runs], args.attention,
                    args.engine, args.threads, args.g3_precision)

    engine = args.engine if args.g3_device == "cpu" else "burn"
    print(f"{args.preset}, g3-rs on {args.g3_device} ({engine}, {args.g3_precision}, {args.attention} attention) vs PyTorch {torch.__version__} on "
          f"{args.torch_device} (eager), images/s; ratio = g3-rs / PyTorch")
    header = "| batch | g3-rs | PyTorch fp32 | ratio fp32 |"
    if torch16:
        header += " PyTorch fp16 | ratio fp16 |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for batch, _ in runs:
        row = f"| {batch} | {ours[batch]:.2f} | {torch32[batch]:.2f} | {ours[batch] / torch32[batch]:.2f} |"
        if torch16:
            row += f" {torch16[batch]:.2f} | {ours[batch] / torch16[batch]:.2f} |"
        print(row)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

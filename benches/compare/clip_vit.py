#!/usr/bin/env python3
"""CLIP vision tower: g3-rs (burn) against PyTorch eager, side by side on one machine.

Both sides run the image-feature forward pass (vision transformer, post-LN class token,
visual_projection) of a randomly initialised CLIP (ViT-L/14 by default) on preprocessed
pixels, warm up first, and copy the features back to the host after every batch. PyTorch
runs in float32 and, on CUDA, also in float16; g3-rs in the precisions and attention
kernels asked for (float32 on the CPU).

    # CPU (this machine):
    cargo build --release --example clip_throughput
    python3 benches/compare/clip_vit.py --runs 1:2,8:8

    # GPU: g3-rs through wgpu (SPIR-V with --features vulkan), PyTorch on CUDA
    cargo build --release --features vulkan --example clip_throughput
    python3 benches/compare/clip_vit.py --torch-device cuda --g3-device wgpu \
        --g3 f32:explicit,f16:explicit,f16:fused-padded --torch-attention eager,sdpa \
        --runs 32:512,128:1024

Prints a table: images/s of each configuration per batch size, and each g3-rs
configuration's ratio to each PyTorch one (fp32 and, on CUDA, fp16; eager attention as G3's
CLIP runs, and optionally sdpa, PyTorch's fused attention).
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


def g3_rates(binary, device, preset, runs, attention, engine, threads, precision, log):
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
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True, env=environment)
        seconds = time.perf_counter() - started
        if log:
            print(f"# {' '.join(command[1:])}: exit {finished.returncode} after {seconds:.1f} s "
                  f"(process, warm-up and autotuning included)", file=sys.stderr)
            sys.stderr.write(finished.stdout)
        if finished.returncode != 0:
            # One configuration failing (a dtype the driver lacks) must not lose the others.
            sys.stderr.write(finished.stderr[-4000:])
            print(f"# FAILED ({finished.returncode}): {' '.join(command)}", file=sys.stderr)
            continue
        for line in finished.stdout.splitlines():
            match = re.search(r"batch=(\d+) .*images_per_second=([\d.]+)", line)
            if match:
                rates[int(match.group(1))] = float(match.group(2))
                print(f"# g3-rs {precision} {attention} {line}", flush=True)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch-device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--g3-device", default="cpu", choices=["cpu", "flex", "wgpu"])
    parser.add_argument("--preset", default="vit-large14", choices=["vit-large14", "vit-base32"])
    parser.add_argument("--runs", default="1:2,8:8", help="BATCH:IMAGES,... timed on both sides")
    parser.add_argument("--binary", default=str(ROOT / "target/release/examples/clip_throughput"))
    parser.add_argument("--g3", default="f32:explicit",
                        help="g3-rs configurations, comma-separated PRECISION:ATTENTION: precision f32, "
                             "f16 or bf16 (half precision on GPUs), attention explicit, fused or fused-padded")
    parser.add_argument("--engine", default="native", choices=["native", "burn"],
                        help="g3-rs engine on the CPU: the native tower (what g3 embed-images runs) or burn")
    parser.add_argument("--torch-attention", default="eager",
                        help="PyTorch attention implementations, comma-separated: eager (G3's CLIP), sdpa")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of both sides (0: each side's default, one per core)")
    parser.add_argument("--log", action="store_true",
                        help="print each g3-rs process's command, wall time and output on stderr")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    runs = [tuple(int(part) for part in run.split(":")) for run in args.runs.split(",")]
    torch.manual_seed(0)
    references = {}
    for implementation in args.torch_attention.split(","):
        with torch.device(args.torch_device):  # initialised where it runs: seconds, not a minute
            model = CLIPVisionModelWithProjection(vision_config(args.preset)).eval()
        model.set_attn_implementation(implementation)
        dtypes = [("fp32", torch.float32)] + ([("fp16", torch.float16)] if args.torch_device == "cuda" else [])
        for label, dtype in dtypes:
            model = model.to(dtype)
            name = f"PyTorch {label} {implementation}"
            references[name] = {}
            for batch, images in runs:
                references[name][batch] = torch_rate(model, batch, images, args.torch_device, dtype)
                # Printed at once, so a run cut short keeps what it measured.
                print(f"# {name} batch={batch} images_per_second={references[name][batch]:.1f}", flush=True)
        del model
        if args.torch_device == "cuda":
            torch.cuda.empty_cache()
    ours = {}
    for configuration in args.g3.split(","):
        precision, _, attention = configuration.partition(":")
        attention = attention or "explicit"
        ours[f"g3-rs {precision} {attention}"] = g3_rates(
            args.binary, args.g3_device, args.preset, [f"{b}:{n}" for b, n in runs], attention,
            args.engine, args.threads, precision, args.log)

    engine = args.engine if args.g3_device == "cpu" else "burn"
    print(f"{args.preset}, g3-rs on {args.g3_device} ({engine}) vs PyTorch {torch.__version__} on "
          f"{args.torch_device}, images/s; each g3-rs row's ratio to each PyTorch column")
    header = "| batch | g3-rs | images/s | " + " | ".join(f"x {name}" for name in references) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for batch, _ in runs:
        for name, rates in references.items():
            print(f"| {batch} | {name} | {rates[batch]:.1f} | " + " | ".join("" for _ in references) + " |")
        for name, rates in ours.items():
            if batch not in rates:
                print(f"| {batch} | {name} | failed | " + " | ".join("" for _ in references) + " |")
                continue
            ratios = " | ".join(f"{rates[batch] / reference[batch]:.2f}" for reference in references.values())
            print(f"| {batch} | {name} | {rates[batch]:.1f} | {ratios} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Geo-alignment training speed: g3-rs from cached features against PyTorch, side by side.

Three numbers, all in training samples per second on this machine:

- g3-rs: one step of G3's full-size trainable model (GPS encoder, four heads, temperatures;
  loss with text; AdamW) on cached CLIP features (examples/train_throughput.rs);
- PyTorch, same step: the same model, loss and optimiser in PyTorch eager, float32;
- the reference: what G3's `run_G3.py` pays per sample, which also runs the frozen CLIP
  ViT-L/14 vision tower and the text tower on every sample in every epoch. Measured as the
  towers' forward time per sample (at --tower-batch, with random weights) plus the heads'
  step time per sample.

    cargo build --release --example train_throughput
    python3 benches/compare/train_step.py [--batch 256] [--steps 5] [--tower-batch 4]
    # GPU: --torch-device cuda --g3-device wgpu (build the example with --features wgpu)

Needs torch and transformers (tools/goldens/requirements.txt pins the versions used for the
committed results).
"""

import argparse
import math
import re
import subprocess
import time
from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, CLIPVisionModelWithProjection

ROOT = Path(__file__).resolve().parents[2]


def head(inputs, hidden, outputs):
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs))


class Capsule(torch.nn.Module):
    def __init__(self, sigma):
        super().__init__()
        self.register_buffer("b", torch.randn(256, 2) * sigma)
        self.layers = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                                          torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                          torch.nn.Linear(1024, 512))

    def forward(self, x):
        phase = 2 * math.pi * x @ self.b.t()
        return self.layers(torch.cat([phase.cos(), phase.sin()], dim=-1))


class TrainableG3(torch.nn.Module):
    """G3's trainable parameters at full size (utils/G3.py): 768-d CLIP features."""

    def __init__(self):
        super().__init__()
        self.capsules = torch.nn.ModuleList([Capsule(s) for s in (1.0, 16.0, 256.0)])
        self.vision_projection_else_1 = head(768, 768, 768)
        self.text_projection_else = head(768, 768, 768)
        self.vision_projection_else_2 = head(768, 768, 768)
        self.location_projection_else = head(512, 512, 768)
        self.logit_scale1 = torch.nn.Parameter(torch.tensor(3.99))
        self.logit_scale2 = torch.nn.Parameter(torch.tensor(3.99))

    def forward(self, image, text, location):
        def normalise(x):
            return x / x.norm(p=2, dim=-1, keepdim=True)

        def clip_loss(logits):
            labels = torch.arange(len(logits), device=logits.device)
            ce = torch.nn.functional.cross_entropy
            return (ce(logits, labels) + ce(logits.t(), labels)) / 2

        gps = normalise(self.location_projection_else(sum(c(location) for c in self.capsules)))
        image2 = normalise(self.vision_projection_else_2(image))
        image1 = normalise(self.vision_projection_else_1(image))
        text1 = normalise(self.text_projection_else(text))
        return (clip_loss(text1 @ image1.t() * self.logit_scale1.exp())
                + clip_loss(gps @ image2.t() * self.logit_scale2.exp()))


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def heads_step_seconds(batch, steps, device):
    model = TrainableG3().to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=1e-6)
    image = torch.randn(batch, 768, device=device)
    text = torch.randn(batch, 768, device=device)
    location = torch.rand(batch, 2, device=device) * 2 - 1

    def step():
        optimiser.zero_grad()
        loss = model(image, text, location)
        loss.backward()
        optimiser.step()
        return loss.item()

    for _ in range(2):
        step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - started) / steps


def towers_seconds_per_sample(batch, device):
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu")).eval().to(device)
    text = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        projection_dim=768, hidden_act="quick_gelu")).eval().to(device)
    pixels = torch.randn(batch, 3, 224, 224, device=device)
    ids = torch.randint(0, 49408, (batch, 77), device=device)

    def forward():
        with torch.no_grad():
            vision(pixel_values=pixels).image_embeds.sum().item()
            text(input_ids=ids).text_embeds.sum().item()

    forward()
    sync(device)
    started = time.perf_counter()
    forward()
    sync(device)
    return (time.perf_counter() - started) / batch


def g3_rate(batch, steps, device):
    binary = ROOT / "target/release/examples/train_throughput"
    output = subprocess.run([str(binary), "--batch", str(batch), "--steps", str(steps), "--device", device],
                            check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([\d.]+) samples/s", output).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--tower-batch", type=int, default=4)
    parser.add_argument("--torch-device", default="cpu")
    parser.add_argument("--g3-device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.torch_device}")

    ours = g3_rate(args.batch, args.steps, args.g3_device)
    heads = heads_step_seconds(args.batch, args.steps, args.torch_device)
    towers = towers_seconds_per_sample(args.tower_batch, args.torch_device)
    torch_same_step = args.batch / heads
    reference = 1.0 / (towers + heads / args.batch)
    print(f"| g3-rs from cached features | {ours:.1f} samples/s |")
    print(f"| PyTorch, same step | {torch_same_step:.1f} samples/s | g3-rs / PyTorch = {ours / torch_same_step:.2f}x |")
    print(f"| reference (towers {1000 * towers:.0f} ms/sample + step) | {reference:.3f} samples/s "
          f"| g3-rs / reference = {ours / reference:.0f}x |")


if __name__ == "__main__":
    main()

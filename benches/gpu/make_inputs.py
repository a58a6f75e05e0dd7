#!/usr/bin/env python3
"""Inputs for the end-to-end GPU embedding bench (`benches/gpu/vit_embedding.sh`).

- A tar archive of synthetic JPEG photos of photo size (640 to 1024 pixels wide, 4:3 and 3:4,
  quality 90, smooth colour fields with texture and noise, so decoding and resizing cost
  what real photos cost), made on every core.
- A randomly initialised CLIP ViT-L/14 in the Hugging Face layout (`config.json`,
  `model.safetensors`, `preprocessor_config.json`) with a one-layer text tower, which
  `g3 embed-images --kind clip` reads like `openai/clip-vit-large-patch14`: the vision tower,
  the only part the bench runs, has the real architecture and size.

    python3 benches/gpu/make_inputs.py --photos 10000 --archive /tmp/photos.tar --model /tmp/clip

Needs numpy, Pillow, torch and transformers (the GPU machine's image has them).
"""

import argparse
import io
import json
import os
import tarfile
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

SIZES = [(640, 480), (800, 600), (1024, 768), (480, 640), (600, 800), (768, 1024)]


def photo(index):
    """One JPEG: a low-resolution random colour field upsampled, plus fine texture."""
    generator = np.random.default_rng(index)
    width, height = SIZES[index % len(SIZES)]
    coarse = generator.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    texture = generator.normal(0.0, 6.0, size=(height, width, 1))
    pixels = np.clip(field + texture, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return f"{index // 1000:02d}/{index:07d}.jpg", buffer.getvalue()


def write_archive(path, count):
    started = time.perf_counter()
    total = 0
    with Pool(os.cpu_count()) as pool, tarfile.open(path, "w") as archive:
        for name, data in pool.imap(photo, range(count), chunksize=64):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
            total += len(data)
    print(f"archive {path}: {count} JPEGs, {total / 1e6:.0f} MB, {time.perf_counter() - started:.1f} s")


def write_model(directory):
    import torch
    from transformers import CLIPConfig, CLIPModel

    started = time.perf_counter()
    torch.manual_seed(0)
    config = CLIPConfig(
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                           num_attention_heads=16, image_size=224, patch_size=14,
                           hidden_act="quick_gelu"),
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, hidden_act="quick_gelu"),
        projection_dim=768,
    )
    # Initialised on the GPU where there is one (seconds instead of a minute on the CPU).
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = CLIPModel(config).eval()
    model.save_pretrained(directory, safe_serialization=True)
    # openai/clip-vit-large-patch14's processor settings, written as transformers saves them
    # (independent of the installed transformers' processor classes).
    processor = {
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "CLIPImageProcessor",
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
    }
    with open(os.path.join(directory, "preprocessor_config.json"), "w") as file:
        json.dump(processor, file, indent=2)
    print(f"model {directory}: random CLIP ViT-L/14, {time.perf_counter() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=10000)
    parser.add_argument("--archive", required=True)
    parser.add_argument("--model", help="also write a random CLIP ViT-L/14 here")
    args = parser.parse_args()
    write_archive(args.archive, args.photos)
    if args.model:
        write_model(args.model)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Qwen2-VL / GeoRanker reward-model goldens: transformers + PEFT on a tiny random model.

GeoRanker (Applied-Machine-Learning-Lab/GeoRanker) scores a candidate location with
Qwen2-VL-7B-Instruct + a LoRA adapter on the decoder's q/k/v projections + a bias-free linear
value head read at the last token of the final (normed) hidden state, batches padded on the
left. This script builds the same thing at a tiny size, with every weight random (the LoRA's B
too, which PEFT would start at zero), and records what transformers computes.

Writes g3-qwen2-vl/tests/fixtures/tiny/:

- model/config.json            the tiny Qwen2VLConfig as transformers 5 saves it (nested
                               `text_config`, `rope_parameters`)
- model/model-0000{1,2}-of-00002.safetensors, model/model.safetensors.index.json
                               the base weights in the hub's naming (`visual.*`, `model.*`,
                               `lm_head.weight`), split in two shards like the 7B's
- adapter/adapter_config.json, adapter/adapter_model.safetensors
                               PEFT's save_pretrained of the LoRA (r 4, alpha 8, on q/k/v_proj,
                               value_head in modules_to_save, as GeoRanker's)
- images.csv                   file,height,width,grid_t,grid_h,grid_w: each fixture photo after
                               qwen_vl_utils.fetch_image (PIL bicubic resize to multiples of 28
                               within max_pixels) and the image processor
- pixels_<name>.npy            [patches, 1176] float32 pixel_values of that photo alone
- smart_resize.csv             height,width,min_pixels,max_pixels,resized_height,resized_width of
                               qwen_vl_utils.smart_resize over random and edge-case sizes
                               (resized sides empty where it raises; a 0 side where PIL's resize
                               would then raise)
- resized.csv, resized_<name>.npy
                               [h, w, 3] uint8: fetch_image's RGB bytes for more fixture photos
                               (CMYK, palette, gray + alpha, RGBA, 1 x 1, 4032 x 3024) at
                               min_pixels 4 x 28 x 28, max_pixels 12 x 28 x 28
- input_ids.npy, attention_mask.npy
                               [3, L] int64: three prompts of GeoRanker's shapes, left-padded:
                               0 a retrieved candidate (query photo, text, reference photo,
                               negatives), 1 a zero-shot candidate (query photo, text, negatives),
                               2 a retrieved candidate with another reference photo
- sequence_images.csv          sequence,image: the photos of each sequence, in token order
- position_ids.npy             [3, 3, L] int64 get_rope_index's positions
- image_embeds.npy             [tokens, 64] float32 vision tower output for the photos of
                               sequence 0 (query then reference)
- rewards.npy                  [3] float32 rewards of the batch through PEFT's unmerged forward
- rewards_alone.npy            [3] float32 each sequence alone (no padding), unmerged
- rewards_merged.npy           [3] float32 after merge_and_unload (the script checks they agree)

Token ids are written by hand in the prompt layout (the chat template and tokenizer have
their own goldens). Run from the repository root with the versions of
requirements-qwen2-vl.txt:
    /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements-qwen2-vl.txt
    /tmp/g3-goldens/bin/python tools/goldens/qwen2_vl.py
"""

import csv
import json
import os
from pathlib import Path

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from PIL import Image
from qwen_vl_utils import fetch_image, smart_resize
from safetensors.torch import save_file
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
from transformers.models.qwen2_vl import Qwen2VLImageProcessor

assert transformers.__version__ == "5.24.0", transformers.__version__
assert peft.__version__ == "0.21.2", peft.__version__
assert torch.__version__.startswith("2.15.0"), torch.__version__

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "g3-qwen2-vl" / "tests" / "fixtures" / "tiny"
PHOTOS = ROOT / "g3-align" / "tests" / "fixtures" / "clip" / "images"

VOCAB = 160
VISION_START, VISION_END, IMAGE, VIDEO = 150, 151, 152, 153
IM_START, IM_END, PAD = 154, 155, 156
# Small images keep the fixtures small: at most 6 decoder tokens (24 patches) per photo.
MAX_PIXELS = 28 * 28 * 6
MIN_PIXELS = 28 * 28


class RewardModel(Qwen2VLForConditionalGeneration):
    """GeoRanker's reward model: Qwen2-VL plus a bias-free value head on the last token."""

    def __init__(self, config):
        super().__init__(config)
        self.value_head = torch.nn.Linear(config.text_config.hidden_size, 1, bias=False)

    def forward(self, input_ids, attention_mask, pixel_values, image_grid_thw):
        outputs = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            # transformers 5 marks image tokens (1) for its rotary positions.
            mm_token_type_ids=(input_ids == IMAGE).int(),
            output_hidden_states=True,
        )
        values = self.value_head(outputs.hidden_states[-1]).squeeze(-1)
        return values[:, -1]


def tiny_config():
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            bos_token_id=PAD,
            eos_token_id=IM_END,
            pad_token_id=PAD,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3]),
        ),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2),
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
    )


def hub_name(key):
    """transformers 5's module names → the hub checkpoint's."""
    if key.startswith("model.visual."):
        return key[len("model."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    return key


def processed(processor, name):
    image = fetch_image({"image": str(PHOTOS / name), "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
    out = processor(images=[image], return_tensors="pt")
    return image, out["pixel_values"].float(), out["image_grid_thw"][0]


def processor_goldens(rng):
    rows = []
    sizes = [(42, 70), (70, 42), (14, 14), (1, 1), (3, 500), (500, 3), (1, 201), (27, 5400),
             (4032, 3024), (3024, 4032), (481, 640), (640, 481), (2000, 3)]
    sizes += [tuple(int(v) for v in rng.integers(1, 5000, size=2)) for _ in range(40)]
    budgets = [(4 * 28 * 28, 16384 * 28 * 28), (28 * 28, 28 * 28 * 6), (56 * 56, 28 * 28 * 1280)]
    for height, width in sizes:
        for min_pixels, max_pixels in budgets:
            try:
                out = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
            except ValueError:
                out = ("", "")
            rows.append([height, width, min_pixels, max_pixels, *out])
    with open(OUT / "smart_resize.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["height", "width", "min_pixels", "max_pixels", "resized_height", "resized_width"])
        writer.writerows(rows)
    with open(OUT / "resized.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "height", "width"])
        # narrow.png (3 x 500) is left out: smart_resize gives it a 0-pixel side and PIL raises.
        for name in ["cmyk.jpg", "palette.png", "gray_alpha.png", "rgba.png", "one_pixel.png", "large.jpg"]:
            image = fetch_image({"image": str(PHOTOS / name), "min_pixels": 4 * 28 * 28, "max_pixels": 12 * 28 * 28})
            np.save(OUT / f"resized_{Path(name).stem}.npy", np.asarray(image, dtype=np.uint8))
            writer.writerow([name, image.height, image.width])


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "model").mkdir(exist_ok=True)

    processor_goldens(np.random.default_rng(1))
    config = tiny_config()
    config._attn_implementation = "eager"
    model = RewardModel(config).float().eval()
    with torch.no_grad():
        # Random everywhere, so no norm is the identity and no bias is zero.
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)

    config.save_pretrained(OUT / "model")
    state = {hub_name(k): v.contiguous() for k, v in model.state_dict().items() if k != "value_head.weight"}
    keys = sorted(state)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    weight_map = {}
    for index, shard in enumerate(shards, start=1):
        file = f"model-0000{index}-of-00002.safetensors"
        save_file({k: state[k] for k in shard}, OUT / "model" / file, metadata={"format": "pt"})
        weight_map.update({k: file for k in shard})
    with open(OUT / "model" / "model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": sum(v.numel() * 4 for v in state.values())}, "weight_map": weight_map}, f, indent=2)

    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj"],
        modules_to_save=["value_head"],
        init_lora_weights=False,
    )
    peft_model = get_peft_model(model, lora).eval()
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn_like(parameter) * 0.2)
            if "value_head.modules_to_save" in name:
                parameter.copy_(torch.randn_like(parameter))
    peft_model.save_pretrained(OUT / "adapter")
    (OUT / "adapter" / "README.md").unlink()  # PEFT's model-card template
    # PEFT writes target_modules from a set: sort it so that reruns give the same file.
    adapter_config_path = OUT / "adapter" / "adapter_config.json"
    adapter_config = json.loads(adapter_config_path.read_text())
    adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
    adapter_config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")

    processor = Qwen2VLImageProcessor(min_pixels=3136 // 4, max_pixels=12845056)
    photos = ["landscape.jpg", "portrait.png", "upscale.jpg"]
    pixels, grids = {}, {}
    with open(OUT / "images.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "height", "width", "grid_t", "grid_h", "grid_w"])
        for name in photos:
            image, values, grid = processed(processor, name)
            pixels[name], grids[name] = values, grid
            np.save(OUT / f"pixels_{Path(name).stem}.npy", values.numpy().astype(np.float32))
            writer.writerow([name, image.height, image.width, *grid.tolist()])

    def image_tokens(name):
        g = grids[name]
        return [VISION_START] + [IMAGE] * int(g.prod() // 4) + [VISION_END]

    def words(count):
        return rng.integers(0, 150, size=count).tolist()

    prefix = [IM_START] + words(5) + [IM_END, IM_START] + words(2)
    suffix = [IM_END, IM_START] + words(2)
    query, references = photos[0], [photos[1], None, photos[2]]
    sequences, sequence_images = [], []
    for reference in references:
        tokens = prefix + image_tokens(query) + words(14)
        images = [query]
        if reference is not None:
            tokens += image_tokens(reference)
            images.append(reference)
        tokens += words(17) + suffix
        sequences.append(tokens)
        sequence_images.append(images)
    length = max(map(len, sequences))
    input_ids = torch.tensor([[PAD] * (length - len(s)) + s for s in sequences])
    attention_mask = torch.tensor([[0] * (length - len(s)) + [1] * len(s) for s in sequences])
    all_images = [name for images in sequence_images for name in images]
    pixel_values = torch.cat([pixels[name] for name in all_images])
    grid_thw = torch.stack([grids[name] for name in all_images])

    with torch.no_grad():
        rewards = peft_model(input_ids, attention_mask, pixel_values, grid_thw)
        alone = []
        for index, tokens in enumerate(sequences):
            images = sequence_images[index]
            alone.append(
                peft_model(
                    torch.tensor([tokens]),
                    torch.ones(1, len(tokens), dtype=torch.long),
                    torch.cat([pixels[n] for n in images]),
                    torch.stack([grids[n] for n in images]),
                )[0]
            )
        alone = torch.stack(alone)
        base = peft_model.base_model.model
        position_ids, _ = base.model.get_rope_index(
            input_ids, (input_ids == IMAGE).int(), grid_thw, None, attention_mask
        )
        first = sequence_images[0]
        image_embeds = base.model.visual(
            torch.cat([pixels[n] for n in first]), grid_thw=torch.stack([grids[n] for n in first])
        )
        if not torch.is_tensor(image_embeds):
            image_embeds = image_embeds.pooler_output
        merged = peft_model.merge_and_unload()
        rewards_merged = merged(input_ids, attention_mask, pixel_values, grid_thw)

    assert torch.allclose(rewards, rewards_merged, atol=1e-5), (rewards, rewards_merged)
    assert torch.allclose(rewards, alone, atol=1e-5), (rewards, alone)
    np.save(OUT / "input_ids.npy", input_ids.numpy().astype(np.int64))
    np.save(OUT / "attention_mask.npy", attention_mask.numpy().astype(np.int64))
    np.save(OUT / "position_ids.npy", position_ids.numpy().astype(np.int64))
    np.save(OUT / "image_embeds.npy", image_embeds.numpy().astype(np.float32))
    np.save(OUT / "rewards.npy", rewards.numpy().astype(np.float32))
    np.save(OUT / "rewards_alone.npy", alone.numpy().astype(np.float32))
    np.save(OUT / "rewards_merged.npy", rewards_merged.numpy().astype(np.float32))
    with open(OUT / "sequence_images.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sequence", "image"])
        for index, images in enumerate(sequence_images):
            for name in images:
                writer.writerow([index, name])
    print("rewards", rewards.tolist())
    print("merged ", rewards_merged.tolist())
    print("alone  ", alone.tolist())
    print("length", length, "pixel rows", pixel_values.shape, "grids", grid_thw.tolist())


if __name__ == "__main__":
    main()

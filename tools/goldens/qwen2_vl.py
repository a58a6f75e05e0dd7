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
- model/tokenizer.json, model/tokenizer_config.json
                               a byte-level BPE in Qwen2's format (its pre-tokenizer pattern, NFC)
                               trained on a few lines, Qwen2-VL's 14 special tokens after it, and
                               Qwen2-VL-7B-Instruct's chat template
- candidates.json              one query's candidates in GeoRanker's terms: two retrieved (with
                               their database photos and MP16-Pro place levels), one zero-shot,
                               five negatives
- prompts.json                 the chat template's rendering of GeoRanker's three conversations
                               (evaluate.py's message layout), add_generation_prompt
- gray_photo.jpg, reencoded.csv
                               a grayscale JPEG made from landscape.jpg, and file,size,sha256 of
                               PIL's re-encoding of RGB and grayscale fixture photos with
                               save(format="JPEG") (quality 75, as GeoRanker re-encodes its
                               reference photos)
- input_ids.npy, attention_mask.npy
                               [3, L] int64: Qwen2VLProcessor's tokens of those prompts, image
                               pads expanded, padded on the left: 0 and 1 retrieved candidates
                               (query photo, question, reference photo, negatives), 2 the
                               zero-shot candidate (query photo, question, negatives)
- sequence_images.csv          sequence,image: the photos of each sequence, in token order
- position_ids.npy             [3, 3, L] int64 get_rope_index's positions
- image_embeds.npy             [tokens, 64] float32 vision tower output for the photos of
                               sequence 0 (query then reference)
- rewards.npy                  [3] float32 rewards of the batch through PEFT's unmerged forward
- rewards_alone.npy            [3] float32 each sequence alone (no padding), unmerged
- rewards_merged.npy           [3] float32 after merge_and_unload (the script checks they agree)

and g3-cli/tests/fixtures/georanker/e2e_rewards.npy: [n] float32 rewards, each conversation
alone (reference photos re-encoded as JPEG at quality 75 as GeoRanker's evaluate.py does),
of the pool in e2e_conversations.json beside it (what `g3 locate --preset georanker`
puts in the pool for the fixture database; its test writes that file when run with
G3_WRITE_GEORANKER_SPEC=1, then this script scores it with the same tiny model).

Run from the repository root with the versions of
requirements-qwen2-vl.txt:
    /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements-qwen2-vl.txt
    /tmp/g3-goldens/bin/python tools/goldens/qwen2_vl.py
"""

import base64
import csv
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from PIL import Image
from qwen_vl_utils import fetch_image as qwen_fetch_image
from qwen_vl_utils import smart_resize
from safetensors.torch import save_file
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
from transformers import Qwen2VLProcessor
from transformers.models.qwen2_vl import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

assert transformers.__version__ == "5.24.0", transformers.__version__
assert peft.__version__ == "0.21.2", peft.__version__
assert torch.__version__.startswith("2.15.0"), torch.__version__

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "g3-qwen2-vl" / "tests" / "fixtures" / "tiny"
PHOTOS = ROOT / "g3-align" / "tests" / "fixtures" / "clip" / "images"

# Qwen2-VL's special tokens, in the order of its tokenizer (added after the BPE vocabulary).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Qwen2-VL-7B-Instruct's chat template (chat_template.json), as published with the model.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2's pre-tokenizer pattern (tokenizer.json of the Qwen2 family).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CORPUS = [
    "You are a helpful assistant.",
    "How far is this place from latitude: 46.470601, longitude: 11.623621, Bolzano Trentino-Alto Adige Italy?",
    "Negative examples: latitude: 40.7128, longitude: -74.006, New York United States",
    "Paris Ile-de-France France; Tokyo Japan; Sydney New South Wales Australia; Nairobi Kenya",
    "São Paulo Brazil; Zürich Switzerland; Reykjavík Iceland; Kraków Lesser Poland Poland",
    "0123456789 -.,:;?!",
]
# Candidates of one query in GeoRanker's terms; places are MP16-Pro's six levels
# [neighbourhood, city, county, state, region, country]. Coordinates print as Python's repr.
CANDIDATES = """{
  "query": "landscape.jpg",
  "retrieved": [
    {"latitude": 46.470601, "longitude": 11.623621, "photo": "portrait.png",
     "places": ["", "Ortisei", "", "Trentino-Alto Adige/S\u00fcdtirol", "", "Italy"]},
    {"latitude": -33.8688, "longitude": 151.2093, "photo": "upscale.jpg",
     "places": ["The Rocks", "Sydney", "", "New South Wales", "", "Australia"]}
  ],
  "zero_shot": [
    {"latitude": 48.0, "longitude": 2.35}
  ],
  "negatives": [
    {"latitude": 40.7128, "longitude": -74.006, "places": ["", "New York", "", "New York", "", "United States"]},
    {"latitude": 0.0, "longitude": 0.0, "places": ["", "", "", "", "", ""]},
    {"latitude": -1.286389, "longitude": 36.817223, "places": ["", "Nairobi", "", "", "", "Kenya"]},
    {"latitude": 64.1466, "longitude": -21.9426, "places": ["", "Reykjav\u00edk", "", "", "", "Iceland"]},
    {"latitude": 35.6762, "longitude": 139.6503, "places": ["", "Tokyo", "", "Tokyo", "", "Japan"]}
  ]
}
"""
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
            mm_token_type_ids=(input_ids == self.config.image_token_id).int(),
            output_hidden_states=True,
        )
        values = self.value_head(outputs.hidden_states[-1]).squeeze(-1)
        return values[:, -1]


def build_tokenizer():
    """A byte-level BPE in the Qwen2 format, trained on a few lines, with Qwen2-VL's specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        padding_side="left",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def fetch_image(ele):
    """qwen_vl_utils.fetch_image, as the processor of GeoRanker's transformers (4.52) saw it.

    PIL keeps a palette PNG's transparent colour in `info["transparency"]` through
    convert("RGB") and resize; transformers 5's convert_to_rgb then paints every pixel of
    that exact colour white, which 4.52's (an RGB image returned as is) did not. GeoRanker
    ran 4.52, and g3-rs follows it: the key is dropped here so transformers 5 does the same.
    """
    image = qwen_fetch_image(ele)
    image.info.pop("transparency", None)
    return image


def tiny_config(tokenizer):
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3]),
        ),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
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
    gray = Image.open(PHOTOS / "landscape.jpg").convert("L").resize((160, 107))
    gray.save(OUT / "gray_photo.jpg", quality=90)
    with open(OUT / "reencoded.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "size", "sha256"])
        for path in [PHOTOS / "landscape.jpg", PHOTOS / "upscale.jpg", PHOTOS / "large.jpg",
                     PHOTOS / "exact.png", PHOTOS / "rgb16.png", PHOTOS / "gray.png",
                     OUT / "gray_photo.jpg"]:
            buffer = io.BytesIO()
            Image.open(path).save(buffer, format="JPEG")
            data = buffer.getvalue()
            writer.writerow([path.name, len(data), hashlib.sha256(data).hexdigest()])
    with open(OUT / "resized.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "height", "width"])
        # narrow.png (3 x 500) is left out: smart_resize gives it a 0-pixel side and PIL raises.
        for name in ["cmyk.jpg", "palette.png", "gray_alpha.png", "rgba.png", "one_pixel.png", "large.jpg"]:
            image = fetch_image({"image": str(PHOTOS / name), "min_pixels": 4 * 28 * 28, "max_pixels": 12 * 28 * 28})
            np.save(OUT / f"resized_{Path(name).stem}.npy", np.asarray(image, dtype=np.uint8))
            writer.writerow([name, image.height, image.width])


E2E = ROOT / "g3-cli" / "tests" / "fixtures" / "georanker"


def e2e_rewards(processor, model):
    """Rewards of the end-to-end pool, as GeoRanker's evaluate.py builds its conversations."""
    spec_path = E2E / "e2e_conversations.json"
    if not spec_path.exists():
        print("no", spec_path, "- skipping the end-to-end rewards")
        return
    spec = json.loads(spec_path.read_text())

    def place_text(places):
        return " ".join(text for text in (places[1], places[3], places[5]) if text)

    negatives = "; ".join(
        f"latitude: {n['latitude']}, longitude: {n['longitude']}, {place_text(n['places'])}"
        for n in spec["negatives"]
    )
    budget = {"min_pixels": 784, "max_pixels": 15680}

    def image(name):
        return {"type": "image", "image": str(PHOTOS / name), **budget}

    def reference(name):
        # evaluate.py: the database photo re-encoded by PIL (JPEG, quality 75) as a data URI.
        # PIL cannot write palette or alpha images as JPEG (GeoRanker's photos are JPEGs);
        # like g3-rs, those are written from their RGB conversion.
        photo = Image.open(PHOTOS / name)
        if photo.mode not in ("RGB", "L"):
            photo = photo.convert("RGB")
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG")
        data = base64.b64encode(buffer.getvalue()).decode()
        return {"type": "image", "image": f"data:image/jpeg;base64,{data}", **budget}

    rewards = []
    for candidate in spec["candidates"]:
        if candidate["kind"] == "retrieved":
            question = (
                f"How far is this place from latitude: {candidate['latitude']}, longitude: "
                f"{candidate['longitude']}, {place_text(candidate['places'])}?"
            )
            content = [image(spec["query"]), {"type": "text", "text": question}, reference(candidate["photo"]),
                       {"type": "text", "text": f"Negative examples: {negatives}"}]
        else:
            question = (
                f"How far is this place from latitude: {candidate['latitude']}, longitude: {candidate['longitude']}?"
            )
            content = [image(spec["query"]), {"type": "text", "text": question},
                       {"type": "text", "text": f"Negative examples: {negatives}"}]
        conversation = [{"role": "user", "content": content}]
        text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        images = [fetch_image({"image": item["image"], **budget}) for item in content if item["type"] == "image"]
        inputs = processor(text=[text], images=images, padding=True, return_tensors="pt")
        rewards.append(model(inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"].float(),
                             inputs["image_grid_thw"])[0])
    rewards = torch.stack(rewards)
    np.save(E2E / "e2e_rewards.npy", rewards.numpy().astype(np.float32))
    print("e2e rewards", rewards.tolist())


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "model").mkdir(exist_ok=True)

    processor_goldens(np.random.default_rng(1))
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(OUT / "model")
    config = tiny_config(tokenizer)
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

    image_processor = Qwen2VLImageProcessor(min_pixels=3136 // 4, max_pixels=12845056)
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    photos = ["landscape.jpg", "portrait.png", "upscale.jpg"]
    pixels, grids = {}, {}
    with open(OUT / "images.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "height", "width", "grid_t", "grid_h", "grid_w"])
        for name in photos:
            image, values, grid = processed(image_processor, name)
            pixels[name], grids[name] = values, grid
            np.save(OUT / f"pixels_{Path(name).stem}.npy", values.numpy().astype(np.float32))
            writer.writerow([name, image.height, image.width, *grid.tolist()])

    # GeoRanker's prompts (evaluate.py) for one query photo: two retrieved candidates with
    # their database photos, one zero-shot candidate, and the five negatives shared by all.
    query = photos[0]
    candidates = json.loads(CANDIDATES)
    with open(OUT / "candidates.json", "w") as f:
        f.write(CANDIDATES)

    def place_text(places):
        # [neighbourhood, city, county, state, region, country]: city, state, country.
        return " ".join(text for text in (places[1], places[3], places[5]) if text)

    negatives = "; ".join(
        f"latitude: {n['latitude']}, longitude: {n['longitude']}, {place_text(n['places'])}"
        for n in candidates["negatives"]
    )

    def image_item(name):
        return {"type": "image", "image": str(PHOTOS / name), "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}

    conversations, sequence_images = [], []
    for candidate in candidates["retrieved"]:
        question = (
            f"How far is this place from latitude: {candidate['latitude']}, longitude: "
            f"{candidate['longitude']}, {place_text(candidate['places'])}?"
        )
        conversations.append([{"role": "user", "content": [
            image_item(query),
            {"type": "text", "text": question},
            image_item(candidate["photo"]),
            {"type": "text", "text": f"Negative examples: {negatives}"},
        ]}])
        sequence_images.append([query, candidate["photo"]])
    for candidate in candidates["zero_shot"]:
        question = f"How far is this place from latitude: {candidate['latitude']}, longitude: {candidate['longitude']}?"
        conversations.append([{"role": "user", "content": [
            image_item(query),
            {"type": "text", "text": question},
            {"type": "text", "text": f"Negative examples: {negatives}"},
        ]}])
        sequence_images.append([query])
    texts = [
        processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        for conversation in conversations
    ]
    with open(OUT / "prompts.json", "w") as f:
        json.dump(texts, f, indent=2, ensure_ascii=False)
        f.write("\n")
    images = [
        fetch_image({"image": str(PHOTOS / name), "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
        for names in sequence_images
        for name in names
    ]
    inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
    input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
    pixel_values, grid_thw = inputs["pixel_values"].float(), inputs["image_grid_thw"]
    all_images = [name for names in sequence_images for name in names]
    assert torch.equal(pixel_values, torch.cat([pixels[name] for name in all_images]))
    sequences = [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]

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
            input_ids, (input_ids == config.image_token_id).int(), grid_thw, None, attention_mask
        )
        first = sequence_images[0]
        image_embeds = base.model.visual(
            torch.cat([pixels[n] for n in first]), grid_thw=torch.stack([grids[n] for n in first])
        )
        if not torch.is_tensor(image_embeds):
            image_embeds = image_embeds.pooler_output
        e2e_rewards(processor, peft_model)
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
    print("length", input_ids.shape[1], "pixel rows", pixel_values.shape, "grids", grid_thw.tolist())


if __name__ == "__main__":
    main()

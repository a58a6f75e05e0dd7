#!/usr/bin/env python3
"""CLIP goldens: HF transformers' CLIP image processor, tokenizer and model, and a G3 model.

Writes g3-align/tests/fixtures/clip/:

- images/*                    16 test images written by PIL: odd sizes, portrait, gray, gray +
                              alpha, RGBA, palette PNG and GIF, CMYK JPEG, 16-bit gray and RGB
                              PNG, 1 x 1, 4032 x 3024, 3 x 500, WebP, exactly 224 x 224, upscaled
- images.csv                  file,width,height,mode: the images in the order of every array below
- pixels_u8.npy               [n, 224, 224, 3] uint8: the resized and centre-cropped RGB pixels of
                              CLIPImageProcessorPil (the PIL processor G3 used; transformers 5
                              calls it CLIPImageProcessorPil), after Image.open(...).convert("RGB")
                              as G3's datasets do, with do_convert_rgb=False (see image_goldens). The processor's float pixel_values are exactly
                              (pixels / 255 - mean) / std of these bytes: the script checks it.
- pixel_values_torchvision_max_diff.txt
                              how far transformers 5's default (torchvision) CLIPImageProcessor
                              lands from the PIL one, for the record
- model/config.json, model/model.safetensors, model/preprocessor_config.json
                              a small random CLIPModel (vision: 64 wide, 2 layers, 4 heads,
                              patch 32, image 224, quick_gelu; text: 32 wide, 2 layers, 4 heads,
                              vocabulary 1000, gelu, eos 999; projection 24), every parameter
                              perturbed so no layer norm is the identity, saved by save_pretrained
- text_ids.npy                [m, 77] int64 token ids for the small text model (eos/pad 999)
- text_attention_mask.npy     [m, 77] the matching attention masks
- vision_pooled.npy, image_embeds.npy
                              [n, 64] post-LN CLS of the vision tower, [n, 24] visual_projection;
                              float64 model on the float32 pixel values of pixels_u8.npy
- text_pooled.npy, text_embeds.npy
                              [m, 32] final-LN hidden state at the EOS token, [m, 24] text_projection
- g3.pth                      a G3-structured state_dict (torch.save) around that CLIP: heads
                              vision_projection_else_{1,2}, text_projection_else (24 -> 24 -> 24),
                              a tiny Mercator location encoder (encoded 8, hidden 16 x 3, output
                              12), location_projection_else (12 -> 12 -> 24), logit_scale1..3
- g3_image_text.npy, g3_image_gps.npy, g3_text.npy
                              l2-normalised heads: vision_projection_else_1(image_embeds),
                              vision_projection_else_2(image_embeds), text_projection_else(text_embeds)
- g3_database.npy             [n, 72] concat(l2n(image_embeds), l2n(head 1), l2n(head 2)), the
                              vector G3's IndexSearch.py stores
- g3_coordinates.csv, g3_location.npy, g3_image_gps_similarity.npy
                              LAT,LON of 6 points; l2n(location_projection_else(encoder(mercator)))
                              [6, 24]; cosine similarity image x GPS [n, 6]
- tokenizer_strings.json      60 strings (unicode, punctuation, contractions, long text...)
- tokenizer_ids.npy           [60, 77] CLIPTokenizer(Fast) ids, padding="max_length", truncation,
                              max_length 77, built from OpenAI's bpe_simple_vocab_16e6.txt.gz as
                              shipped in open_clip_torch 3.3.0 (pass its path as the argument)

Model goldens are float64 (the Rust side runs float32 and is held to 1e-4); attention is
transformers' eager implementation.

    python3 -m venv /tmp/g3-goldens && /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt
    scripts/fetch-assets.sh
    /tmp/g3-goldens/bin/python tools/goldens/clip.py ~/.cache/g3/open_clip_torch-3.3.0/bpe_simple_vocab_16e6.txt.gz
"""

import csv
import gzip
import json
import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import pyproj
import safetensors
import torch
import transformers
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

assert torch.__version__.split("+")[0] == "2.15.0", torch.__version__
assert transformers.__version__ == "5.24.0", transformers.__version__
assert PIL.__version__ == "13.0.0", PIL.__version__
assert np.__version__ == "2.4.6", np.__version__
assert safetensors.__version__ == "0.8.0", safetensors.__version__

OUT = Path(__file__).resolve().parents[2] / "g3-align/tests/fixtures/clip"
MERCATOR_SCALE = 20037508.3427892


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def scene(width, height, seed, channels=3, noise=3.0, checkerboard=True):
    """A photo-like uint8 array: smooth colour fields, hard edges, stripes and a little noise,
    so that resampling filters and their rounding matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    out = np.empty((height, width, channels))
    for c in range(channels):
        a, b, p = rng.uniform(1, 6, size=3)
        field = 127 + 90 * np.sin(a * u * math.pi + p) * np.cos(b * v * math.pi - p)
        field += 60 * ((u * 7 + v * 3 + c) % 1.0 > 0.5)  # hard diagonal stripes
        if checkerboard:
            field += 40 * (((x // 9) + (y // 13)) % 2)  # a fine checkerboard
        field += rng.normal(0, noise, size=(height, width))
        out[..., c] = field
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_png_rgb16(path, pixels):
    """A 16-bit RGB PNG; PIL cannot write one, so the chunks are written here."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_images(directory):
    directory.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene(640, 427, 1)).save(directory / "landscape.jpg", quality=90)
    Image.fromarray(scene(300, 517, 2)).save(directory / "portrait.png")
    Image.fromarray(scene(257, 199, 3, channels=1)[..., 0], "L").save(directory / "gray.png")
    gray_alpha = scene(150, 230, 4, channels=2)
    Image.fromarray(gray_alpha, "LA").save(directory / "gray_alpha.png")
    Image.fromarray(scene(333, 222, 5, channels=4), "RGBA").save(directory / "rgba.png")
    palette = Image.fromarray(scene(260, 180, 6)).quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    palette.info["transparency"] = 3
    palette.save(directory / "palette.png", transparency=3)
    Image.fromarray(scene(121, 91, 7)).quantize(colors=32).save(directory / "palette.gif")
    Image.fromarray(scene(240, 320, 8, channels=4), "CMYK").save(directory / "cmyk.jpg", quality=92)
    # Values up to 1000: PIL clips 16-bit gray to 255 when converting to RGB.
    gray16 = scene(200, 150, 9, channels=1)[..., 0].astype(np.uint32) * 1000 // 255
    Image.fromarray(gray16.astype(np.uint16)).save(directory / "gray16.png")
    write_png_rgb16(directory / "rgb16.png", scene(180, 140, 10).astype(np.uint16) * 257)
    Image.fromarray(np.array([[[200, 30, 90]]], dtype=np.uint8)).save(directory / "one_pixel.png")
    Image.fromarray(scene(4032, 3024, 11, noise=0.0, checkerboard=False)).save(directory / "large.jpg", quality=60)
    Image.fromarray(scene(3, 500, 12)).save(directory / "narrow.png")
    Image.fromarray(scene(200, 200, 13)).save(directory / "lossless.webp", lossless=True)
    Image.fromarray(scene(224, 224, 14)).save(directory / "exact.png")
    Image.fromarray(scene(100, 80, 15)).save(directory / "upscale.jpg", quality=95)


def image_goldens(names):
    pil = CLIPImageProcessorPil()
    torchvision_default = CLIPImageProcessor()
    mean = np.array(pil.image_mean, dtype=np.float64)
    std = np.array(pil.image_std, dtype=np.float64)
    rows, pixels, values, worst_torchvision = [], [], [], 0.0
    for name in names:
        with Image.open(OUT / "images" / name) as opened:
            mode, size = opened.mode, opened.size
            rgb = opened.convert("RGB")
        # do_convert_rgb=False: the image is RGB already, as in G3. transformers 5's
        # convert_to_rgb would also composite colours listed in info["transparency"] (which
        # PIL keeps after converting a palette PNG) onto white; transformers 4, which G3 used,
        # returned RGB images untouched.
        processed = pil(images=rgb, do_convert_rgb=False, return_tensors="np")["pixel_values"][0].astype(np.float64)
        # Recover the bytes the processor resized and cropped, then check that they reproduce
        # its output exactly: the fixture stores bytes, the test rebuilds the floats.
        u8 = np.rint((processed.transpose(1, 2, 0) * std + mean) * 255.0)
        assert u8.min() >= 0 and u8.max() <= 255, name
        u8 = u8.astype(np.uint8)
        rebuilt = ((u8.astype(np.float64) / 255.0 - mean) / std).transpose(2, 0, 1)
        assert np.abs(rebuilt - processed).max() < 1e-5, (name, np.abs(rebuilt - processed).max())
        pixels.append(u8)
        values.append(processed.astype(np.float32))
        other = torchvision_default(images=rgb, do_convert_rgb=False, return_tensors="np")["pixel_values"][0]
        worst_torchvision = max(worst_torchvision, float(np.abs(other - processed).max()))
        rows.append((name, size[0], size[1], mode))
    pil.save_pretrained(OUT / "model")
    return rows, np.stack(pixels), np.stack(values), worst_torchvision


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

def small_clip():
    config = CLIPConfig(
        text_config=dict(
            vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
            bos_token_id=998, eos_token_id=999, pad_token_id=999,
        ),
        vision_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            image_size=224, patch_size=32, hidden_act="quick_gelu",
        ),
        projection_dim=24,
    )
    torch.manual_seed(7)
    model = CLIPModel(config).eval()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.2)
            elif name.endswith("logit_scale"):
                continue
            else:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def text_inputs():
    rng = np.random.default_rng(21)
    lengths = [2, 5, 17, 40, 76, 77, 9, 30]
    ids = np.full((len(lengths), 77), 999, dtype=np.int64)
    mask = np.zeros((len(lengths), 77), dtype=np.int64)
    for row, length in enumerate(lengths):
        # bos, content, eos; the last row is truncated like a tokenizer does: eos at 76.
        content = rng.integers(0, 998, size=length - 2) if length > 2 else np.array([], dtype=np.int64)
        ids[row, 0] = 998
        ids[row, 1 : 1 + len(content)] = content
        ids[row, length - 1] = 999
        mask[row, :length] = 1
    return ids, mask


class Head(torch.nn.Sequential):
    def __init__(self, sizes):
        super().__init__(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(), torch.nn.Linear(sizes[1], sizes[2]))


def tiny_location_encoder():
    """G3's CustomLocationEncoder layout (LocEnc{i}.capsule / .head) at a tiny width."""
    torch.manual_seed(11)
    encoder = torch.nn.Module()
    for i, sigma in enumerate([2**0, 2**4, 2**8]):
        capsule = torch.nn.Module()
        capsule.capsule = torch.nn.Sequential(
            torch.nn.Identity(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
            torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
        )
        capsule.capsule[0].register_parameter("b", torch.nn.Parameter(torch.randn(8, 2) * sigma))
        capsule.head = torch.nn.Sequential(torch.nn.Linear(16, 12))
        encoder.add_module(f"LocEnc{i}", capsule)
    return encoder


def location_forward(encoder, projected):
    total = 0
    for i in range(3):
        capsule = encoder._modules[f"LocEnc{i}"]
        b = capsule.capsule[0].b
        v = 2 * math.pi * projected @ b.T
        x = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
        for layer in list(capsule.capsule)[1:]:
            x = layer(x)
        total = total + capsule.head(x)
    return total


def mercator_input(points):
    transformer = pyproj.Transformer.from_proj(pyproj.Proj("epsg:4326"), pyproj.Proj("epsg:3857"), always_xy=True)
    lat = points[:, 0].astype(np.float32).astype(np.float64)
    lon = points[:, 1].astype(np.float32).astype(np.float64)
    x, y = transformer.transform(lon, lat)
    return torch.tensor(np.stack([y, x], axis=1), dtype=torch.float64) / MERCATOR_SCALE


def l2n(x):
    return x / x.norm(p=2, dim=-1, keepdim=True)


def model_goldens(pixel_values):
    model = small_clip()
    model.save_pretrained(OUT / "model", safe_serialization=True)
    ids, mask = text_inputs()
    np.save(OUT / "text_ids.npy", ids)
    np.save(OUT / "text_attention_mask.npy", mask)

    torch.manual_seed(13)
    heads = {
        "vision_projection_else_1": Head((24, 24, 24)),
        "text_projection_else": Head((24, 24, 24)),
        "vision_projection_else_2": Head((24, 24, 24)),
        "location_projection_else": Head((12, 12, 24)),
    }
    location = tiny_location_encoder()
    state = {f"vision_model.{k}": v for k, v in model.vision_model.state_dict().items()}
    state.update({f"text_model.{k}": v for k, v in model.text_model.state_dict().items()})
    state["vision_projection.weight"] = model.visual_projection.weight.detach()
    state["text_projection.weight"] = model.text_projection.weight.detach()
    for i, value in enumerate([3.99, 4.25, 2.5], start=1):
        state[f"logit_scale{i}"] = torch.tensor(value)
    state.update({f"location_encoder.{k}": v for k, v in location.state_dict().items()})
    for name, head in heads.items():
        state.update({f"{name}.{k}": v for k, v in head.state_dict().items()})
    torch.save({k: v.detach().clone().contiguous() for k, v in state.items()}, OUT / "g3.pth")

    model = model.double()
    location = location.double()
    heads = {name: head.double() for name, head in heads.items()}
    points = np.array([(48.8566, 2.3522), (-33.8688, 151.2093), (40.7128, -74.006),
                       (35.6762, 139.6503), (0.0, 0.0), (-77.846, 166.676)], dtype=np.float32)
    with open(OUT / "g3_coordinates.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["LAT", "LON"])
        writer.writerows([(repr(float(lat)), repr(float(lon))) for lat, lon in points])
    with torch.no_grad():
        pixels = torch.tensor(pixel_values, dtype=torch.float64)
        vision_pooled = model.vision_model(pixel_values=pixels).pooler_output
        image_embeds = model.visual_projection(vision_pooled)
        text = model.text_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
        text_embeds = model.text_projection(text.pooler_output)
        # The same pooled text without the attention mask: the causal mask alone already keeps
        # padding after the eos token out of the eos state.
        unmasked = model.text_model(input_ids=torch.tensor(ids)).pooler_output
        assert torch.allclose(unmasked, text.pooler_output, atol=1e-12)
        image_text = l2n(heads["vision_projection_else_1"](image_embeds))
        image_gps = l2n(heads["vision_projection_else_2"](image_embeds))
        text_head = l2n(heads["text_projection_else"](text_embeds))
        database = torch.cat([l2n(image_embeds), image_text, image_gps], dim=1)
        gps = l2n(heads["location_projection_else"](location_forward(location, mercator_input(points))))
        similarity = image_gps @ gps.T
    for name, value in [
        ("vision_pooled", vision_pooled), ("image_embeds", image_embeds),
        ("text_pooled", text.pooler_output), ("text_embeds", text_embeds),
        ("g3_image_text", image_text), ("g3_image_gps", image_gps), ("g3_text", text_head),
        ("g3_database", database), ("g3_location", gps), ("g3_image_gps_similarity", similarity),
    ]:
        np.save(OUT / f"{name}.npy", value.numpy())


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's reversible byte-to-character table, which CLIP's BPE vocabulary is written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return [chr(c) for c in characters]


def clip_tokenizer(bpe_path):
    lines = gzip.decompress(Path(bpe_path).read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_characters = bytes_to_unicode()
    vocab = byte_characters + [c + "</w>" for c in byte_characters]
    vocab += ["".join(merge.split()) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[tuple(m.split()) for m in merges])


TOKENIZER_STRINGS = [
    "", " ", "a", "A street view photo taken in Paris, Île-de-France, France",
    "A street view photo taken in São Paulo, State of São Paulo, Brazil",
    "A street view photo taken in Reykjavík, Capital Region, Iceland",
    "A street view photo taken in 東京都, 日本", "서울특별시, 대한민국", "Москва, Россия",
    "القاهرة، مصر", "मुंबई, महाराष्ट्र, भारत", "กรุงเทพมหานคร", "Ελλάδα και Κύπρος",
    "Zürich, Genève, Köln, Kraków, Łódź, Ærøskøbing", "naïve café résumé coöperate",
    "it's I'm you're we've they'll he'd don't", "IT'S I'M YOU'RE",
    "Hello, World! How are you?", "...!!!???", "a-b_c.d,e;f:g", "(parentheses) [brackets] {braces}",
    "\"double\" 'single' `backtick`", "$100.00 + 15% = €115,00 #hashtag @mention",
    "C++ & C# <html> </html>", "&amp; &lt; &gt; &quot;", "line1\nline2\tTabbed   spaced",
    "  leading and trailing  ", "MiXeD CaSe WoRdS", "1234567890", "3.14159 2,718 1e-10",
    "48.8566, 2.3522", "-33.8688,151.2093", "emoji 😀🎉🗺️🌍", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵",
    "fullwidth ＡＢＣ１２３", "ligature ﬁ ﬂ", "e\u0301 composed vs é", "soft\u00adhyphen", "zero\u200bwidth",
    "<|startoftext|>", "<|endoftext|>", "text <|endoftext|> inside", "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "www.example.com/path?query=1&x=y", "user@example.org", "snake_case camelCase kebab-case",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "A very long description of a street scene with many words that goes on and on " * 4,
    " ".join(f"word{i}" for i in range(100)),
    "x" * 300, "ab " * 80, "Mont-Saint-Michel, Normandie", "Llanfairpwllgwyngyll",
    "São Tomé and Príncipe", "Côte d'Ivoire", "Curaçao", "Nuuk, Kalaallit Nunaat", "Ürümqi 乌鲁木齐",
]


def tokenizer_goldens(bpe_path):
    tokenizer = clip_tokenizer(bpe_path)
    assert len(TOKENIZER_STRINGS) >= 50
    encoded = tokenizer(TOKENIZER_STRINGS, padding="max_length", truncation=True, max_length=77)
    ids = np.array(encoded["input_ids"], dtype=np.int64)
    assert ids.shape == (len(TOKENIZER_STRINGS), 77)
    (OUT / "tokenizer_strings.json").write_text(json.dumps(TOKENIZER_STRINGS, ensure_ascii=False, indent=0) + "\n")
    np.save(OUT / "tokenizer_ids.npy", ids)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: clip.py PATH/TO/bpe_simple_vocab_16e6.txt.gz")
    OUT.mkdir(parents=True, exist_ok=True)
    make_images(OUT / "images")
    names = sorted(p.name for p in (OUT / "images").iterdir())
    rows, pixels, values, worst_torchvision = image_goldens(names)
    with open(OUT / "images.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["file", "width", "height", "mode"])
        writer.writerows(rows)
    np.save(OUT / "pixels_u8.npy", pixels)
    (OUT / "pixel_values_torchvision_max_diff.txt").write_text(
        f"max |CLIPImageProcessor (torchvision) - CLIPImageProcessorPil| over the images: {worst_torchvision:.6f}\n"
    )
    model_goldens(values)
    tokenizer_goldens(sys.argv[1])
    print(f"wrote {len(names)} images, model and tokenizer goldens to {OUT}")


if __name__ == "__main__":
    main()

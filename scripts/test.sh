#!/usr/bin/env bash
# The project's one test command: prepares what the tests need, then runs every test of the
# workspace (unit, integration, CLI and doc tests). CI runs it through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked

#!/usr/bin/env bash
# Builds and launches the studio with its default models, installing what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh run
models/fetch.sh all
exec cargo run --release -- "$@"

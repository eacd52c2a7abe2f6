#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: system packages, models, then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh test
models/fetch.sh all
# llama.cpp's own OpenAI-compatible server, for tests/remote.rs (cached outside the clone).
ATELIER_PEER_PYTHON="$(scripts/peer-venv.sh)/bin/python"
export ATELIER_PEER_PYTHON
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets --no-fail-fast 2>&1

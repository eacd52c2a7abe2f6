#!/usr/bin/env bash
# The training peer: PyTorch (CPU), PEFT, transformers and gguf in a virtualenv outside the
# clone, for the training benchmarks (benches/train_*.sh) and for regenerating the committed
# training fixtures (scripts/fixtures/). Never needed by the test suite. Prints the venv's path.
#   ATELIER_TRAIN_VENV   where (default ~/.cache/atelier-bench/torch-venv)
# The first install downloads about 5 GB (torch's wheels from PyPI carry CUDA libraries).
set -euo pipefail
VENV="${ATELIER_TRAIN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/atelier-bench/torch-venv}"
have() {
  "$VENV/bin/python" -c 'import torch, peft, transformers, gguf, numpy, safetensors, PIL' >/dev/null 2>&1
}
if ! have; then
  echo "train-peer-venv: installing torch, peft, transformers, gguf into $VENV (about 5 GB)" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-cache-dir torch peft transformers gguf numpy safetensors pillow \
    sentencepiece accelerate >&2
  have || { echo "train-peer-venv: the training peer did not install" >&2; exit 1; }
fi
echo "$VENV"

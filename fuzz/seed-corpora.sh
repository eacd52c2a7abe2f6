#!/usr/bin/env bash
# Adds the large seeds (taken from the fetched models) to fuzz/corpus/: the first 2 MB of the
# SmolLM2 GGUF (header, vocabulary, tensor table), the multistyle26 ONNX file and the DCGAN
# checkpoint. They are not committed (see .gitignore); the small seeds are.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/corpus/gguf" "$here/corpus/onnx" "$here/corpus/checkpoint"
models="${ATELIER_MODELS:-$here/../models}"
head -c $((2 << 20)) "$models/SmolLM2-135M-Instruct.Q4_1.gguf" > "$here/corpus/gguf/model-smollm2-head.gguf"
cp "$models/multistyle26.onnx" "$here/corpus/onnx/model-multistyle26.onnx"
cp "$models/dcgan-weights.tar" "$here/corpus/checkpoint/model-dcgan-weights.tar"
echo "seeds added under $here/corpus"

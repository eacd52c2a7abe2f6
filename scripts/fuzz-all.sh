#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 600), two at a time; see fuzz/README.md.
# FUZZ_TARGETS="gguf chat_template" runs only those. Needs a nightly toolchain and
# `cargo install cargo-fuzz`. Logs go to $TMPDIR/fuzz-<target>.log; a crash lands in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-600}"
logs="${TMPDIR:-/tmp}"
fuzz/seed-corpora.sh
# Inputs longer than the seeds they grow from are pointless; the model seeds are large.
max_len() {
  case $1 in
    gguf) echo 4194304 ;;
    checkpoint) echo 16777216 ;;
    onnx) echo 1048576 ;;
    *) echo 65536 ;;
  esac
}
run() {
  local target=$1
  if cargo +nightly fuzz run -s none "$target" -- -max_total_time="$seconds" \
      -rss_limit_mb=4096 -timeout=30 -max_len="$(max_len "$target")" \
      > "$logs/fuzz-$target.log" 2>&1; then
    echo "$target: $(grep -E '^Done' "$logs/fuzz-$target.log" | tail -1)"
  else
    echo "$target: FAILED, see $logs/fuzz-$target.log and fuzz/artifacts/$target/"
  fi
}
read -r -a targets <<< "${FUZZ_TARGETS:-gguf pickle checkpoint safetensors onnx image chat_template}"
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" &
  if ((i + 1 < ${#targets[@]})); then run "${targets[i + 1]}" & fi
  wait
done

#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 600), two at a time; see fuzz/README.md.
# Needs a nightly toolchain and `cargo install cargo-fuzz`. Logs go to $TMPDIR/fuzz-<target>.log;
# a crash lands in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-600}"
logs="${TMPDIR:-/tmp}"
fuzz/seed-corpora.sh
run() {
  local target=$1; shift
  if cargo +nightly fuzz run -s none "$target" -- -max_total_time="$seconds" \
      -rss_limit_mb=4096 -timeout=30 "$@" > "$logs/fuzz-$target.log" 2>&1; then
    echo "$target: $(grep -E '^Done' "$logs/fuzz-$target.log" | tail -1)"
  else
    echo "$target: FAILED, see $logs/fuzz-$target.log and fuzz/artifacts/$target/"
  fi
}
run gguf -max_len=4194304 & run pickle & wait
run checkpoint -max_len=16777216 & run safetensors & wait
run onnx -max_len=1048576 & run image & wait

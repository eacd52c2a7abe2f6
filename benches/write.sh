#!/usr/bin/env bash
# The Write benchmark: Atelier and llama.cpp side by side, in the same run, on the same token ids.
#
#   benches/write.sh [--repeats N] [--inner N] [--model PATH]... [--prompt-tokens N] [--decode-tokens N] [--no-build]
#                    [--wait-quiet SECONDS] [--lora-rank R] [--isa native|avx2]
#
# Builds atelier in release, makes sure the llama.cpp peer (llama-cpp-python built with native
# CPU flags) is installed in a venv outside the repo, then for N repetitions runs, per model,
# one fresh Atelier process and one fresh llama.cpp process (order alternating A,L / L,A between
# repetitions so drift in machine load hits both alike). Each process loads the model once and
# times --inner generations. Raw JSON lines go to bench-out/write.jsonl; a markdown table of
# medians over the repetitions and Atelier/llama.cpp ratios is printed at the end (and written
# to bench-out/write.md).
#
# --wait-quiet S: before each process, wait (at most S seconds) until the other processes on the
# machine use under 15% of the CPU over a second, since concurrent builds skew every number; the
# CPU use seen just before each process is recorded as busy_before_pct.
#
# --lora-rank R: also measure with a LoRA adapter applied: Atelier writes a random adapter of rank
# R on all seven projections of every layer (bench-out/lora/<model>.lora-rR.gguf) and times each
# generation with it right after one without, in the same process; llama.cpp loads the same file
# (lora_path) in a process of its own. The table adds the speeds with the adapter and the
# with/without ratios.
#
# --isa avx2: both sides limited to AVX2 (+FMA, F16C, BMI2), as on most laptops, which lack
# AVX-512: Atelier is a second build, for x86-64-v3 (AVX2, no AVX-512) and without gemm's
# run-time AVX-512 kernels (--no-default-features), in target/x86-64-v3, running its AVX2
# kernel (ATELIER_LLM_KERNEL=avx2, since its kernels are chosen at run time); llama.cpp is a second
# llama-cpp-python compiled with GGML_NATIVE=OFF and every AVX-512/AVX-VNNI/AMX switch off, in a
# venv of its own (scripts/peer-venv.sh checks ggml's system info reports AVX2 and no AVX-512).
# The ISA and the peer's system info go into the JSON meta and the table header; results go to
# bench-out/write-avx2.{jsonl,md}. Default: native (Atelier's best kernel, llama.cpp with
# -march=native).
#
# Environment: ATELIER_BENCH_VENV (default ~/.cache/atelier-bench/venv),
# ATELIER_BENCH_VENV_AVX2 (for --isa avx2; default ~/.cache/atelier-bench/venv-avx2),
# LLAMA_CPP_PYTHON_VERSION (default 0.3.36), BENCH_THREADS (llama.cpp threads, default nproc).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

REPEATS=5
INNER=3
PROMPT_TOKENS=256
DECODE_TOKENS=128
MODELS=()
BUILD=1
WAIT_QUIET=0
LORA_RANK=0
ISA=native
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeats) REPEATS=$2; shift 2 ;;
    --inner) INNER=$2; shift 2 ;;
    --model) MODELS+=("$2"); shift 2 ;;
    --prompt-tokens) PROMPT_TOKENS=$2; shift 2 ;;
    --decode-tokens) DECODE_TOKENS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --wait-quiet) WAIT_QUIET=$2; shift 2 ;;  # reuse the binaries already in target/release
    --lora-rank) LORA_RANK=$2; shift 2 ;;
    --isa) ISA=$2; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ISA" in
  # The AVX-512 machine's best kernel, against llama.cpp compiled for this CPU.
  native) VENV=${ATELIER_BENCH_VENV:-$HOME/.cache/atelier-bench/venv} ;;
  # Atelier's fallback for CPUs without AVX-512 VNNI, against llama.cpp compiled the same way.
  avx2) export ATELIER_LLM_KERNEL=avx2; VENV=${ATELIER_BENCH_VENV_AVX2:-$HOME/.cache/atelier-bench/venv-avx2} ;;
  *) echo "error: --isa $ISA: native or avx2" >&2; exit 2 ;;
esac
if [[ ${#MODELS[@]} -eq 0 ]]; then
  MODELS=("$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$ROOT/models/gemma-3-270m-q4_k_m.gguf")
fi
for m in "${MODELS[@]}"; do
  [[ -f "$m" ]] || { echo "error: model $m is missing (run models/fetch.sh)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "error: jq is needed (apt-get install jq)" >&2; exit 1; }

THREADS=${BENCH_THREADS:-$(nproc)}
LLAMA_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
OUT=bench-out
SUFFIX=$([[ $ISA == native ]] || echo "-$ISA")  # results of both ISAs side by side
JSONL=$OUT/write$SUFFIX.jsonl
mkdir -p "$OUT"

# --- Atelier, release build --------------------------------------------------------------------
# For --isa avx2 the whole binary is built for x86-64-v3, so nothing in it (attention's GEMMs,
# norms, the compiler's own vectorisation) uses AVX-512 either.
BUILD_ENV=()
BUILD_ARGS=(--release)
BIN=target/release
if [[ $ISA == avx2 ]]; then
  BUILD_ENV=(RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=target/x86-64-v3)
  BUILD_ARGS+=(--no-default-features)
  BIN=target/x86-64-v3/release
fi
if (( BUILD )); then
  echo "== building atelier (release, $ISA)" >&2
  env "${BUILD_ENV[@]}" cargo build "${BUILD_ARGS[@]}"
fi
ATELIER=("$BIN/atelier" bench write)
if ! "$BIN/atelier" bench write --help 2>/dev/null | grep -q -- --decode-tokens; then
  echo "== 'atelier bench write' is not in this build: using the bench_write example instead" >&2
  if (( BUILD )); then env "${BUILD_ENV[@]}" cargo build "${BUILD_ARGS[@]}" --example bench_write; fi
  ATELIER=("$BIN/examples/bench_write")
fi
[[ -x "${ATELIER[0]}" ]] || { echo "error: ${ATELIER[0]} is missing (run without --no-build)" >&2; exit 1; }

# --- llama.cpp peer, in a venv outside the repo ------------------------------------------------
VENV="$(ATELIER_PEER_VENV="$VENV" ATELIER_PEER_ISA="$ISA" LLAMA_CPP_PYTHON_VERSION="$LLAMA_VERSION" scripts/peer-venv.sh)"
PEER=("$VENV/bin/python" benches/llamacpp_peer.py)

# --- run ---------------------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
jq -nc --arg cpu "$cpu" --argjson nproc "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg date "$(date -u +%FT%TZ)" --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
  --argjson repeats "$REPEATS" --argjson inner "$INNER" --argjson threads "$THREADS" \
  --arg atelier "${ATELIER[*]}" --arg peer "$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')" \
  --arg isa "$ISA" --arg kernel "${ATELIER_LLM_KERNEL:-best}" \
  --arg peer_sys "$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode().strip())')" \
  '{meta: true, date: $date, git: $rev, cpu: $cpu, nproc: $nproc, loadavg_start: $load,
    repeats: $repeats, inner: $inner, llama_threads: $threads, atelier_cmd: $atelier,
    llama_cpp_python: $peer, isa: $isa, atelier_kernel: $kernel, llama_cpp_system_info: $peer_sys}' > "$JSONL"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other builds running skew every number)" >&2

cpu_busy() { # percent of all CPUs busy over one second
  local a b
  read -r _ a1 a2 a3 a4 a5 a6 a7 _ < /proc/stat; a=$((a1+a2+a3+a4+a5+a6+a7)); local ai=$((a4+a5))
  sleep 1
  read -r _ b1 b2 b3 b4 b5 b6 b7 _ < /proc/stat; b=$((b1+b2+b3+b4+b5+b6+b7)); local bi=$((b4+b5))
  echo $(( 100 * ((b - a) - (bi - ai)) / ((b - a) > 0 ? (b - a) : 1) ))
}
BUSY=0
wait_quiet() {
  local deadline=$((SECONDS + WAIT_QUIET))
  BUSY=$(cpu_busy)
  while (( WAIT_QUIET > 0 && BUSY >= 15 && SECONDS < deadline )); do
    sleep 4; BUSY=$(cpu_busy)
  done
  (( BUSY < 15 )) || echo "   (CPU ${BUSY}% busy with other work)" >&2
}

LORA_ARGS=()
if (( LORA_RANK > 0 )); then LORA_ARGS=(--lora-rank "$LORA_RANK" --lora-dir "$OUT/lora"); fi
run_atelier() { # model rep
  "${ATELIER[@]}" --model "$1" --prompt-tokens "$PROMPT_TOKENS" --decode-tokens "$DECODE_TOKENS" \
    --repeats "$INNER" "${LORA_ARGS[@]}" --json | jq -c --argjson rep "$2" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson busy "$BUSY" \
    '.results[] + {rep: $rep, loadavg: $load, busy_before_pct: $busy}' >> "$JSONL"
  local ids="$OUT/prompt-ids-$(basename "$1").json"
  [[ -f "$ids" ]] || tail -n1 "$JSONL" | jq -c '.prompt_ids' > "$ids"
}
run_peer() { # model rep
  "${PEER[@]}" --model "$1" --prompt-ids "$OUT/prompt-ids-$(basename "$1").json" \
    --decode-tokens "$DECODE_TOKENS" --repeats "$INNER" --threads "$THREADS" \
    | jq -c --argjson rep "$2" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson busy "$BUSY" \
      '. + {rep: $rep, loadavg: $load, busy_before_pct: $busy}' >> "$JSONL"
  if (( LORA_RANK > 0 )); then
    local stem; stem=$(basename "$1" .gguf)
    "${PEER[@]}" --model "$1" --prompt-ids "$OUT/prompt-ids-$(basename "$1").json" \
      --decode-tokens "$DECODE_TOKENS" --repeats "$INNER" --threads "$THREADS" \
      --lora "$OUT/lora/$stem.lora-r$LORA_RANK.gguf" \
      | jq -c --argjson rep "$2" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson busy "$BUSY" \
        '. + {rep: $rep, loadavg: $load, busy_before_pct: $busy}' >> "$JSONL"
  fi
}

rm -f "$OUT"/prompt-ids-*.json
for rep in $(seq 1 "$REPEATS"); do
  for m in "${MODELS[@]}"; do
    if (( rep % 2 == 1 )); then order=(atelier peer); else order=(peer atelier); fi
    for who in "${order[@]}"; do
      echo "== rep $rep/$REPEATS $(basename "$m"): $who" >&2
      wait_quiet
      "run_$who" "$m" "$rep"
    done
  done
done
jq -c --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" 'if .meta then . + {loadavg_end: $load} else . end' \
  "$JSONL" > "$JSONL.tmp" && mv "$JSONL.tmp" "$JSONL"

# --- table -------------------------------------------------------------------------------------
python3 - "$JSONL" <<'PY' | tee "$OUT/write$SUFFIX.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r.get("meta"))
res = [r for r in rows if not r.get("meta")]
models = list(dict.fromkeys(r["model"] for r in res))
def med(model, engine, key):
    xs = [r[key] for r in res if r["model"] == model and r["engine"] == engine and r.get(key) is not None]
    return statistics.median(xs) if xs else float("nan")
metrics = [
    ("load time (s)", "load_s", "{:.3f}", "lower"),
    (f"prompt, {res[0]['prompt_tokens']} tok (tok/s)", "pp_tok_s", "{:.1f}", "higher"),
    (f"decode, {res[0]['decode_tokens']} tok (tok/s)", "tg_tok_s", "{:.1f}", "higher"),
    ("time to first token (ms)", "ttft_ms", "{:.0f}", "lower"),
    ("prompt, first run after load (tok/s)", "pp_tok_s_first", "{:.1f}", "higher"),
    ("decode, first run after load (tok/s)", "tg_tok_s_first", "{:.1f}", "higher"),
    ("peak RSS (MB)", "peak_rss_mb", "{:.1f}", "lower"),
]
isa = meta.get("isa", "native")
if isa == "avx2":
    print(f"ISA: AVX2 on both sides (Atelier ATELIER_LLM_KERNEL={meta.get('atelier_kernel')}, "
          f"`{meta.get('atelier_cmd', '?').split()[0]}` built for x86-64-v3 without gemm's AVX-512; "
          f"llama.cpp built without AVX-512: {meta.get('llama_cpp_system_info', '?')})")
else:
    print("ISA: native on both sides (Atelier's best kernel; llama.cpp built with GGML_NATIVE=ON)")
print(f"Machine: {meta['cpu']}, {meta['nproc']} cores; load average {meta['loadavg_start']} -> {meta.get('loadavg_end', '?')}; "
      f"{meta['repeats']} repetitions x {meta['inner']} generations per process; llama-cpp-python {meta['llama_cpp_python']}, "
      f"{meta['llama_threads']} threads; {meta['date']}")
busy = [r["busy_before_pct"] for r in res if r.get("busy_before_pct") is not None]
if busy:
    print(f"CPU busy with other work just before each process: median {statistics.median(busy)}%, max {max(busy)}%")
print()
for m in models:
    a_ids = next((r["generated_ids"] for r in res if r["model"] == m and r["engine"] == "atelier"), [])
    l_ids = next((r["generated_ids"] for r in res if r["model"] == m and r["engine"] == "llama.cpp"), [])
    same = next((i for i, (x, y) in enumerate(zip(a_ids, l_ids)) if x != y), min(len(a_ids), len(l_ids)))
    n = sum(1 for r in res if r["model"] == m and r["engine"] == "atelier")
    print(f"**{m}** (medians of {n} runs each; greedy tokens identical for the first {same} of {len(a_ids)})")
    print()
    print("| metric | Atelier | llama.cpp | Atelier / llama.cpp |")
    print("|---|---:|---:|---:|")
    for label, key, fmt, better in metrics:
        a, l = med(m, "atelier", key), med(m, "llama.cpp", key)
        ratio = a / l if l else float("nan")
        print(f"| {label} | {fmt.format(a)} | {fmt.format(l)} | {ratio:.2f} ({better} is better) |")
    print()
    lora = [r for r in res if r["model"] == m and r["engine"] == "atelier" and r.get("lora")]
    if lora:
        def lmed(key):
            xs = [r["lora"][key] for r in lora if r["lora"].get(key) is not None]
            return statistics.median(xs) if xs else float("nan")
        a = lmed("tg_tok_s"); a0 = med(m, "atelier", "tg_tok_s")
        l = med(m, "llama.cpp+lora", "tg_tok_s"); l0 = med(m, "llama.cpp", "tg_tok_s")
        applied = lora[0]["lora"].get("applied") or {}
        print(f"With a rank-{applied.get('rank', '?')} adapter on {', '.join(applied.get('targets', []))} "
              f"({applied.get('method', '?')}); Atelier's runs with and without it alternate in one process:")
        print()
        print("| metric | Atelier | llama.cpp | Atelier / llama.cpp |")
        print("|---|---:|---:|---:|")
        rows = [
            ("load time with adapter (s)", lmed("load_s"), med(m, "llama.cpp+lora", "load_s"), "{:.3f}"),
            ("prompt with adapter (tok/s)", lmed("pp_tok_s"), med(m, "llama.cpp+lora", "pp_tok_s"), "{:.1f}"),
            ("decode with adapter (tok/s)", a, l, "{:.1f}"),
        ]
        for label, x, y, fmt in rows:
            print(f"| {label} | {fmt.format(x)} | {fmt.format(y)} | {x / y if y else float('nan'):.2f} |")
        ratios = [r["lora"]["tg_ratio"] for r in lora if r["lora"].get("tg_ratio")]
        print(f"| decode with / without adapter | {statistics.median(ratios):.3f} | {l / l0 if l0 else float('nan'):.3f} | |")
        print()
PY
echo "raw results: $JSONL" >&2

#!/usr/bin/env bash
# The writing-training benchmark: Atelier's LoRA trainer and PyTorch + PEFT on the same GGUF,
# the same recipe and the same batches, side by side in one run.
#
#   benches/train_write.sh [--steps N] [--threads "1 2"] [--models "smollm2 gemma3"] [--no-build]
#
# Builds atelier in release and makes sure the training peer (torch, peft, transformers, gguf) is
# in its venv outside the repo (scripts/train-peer-venv.sh). The text is Paradise Lost, Books I
# and II (models/texts/milton; the last 10% of its paragraphs held out). For each model and
# thread count: one Atelier process (`atelier train write --json --dump-plan`: rank 8, alpha 16,
# q/k/v/o/gate/up/down, 4 chunks of 128 tokens, AdamW lr 1e-3, N steps), then one PyTorch
# process (benches/train_write_peer.py) replaying the same plan: the same initial A, the same
# chunks at every step, transformers loading the GGUF with `gguf_file=` (dequantised to f32),
# torch.set_num_threads. Reports training tokens/s (batch x context / median step time), peak
# RSS and validation perplexity before and after equal steps. Raw JSON lines go to
# bench-out/train_write.jsonl, the table to bench-out/train_write.md.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=20
THREADS="1 2"
MODELS="smollm2 gemma3"
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "error: jq is needed (apt-get install jq)" >&2; exit 1; }
TEXT_SRC=models/texts/milton/paradiselost.txt
[[ -f "$TEXT_SRC" ]] || { echo "error: $TEXT_SRC is missing (run models/fetch.sh train)" >&2; exit 1; }
VENV=$(scripts/train-peer-venv.sh)
(( BUILD )) && cargo build --release
OUT=bench-out
mkdir -p "$OUT"
JSONL=$OUT/train_write.jsonl
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Books I and II: everything before "BOOK III".
awk '/^ *BOOK III/{exit} {print}' "$TEXT_SRC" > "$WORK/pl-1-2.txt"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
jq -nc --arg cpu "$cpu" --argjson nproc "$(nproc)" --arg date "$(date -u +%FT%TZ)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson steps "$STEPS" \
  '{meta: true, cpu: $cpu, nproc: $nproc, date: $date, loadavg_start: $load, steps: $steps}' > "$JSONL"

for model in $MODELS; do
  case $model in
    smollm2) gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf ;;
    gemma3) gguf=models/gemma-3-270m-q4_k_m.gguf ;;
    *) gguf=$model ;;
  esac
  for t in $THREADS; do
    echo "== $model, $t thread(s): Atelier" >&2
    target/release/atelier train write --model "$gguf" --text "$WORK/pl-1-2.txt" \
      --steps "$STEPS" --threads "$t" --eval-every "$STEPS" --sample-every 0 \
      --checkpoint-every "$STEPS" --runs-dir "$WORK/runs" --out "$WORK/adapter.gguf" \
      --dump-plan "$WORK/plan.json" --json \
      | jq -c --arg model "$model" --argjson threads "$t" '. + {engine: "atelier", model: $model, threads: $threads}' \
      >> "$JSONL"
    echo "== $model, $t thread(s): PyTorch + PEFT" >&2
    "$VENV/bin/python" benches/train_write_peer.py --model "$gguf" --plan "$WORK/plan.json" --threads "$t" \
      2> "$WORK/peer.log" \
      | jq -c --arg model "$model" --argjson threads "$t" '. + {engine: "pytorch", model: $model, threads: $threads}' \
      >> "$JSONL" || { cat "$WORK/peer.log" >&2; exit 1; }
  done
done

python3 - "$JSONL" <<'PY' | tee "$OUT/train_write.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r.get("meta"))
res = [r for r in rows if not r.get("meta")]
torch = next((r.get("torch") for r in res if r["engine"] == "pytorch"), "?")
print(f"Machine: {meta['cpu']}, {meta['nproc']} cores, load average {meta['loadavg_start']} at the start; "
      f"{meta['steps']} steps of 4 x 128 tokens, rank 8 on q/k/v/o/gate/up/down; PyTorch {torch}; {meta['date']}")
print()
print("| model | threads | tokens/s Atelier | tokens/s PyTorch | ratio | peak RSS Atelier (MB) | peak RSS PyTorch (MB) | val ppl before | val ppl after Atelier | val ppl after PyTorch | ppl after, Atelier / PyTorch |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
keys = sorted({(r["model"], r["threads"]) for r in res})
for model, t in keys:
    a = next(r for r in res if r["engine"] == "atelier" and r["model"] == model and r["threads"] == t)
    p = next(r for r in res if r["engine"] == "pytorch" and r["model"] == model and r["threads"] == t)
    ta = 4 * 128 / a["median_step_seconds"]
    print(f"| {model} | {t} | {ta:.0f} | {p['tokens_per_second']:.0f} | {ta / p['tokens_per_second']:.2f} | "
          f"{a.get('peak_rss_mb', float('nan')):.0f} | {p['peak_rss_mb']:.0f} | {a['val_perplexity_before']:.2f} | "
          f"{a['val_perplexity_after']:.2f} | {p['val_perplexity_after']:.2f} | "
          f"{a['val_perplexity_after'] / p['val_perplexity_after']:.3f} |")
PY
echo "raw results: $JSONL" >&2

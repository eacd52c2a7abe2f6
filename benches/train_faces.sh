#!/usr/bin/env bash
# The face-training benchmark: `atelier train faces` and PyTorch (CPU, from PyPI) on the same
# recipe and the same pictures with the same thread count, side by side in one run.
#
#   benches/train_faces.sh [--threads "1 2"] [--steps 60] [--batch 32] [--repeats 3]
#                          [--long-steps 300] [--swd-every 50] [--no-build]
#
# Pictures: the 169 "Smileys & Emotion" emoji of emoji-datasource-google 16.0.0
# (`models/fetch.sh train`), fine-tuning the Faces model (`models/fetch.sh faces`), DiffAugment
# on. For each thread count and repetition (seed = repetition; the order of the two engines
# alternates so drift in machine load hits both alike), one fresh process each trains --steps
# steps of --batch pictures and reports training pictures/s (the D and G steps only: no loading,
# checkpoints or samples) and peak RSS; then `atelier bench swd` scores both final generators,
# and the face model itself, against the emoji with one implementation (SWD as in
# src/train/faces/swd.rs: 16,384 7x7 patches per level of a 3-level Laplacian pyramid, 512
# projections, samples from BatchNorm's running statistics). A longer run per engine
# (--long-steps, on the most threads asked for) gives the SWD curve every --swd-every steps.
#
# Raw JSON lines go to bench-out/train_faces.jsonl; a markdown summary to
# bench-out/train_faces.md. The PyTorch peer lives in a venv outside the repo
# (scripts/train-peer-venv.sh; ATELIER_TRAIN_VENV overrides where).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="1 2"
STEPS=60
BATCH=32
REPEATS=3
LONG_STEPS=300
SWD_EVERY=50
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --long-steps) LONG_STEPS=$2; shift 2 ;;
    --swd-every) SWD_EVERY=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
MODEL=models/dcgan-weights.tar
EMOJI=models/emoji
[[ -f "$MODEL" ]] || { echo "error: $MODEL is missing (run models/fetch.sh faces)" >&2; exit 1; }
[[ -f "$EMOJI/emoji.json" ]] || { echo "error: $EMOJI is missing (run models/fetch.sh train)" >&2; exit 1; }

VENV=$(scripts/train-peer-venv.sh)
PY="$VENV/bin/python"
(( BUILD )) && cargo build --release
BIN=target/release/atelier
OUT=bench-out
WORK=$OUT/train_faces
JSONL=$OUT/train_faces.jsonl
rm -rf "$WORK"
mkdir -p "$WORK"
export ATELIER_DATA="$PWD/$WORK/data"

# The 169 smileys, linked into a folder of their own.
PICS="$PWD/$WORK/smileys"
python3 - "$EMOJI" "$PICS" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for e in json.load(open(os.path.join(src, "emoji.json"))):
    if e["category"] == "Smileys & Emotion":
        os.symlink(os.path.abspath(os.path.join(src, e["image"])), os.path.join(dst, e["image"]))
PY

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
torch_version=$("$PY" -c 'import torch; print(torch.__version__)')
python3 - "$JSONL" "$cpu" "$(nproc)" "$torch_version" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$STEPS" "$BATCH" "$REPEATS" <<'PY'
import json, sys, datetime
p, cpu, nproc, torch, load, steps, batch, repeats = sys.argv[1:]
json.dump({"meta": True, "cpu": cpu, "nproc": int(nproc), "torch": torch, "loadavg_start": load,
           "steps": int(steps), "batch": int(batch), "repeats": int(repeats),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
          open(p, "w"))
open(p, "a").write("\n")
PY

tag() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(json.loads(sys.argv[1])); print(json.dumps(r))' "$1"; }

run_atelier() { # threads seed steps [swd-every]
  local t=$1 seed=$2 steps=$3 swd=${4:-}
  local name="atelier-t$t-s$seed-n$steps"
  "$BIN" train faces --images "$PICS" --model "$MODEL" --out "$WORK/$name.safetensors" \
    --steps "$steps" --batch "$BATCH" --threads "$t" --seed "$seed" \
    --run-dir "$WORK/runs/$name" --checkpoint-every 100000 --samples-every 100000 \
    ${swd:+--swd-every "$swd"} --json \
    | tag "{\"engine\": \"atelier\", \"threads_asked\": $t, \"seed\": $seed, \"model\": \"$WORK/$name.safetensors\"}" >> "$JSONL"
}
run_peer() { # threads seed steps [snapshot-every]
  local t=$1 seed=$2 steps=$3 every=${4:-$3}
  local name="pytorch-t$t-s$seed-n$steps"
  "$PY" benches/train_faces_peer.py --images "$PICS" --model "$MODEL" --steps "$steps" \
    --batch "$BATCH" --threads "$t" --seed "$seed" --snapshot-every "$every" \
    --snapshot-dir "$WORK/$name" \
    | tag "{\"engine\": \"pytorch\", \"threads_asked\": $t, \"seed\": $seed}" >> "$JSONL"
}

for t in $THREADS; do
  for rep in $(seq 1 "$REPEATS"); do
    if (( rep % 2 == 1 )); then order=(atelier peer); else order=(peer atelier); fi
    for who in "${order[@]}"; do
      echo "== $t thread(s), seed $rep: $who" >&2
      "run_$who" "$t" "$rep" "$STEPS"
    done
  done
done
max_t=$(echo "$THREADS" | tr ' ' '\n' | sort -n | tail -1)
if (( LONG_STEPS > 0 )); then
  echo "== long run: $LONG_STEPS steps on $max_t thread(s)" >&2
  run_atelier "$max_t" 1 "$LONG_STEPS" "$SWD_EVERY"
  run_peer "$max_t" 1 "$LONG_STEPS" "$SWD_EVERY"
fi

# One scorer for every generator: Atelier's finals, PyTorch's snapshots, and the face model.
models=("$MODEL")
while read -r m; do models+=("$m"); done < <(python3 - "$JSONL" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("engine") == "atelier":
        print(r["model"])
    elif r.get("engine") == "pytorch":
        for s in r["snapshots"]:
            if s["step"] > 0:
                print(s["path"])
PY
)
echo "== scoring ${#models[@]} generators (SWD to the emoji)" >&2
args=()
for m in "${models[@]}"; do args+=(--model "$m"); done
"$BIN" bench swd --images "$PICS" "${args[@]}" --halves --threads "$max_t" --json \
  | tag '{"engine": "swd"}' >> "$JSONL"

python3 - "$JSONL" "$WORK" <<'PY' | tee "$OUT/train_faces.md"
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r.get("meta"))
swd_rows = next(r for r in rows if r.get("engine") == "swd")
swd = {m["path"]: m["swd"] for m in swd_rows["models"]}
face_swd = next(v for k, v in swd.items() if k.endswith("dcgan-weights.tar"))
steps = meta["steps"]
def runs(engine, t, n=steps):
    return [r for r in rows if r.get("engine") == engine and r["threads_asked"] == t
            and r.get("steps", r.get("step")) == n]
def final_swd(r):
    if r["engine"] == "atelier":
        return swd[r["model"]]
    return swd[[s for s in r["snapshots"] if s["step"] == r["steps"]][0]["path"]]
med = statistics.median
print(f"Machine: {meta['cpu']}, {meta['nproc']} cores, load {meta['loadavg_start']} at the start; "
      f"PyTorch {meta['torch']} (CPU); {meta['date']}.")
print(f"Fine-tuning the face model on the 169 smileys, batch {meta['batch']}, {steps} steps, "
      f"DiffAugment on; {meta['repeats']} seeds per engine and thread count (fresh process each, "
      f"alternating order); medians.")
print()
print("| threads | pictures/s Atelier | pictures/s PyTorch | Atelier / PyTorch | peak RSS Atelier (MB) "
      "| peak RSS PyTorch (MB) | SWD after %d steps, Atelier | SWD, PyTorch |" % steps)
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
ts = sorted({r["threads_asked"] for r in rows if "threads_asked" in r})
for t in ts:
    a, p = runs("atelier", t), runs("pytorch", t)
    if not a or not p:
        continue
    sa, sp = med([r["samples_per_s"] for r in a]), med([r["samples_per_s"] for r in p])
    print(f"| {t} | {sa:.1f} | {sp:.1f} | {sa / sp:.2f}× | {med([r['peak_rss_mb'] for r in a]):.0f} "
          f"| {med([r['peak_rss_mb'] for r in p]):.0f} "
          f"| {med([final_swd(r) for r in a]):.3f} ({', '.join(f'{final_swd(r):.3f}' for r in a)}) "
          f"| {med([final_swd(r) for r in p]):.3f} ({', '.join(f'{final_swd(r):.3f}' for r in p)}) |")
print()
print(f"SWD of the face model itself: {face_swd:.3f}; odd against even emoji: {swd_rows.get('halves', float('nan')):.3f}.")
long_a = [r for r in rows if r.get("engine") == "atelier" and r.get("swd") and len(r["swd"]) > 2]
long_p = [r for r in rows if r.get("engine") == "pytorch" and len(r["snapshots"]) > 2]
if long_a and long_p:
    a, p = long_a[0], long_p[0]
    curve_p = {s["step"]: swd[s["path"]] for s in p["snapshots"] if s["step"] > 0}
    curve_p[0] = face_swd
    print()
    print(f"SWD curve, {a['step']} steps on {a['threads']} threads (seed 1): "
          f"Atelier {a['samples_per_s']:.1f} pictures/s, PyTorch {p['samples_per_s']:.1f}.")
    print()
    print("| step | " + " | ".join(str(x["step"]) for x in a["swd"]) + " |")
    print("|---|" + "---:|" * len(a["swd"]))
    print("| Atelier | " + " | ".join(f"{x['swd']:.3f}" for x in a["swd"]) + " |")
    print("| PyTorch | " + " | ".join(f"{curve_p.get(x['step'], float('nan')):.3f}" for x in a["swd"]) + " |")
PY

#!/usr/bin/env bash
# Replays the crafted model files of tests/hostile_files.rs against one build of atelier, to
# compare builds (e.g. before and after a fix). First keep the files:
#   ATELIER_CRAFTED_DIR=/tmp/crafted cargo test --test hostile_files
# then: scripts/replay-hostile.sh target/debug/atelier /tmp/crafted
# Each run gets at most 60 s and 8 GB of address space (an unbounded allocation aborts instead
# of taking the machine). Prints: file | exit status (or signal) | seconds, peak RSS | last line.
set -uo pipefail
bin=$1
crafted=$2
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
for f in "$crafted"/.tmp*/* "$crafted"/*/*; do
  [[ -f $f ]] || continue
  name=$(basename "$f")
  case $f in
    */template*.gguf) args=(write --mode instruct --model "$f" --prompt Hi --max-tokens 2) ;;
    *.gguf) args=(write --model "$f" --prompt Hi --max-tokens 2) ;;
    *.tar) args=(faces --seed 1 --model "$f" --out "$data/face.png") ;;
    *) continue ;;
  esac
  out=$( (ulimit -v 8000000
          ATELIER_DATA=$data /usr/bin/time -f "TIME %e %M" timeout -s KILL 60 "$bin" "${args[@]}") \
         2>&1 >/dev/null)
  rc=$?
  t=$(grep '^TIME' <<< "$out" | awk '{print $2" s, "int($3/1024)" MB"}')
  sig=$(grep -o 'Command terminated by signal [0-9]*' <<< "$out")
  msg=$(grep -v '^TIME\|^Command terminated\|^Command exited' <<< "$out" | tail -1 | cut -c1-160)
  echo "$name | exit $rc ${sig:+($sig)} | $t | $msg"
done

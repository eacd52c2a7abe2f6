#!/usr/bin/env bash
# The llama.cpp peer: llama-cpp-python with its OpenAI-compatible server, in a virtualenv
# outside the clone (so a re-run is quick), used by the Write benchmark and by the remote-engine
# tests (tests/remote.rs). Prints the venv's path on stdout.
#   ATELIER_PEER_VENV          where (default ~/.cache/atelier-bench/venv, or venv-avx2 for avx2)
#   LLAMA_CPP_PYTHON_VERSION   which release (default 0.3.36)
#   ATELIER_PEER_ISA           native (default): compiled with -march=native for this CPU;
#                              avx2: compiled for AVX2+FMA+F16C+BMI2 only, no AVX-512 of any kind
#                              (what most laptops have), to compare with Atelier's AVX2 kernel
# The first install compiles llama.cpp (a few minutes on 2 cores).
set -euo pipefail
ISA="${ATELIER_PEER_ISA:-native}"
case "$ISA" in
  native)
    DEFAULT_VENV=venv
    CMAKE="-DGGML_NATIVE=ON"
    ;;
  avx2)
    # Every x86 switch spelled out: with GGML_NATIVE=OFF the vendored ggml/CMakeLists.txt turns
    # SSE4.2/AVX/AVX2/BMI2/FMA/F16C on by default and leaves the AVX-512/AVX-VNNI/AMX ones off,
    # but naming them keeps a change of defaults upstream from slipping AVX-512 in. No
    # GGML_BACKEND_DL / GGML_CPU_ALL_VARIANTS: with those ggml would pick the best CPU variant at
    # run time, AVX-512 on this machine.
    DEFAULT_VENV=venv-avx2
    CMAKE="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF \
-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
-DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    ;;
  *) echo "peer-venv: unknown ATELIER_PEER_ISA=$ISA (native or avx2)" >&2; exit 2 ;;
esac
VENV="${ATELIER_PEER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/atelier-bench/$DEFAULT_VENV}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
have() {
  # The version, the server extra, and for avx2 the instruction sets ggml reports it was built
  # with: a venv built natively under the avx2 name would otherwise pass silently.
  "$VENV/bin/python" - "$VERSION" "$ISA" >/dev/null 2>&1 <<'PY'
import sys, llama_cpp, llama_cpp.server.app, numpy
if llama_cpp.__version__ != sys.argv[1]:
    sys.exit(1)
if sys.argv[2] == "avx2":
    # "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | ..." (features built in; absent ones are left out)
    info = llama_cpp.llama_print_system_info().decode()
    on = {k.strip() for k, _, v in (f.partition("=") for f in info.replace("CPU :", "|").split("|")) if v.strip() == "1"}
    if "AVX2" not in on or any(k.startswith(("AVX512", "AMX", "AVX_VNNI")) for k in on):
        sys.exit(1)
PY
}
if ! have; then
  echo "peer-venv: installing llama-cpp-python[server] $VERSION ($ISA) into $VENV (compiles llama.cpp; minutes)" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # --no-cache-dir: pip would otherwise reuse a wheel compiled with the other ISA's flags.
  CMAKE_ARGS="$CMAKE" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==$VERSION" >&2 \
    || { echo "peer-venv: building llama-cpp-python $VERSION ($ISA) failed" >&2; exit 1; }
  "$VENV/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==$VERSION" numpy >&2
  have || { echo "peer-venv: llama-cpp-python[server] $VERSION ($ISA) did not install as asked" >&2; exit 1; }
fi
echo "$VENV"

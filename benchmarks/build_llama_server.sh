#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (the serving peer in docs/benchmarks.md) from the llama.cpp
# sources vendored in the llama-cpp-python sdist on PyPI: no other network access is needed.
#
#   bash benchmarks/build_llama_server.sh [OUT_DIR]     # default /tmp/llama-server
#
# Leaves OUT_DIR/bin/llama-server (and prints its path). Built for this CPU (GGML_NATIVE), in
# Release mode, without libcurl (the server reads a local GGUF file). About 8 minutes on 2 cores.
set -euo pipefail
out="${1:-/tmp/llama-server}"
python="${PYTHON:-python3}"
mkdir -p "$out"
if [ -x "$out/bin/llama-server" ]; then echo "$out/bin/llama-server"; exit 0; fi
src="$out/src"
if [ ! -d "$src" ]; then
  dl="$(mktemp -d)"
  "$python" -m pip download -q --no-deps --no-binary :all: -d "$dl" llama-cpp-python
  mkdir -p "$src"
  tar -xzf "$dl"/llama_cpp_python-*.tar.gz -C "$src" --strip-components=1
  rm -rf "$dl"
fi
llama="$src/vendor/llama.cpp"
[ -f "$llama/CMakeLists.txt" ] || { echo "no llama.cpp sources in $src/vendor" >&2; exit 1; }
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$llama" -B "$out/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >"$out/cmake.log"
cmake --build "$out/build" --target llama-server -j "$(nproc)" >"$out/build.log"
mkdir -p "$out/bin"
cp "$out/build/bin/llama-server" "$out/bin/llama-server"
echo "$out/bin/llama-server"

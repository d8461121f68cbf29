#!/usr/bin/env bash
# One run on a machine with an NVIDIA GPU: build, the GPU tests (Triton kernels compiled, CUDA
# graphs on and off, greedy equal to the CPU backend), then a random-weight Llama-3.1-8B-shaped
# model in bfloat16: batch-1 decode tok/s against the bandwidth limit, and output tok/s with 64
# and 256 requests in flight (input 512, output 128). Sized to fit about ten minutes.
#
#   bash benchmarks/gpu_check.sh            # log also to $OUT/gpu_check.log when OUT is set
#
# Needs a Python whose torch is a CUDA build (PYTHON=..., default python3) with corral's
# dependencies and triton installed: the machine may have no network, so nothing is downloaded.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
log="${OUT:-/tmp}/gpu_check.log"
exec > >(tee "$log") 2>&1
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if ! "$py" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda); sys.exit(not torch.cuda.is_available())'; then
  echo "no CUDA-enabled torch in $py: set PYTHON to one (torch's CPU build cannot use the GPU)"; exit 1
fi
missing=$("$py" - <<'PY'
import importlib.util
mods = ["numpy", "gguf", "safetensors", "tokenizers", "jinja2", "fastapi", "uvicorn", "httpx", "prometheus_client",
        "huggingface_hub", "pydantic", "regex", "triton", "pytest", "transformers"]
print(" ".join(m for m in mods if importlib.util.find_spec(m) is None))
PY
)
[ -z "$missing" ] || { echo "missing Python packages: $missing"; exit 1; }

step "build (C extension, in place)"
"$py" setup.py -q build_ext --inplace || echo "C extension not built: the cpu backend falls back to torch"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET

step "GPU tests"
"$py" -m pytest -q -p no:cacheprovider -x \
  tests/kernels/test_triton_attention.py tests/engine/test_triton_generate.py tests/engine/test_gpu_engine.py tests/engine/test_sampler_paths.py \
  tests/engine/test_attention_backends.py tests/engine/test_device_dtype.py
tests_rc=$?

step "Llama-3.1-8B shape, bfloat16, triton, CUDA graphs"
timeout 300 "$py" benchmarks/gpu_bench_8b.py --concurrency 64 256

step "same, eager (--enforce-eager)"
timeout 180 "$py" benchmarks/gpu_bench_8b.py --concurrency 64 --enforce-eager

step "done (tests rc=$tests_rc)"
exit $tests_rc

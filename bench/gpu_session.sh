#!/usr/bin/env bash
# Every GPU check and benchmark in one run, for a GPU machine with a short
# lease: the GPU test suite, then dense 1024³ fp32 and 4096³ fp16 and the
# bert_base FFN (bias, gelu) against cuBLAS, each under its own time limit.
# Needs the bundle deploy/gpu_bundle.sh makes (var/gpu/).
#
#   bench/gpu_session.sh [TRIALS] [OUT_DIR]     # TRIALS per benchmark, default 1000
#
# Each step's full output goes to OUT_DIR (default var/gpu-session/); the
# last lines of each are printed.
set -uo pipefail
cd "$(dirname "$0")/.."

trials="${1:-1000}"
out="${2:-var/gpu-session}"
mkdir -p "$out"
[ -x var/gpu/run ] || { echo "gpu_session: var/gpu/run is missing (run deploy/gpu_bundle.sh)" >&2; exit 2; }

step() {  # NAME SECONDS COMMAND...
  local name="$1" limit="$2"
  shift 2
  echo "== $name (limit ${limit} s)"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 12 "$out/$name.log"
  echo "== $name: exit $rc after $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
step cuda_gpu_test 240 var/gpu/run cuda_gpu_test
step dense_1024_fp32 300 var/gpu/run cuda_bench 1024 1024 1024 "$trials"
step dense_4096_fp16 300 var/gpu/run cuda_bench 4096 4096 4096 "$trials" float16
step ffn_bias_gelu 300 var/gpu/run cuda_bench 128 3072 768 "$trials" float32 bias,gelu

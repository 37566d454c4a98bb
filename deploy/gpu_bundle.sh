#!/usr/bin/env bash
# Packs the GPU test suite and the GPU benchmark with the Debian shared
# libraries they need into var/gpu/, for a GPU machine that has the NVIDIA
# driver and a CUDA toolkit (for NVRTC) but none of Debian's packages.
#
#   deploy/gpu_bundle.sh            # here, where the project builds
#   var/gpu/run cuda_gpu_test       # there, from the same directory
#   var/gpu/run cuda_bench 1024 1024 1024 1000
#
# The C and C++ runtimes, the driver (libcuda.so.1) and NVRTC are taken from
# the GPU machine; everything else the binaries link comes along.
set -euo pipefail
cd "$(dirname "$0")/.."

bazel build -c opt //tests/worker:cuda_gpu_test //bench:cuda_bench
out=var/gpu
rm -rf "$out"
mkdir -p "$out/lib"
for binary in bazel-bin/tests/worker/cuda_gpu_test bazel-bin/bench/cuda_bench; do
  cp "$binary" "$out/"
  ldd "$binary" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so.* | libm.so.* | libgcc_s.so.* | libstdc++.so.* | ld-linux* | libdl.so.* | \
        libpthread.so.* | librt.so.* | libcuda.so.* | libnvrtc*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
done
cat > "$out/run" <<'RUN'
#!/usr/bin/env bash
# Runs a bundled binary with the bundled libraries and the local toolkit's NVRTC.
here="$(cd "$(dirname "$0")" && pwd)"
cuda="${CUDA_HOME:-/usr/local/cuda}"
export LD_LIBRARY_PATH="$here/lib:$cuda/lib64:$cuda/lib:${LD_LIBRARY_PATH:-}"
exec "$here/$1" "${@:2}"
RUN
chmod +x "$out/run"
du -sh "$out"

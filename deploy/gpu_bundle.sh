#!/usr/bin/env bash
# Packs the GPU test suite and the GPU benchmark with every shared library
# they need, the C and C++ runtimes and the dynamic loader included, into
# var/gpu/, for a GPU machine that has the NVIDIA driver and a CUDA toolkit
# (for NVRTC) but none of Debian's packages and possibly an older glibc.
#
#   deploy/gpu_bundle.sh            # here, where the project builds
#   var/gpu/run cuda_gpu_test       # there, from any directory
#   var/gpu/run cuda_bench 1024 1024 1024 1000
#
# Only the driver (libcuda.so.1) and NVRTC come from the GPU machine. The
# binaries' interpreter is set to /tmp/tlm-gpu-bundle/ld-linux-x86-64.so.2,
# where `run` puts the bundled loader, so a binary that re-executes itself
# (/proc/self/exe, the crash-isolation runner) loads the same way.
# Needs patchelf (apt-get install patchelf).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v patchelf >/dev/null || {
  echo "gpu_bundle: patchelf is missing (apt-get install patchelf)" >&2
  exit 1
}
bazel build -c opt //tests/worker:cuda_gpu_test //bench:cuda_bench
out=var/gpu
loader=/tmp/tlm-gpu-bundle/ld-linux-x86-64.so.2
rm -rf "$out"
mkdir -p "$out/lib"
for binary in bazel-bin/tests/worker/cuda_gpu_test bazel-bin/bench/cuda_bench; do
  cp "$binary" "$out/"
  chmod u+w "$out/$(basename "$binary")"
  patchelf --set-interpreter "$loader" "$out/$(basename "$binary")"
  ldd "$binary" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
    case "$(basename "$lib")" in
      libcuda.so.* | libnvrtc*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
done
cp -L /lib64/ld-linux-x86-64.so.2 "$out/lib/"
cat > "$out/run" <<RUN
#!/usr/bin/env bash
# Runs a bundled binary with the bundled loader and libraries, the local
# toolkit's NVRTC and the local driver.
set -euo pipefail
here="\$(cd "\$(dirname "\$0")" && pwd)"
mkdir -p "$(dirname "$loader")"
cp "\$here/lib/ld-linux-x86-64.so.2" "$loader"
cuda="\${CUDA_HOME:-/usr/local/cuda}"
driver="\$(/sbin/ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ { print \$NF; exit }')"
export LD_LIBRARY_PATH="\$here/lib:\$cuda/lib64:\$cuda/lib\${driver:+:\$(dirname "\$driver")}"
exec "\$here/\$1" "\${@:2}"
RUN
chmod +x "$out/run"
du -sh "$out"

// Dense on a GPU: the best of N random cuda schedules, sampled within the
// device's limits (its threads, opt-in shared memory and registers per
// block) and measured by the cuda backend, against cuBLAS in the same
// process and with the same timing (CUDA events, L2 flushed before each
// repeat, median of repeats). With an epilogue, cuBLAS is followed by a
// separate elementwise kernel for it.
//
//   cuda_bench [--build_threads=N] M N K TRIALS [float32|float16] [EPILOGUE]
//   cuda_bench 1024 1024 1024 1000
//   cuda_bench 4096 4096 4096 1000 float16
//   cuda_bench 128 3072 768 1000 float32 bias,gelu      (bert_base FFN)
//   cuda_bench --build_threads=0 1024 1024 1024 1000    (build inline)
//
// Like a worker, the backend builds the next programs (NVRTC) ahead on
// --build_threads threads (default: the hardware threads but one, at least
// 1) while the GPU times the current one: the bench keeps build_threads + 1
// programs prefetched beyond the one it measures.
//
// Prints the best latency after 1, 10, 32, 100, ... trials, measurements
// per second, the share of the wall time the GPU spent in timed kernels,
// and the ratio to cuBLAS. Needs a GPU, the CUDA toolkit's NVRTC and
// libcublas.so (loaded with dlopen from the toolkit or LD_LIBRARY_PATH).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "program/program.h"
#include "program/sampler.h"
#include "worker/cuda_backend.h"
#include "worker/cuda_driver.h"
#include "worker/nvrtc.h"
#include "worker/timing.h"

namespace tlm::worker {
namespace {

// The few cuBLAS entry points used, with the constants of its public API
// (cublas_api.h / library_types.h): row-major C = A B is column-major
// C^T = B^T A^T.
struct Cublas {
  using Handle = void*;
  int (*create)(Handle*) = nullptr;
  int (*sgemm)(Handle, int, int, int, int, int, const float*, const float*, int, const float*,
               int, const float*, float*, int) = nullptr;
  int (*gemm_ex)(Handle, int, int, int, int, int, const void*, const void*, int, int, const void*,
                 int, int, const void*, void*, int, int, int, int) = nullptr;
  static constexpr int kOpN = 0;
  static constexpr int kR16F = 2;
  static constexpr int kR32F = 0;
  static constexpr int kCompute32F = 68;
  static constexpr int kGemmDefault = -1;
  Handle handle = nullptr;

  static absl::StatusOr<Cublas> Load() {
    void* lib = nullptr;
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so",
                             "/usr/local/cuda/lib64/libcublas.so"}) {
      if ((lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL)) != nullptr) break;
    }
    if (lib == nullptr) return absl::FailedPreconditionError("libcublas.so not found");
    Cublas c;
    c.create = reinterpret_cast<decltype(c.create)>(dlsym(lib, "cublasCreate_v2"));
    c.sgemm = reinterpret_cast<decltype(c.sgemm)>(dlsym(lib, "cublasSgemm_v2"));
    c.gemm_ex = reinterpret_cast<decltype(c.gemm_ex)>(dlsym(lib, "cublasGemmEx"));
    if (!c.create || !c.sgemm || !c.gemm_ex) return absl::InternalError("cuBLAS symbols missing");
    if (c.create(&c.handle) != 0) return absl::InternalError("cublasCreate failed");
    return c;
  }
};

std::string ElementwiseEpilogue(bool half) {
  // out[i] = gelu(c[i] + bias[i % n]) (exact erf GELU) or relu, in fp32.
  const char* load = half ? "h2f" : "";
  return absl::StrCat(half ? R"(__device__ float h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ unsigned short f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
)" : "",
                      "extern \"C\" __global__ void epilogue(", half ? "unsigned short" : "float",
                      "* c, const ", half ? "unsigned short" : "float",
                      "* bias, int n, int total, int gelu) {\n"
                      "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
                      "  if (i >= total) return;\n  float v = ",
                      load, "(c[i]) + ", load, "(bias[i % n]);\n",
                      "  v = gelu ? 0.5f * v * (1.0f + erff(v * 0.70710678f)) : fmaxf(v, 0.0f);\n",
                      "  c[i] = ", half ? "f2h(v)" : "v", ";\n}\n");
}

int Main(int argc, char** argv) {
  // --build_threads=N, anywhere; the other arguments are positional.
  int build_threads =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  std::vector<char*> positional = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    constexpr absl::string_view kBuildThreads = "--build_threads=";
    if (absl::StartsWith(argv[i], kBuildThreads)) {
      if (!absl::SimpleAtoi(absl::string_view(argv[i]).substr(kBuildThreads.size()),
                            &build_threads) ||
          build_threads < 0) {
        std::fprintf(stderr, "--build_threads must be a non-negative integer\n");
        return 2;
      }
    } else {
      positional.push_back(argv[i]);
    }
  }
  argc = static_cast<int>(positional.size());
  argv = positional.data();
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: cuda_bench [--build_threads=N] M N K TRIALS [float32|float16] "
                 "[EPILOGUE]\n");
    return 2;
  }
  int64_t m = 0, n = 0, k = 0, trials = 0;
  if (!absl::SimpleAtoi(argv[1], &m) || !absl::SimpleAtoi(argv[2], &n) ||
      !absl::SimpleAtoi(argv[3], &k) || !absl::SimpleAtoi(argv[4], &trials) || trials < 1) {
    std::fprintf(stderr, "M, N, K and TRIALS must be positive integers\n");
    return 2;
  }
  const bool half = argc > 5 && std::string(argv[5]) == "float16";
  std::vector<program::Epilogue> epilogue;
  if (argc > 6) {
    for (absl::string_view e : absl::StrSplit(argv[6], ',')) {
      absl::StatusOr<program::Epilogue> parsed = program::ParseEpilogue(e);
      if (!parsed.ok()) {
        std::fprintf(stderr, "%s\n", std::string(parsed.status().message()).c_str());
        return 2;
      }
      epilogue.push_back(*parsed);
    }
  }
  absl::StatusOr<program::Workload> workload = program::MakeWorkload(
      "dense", {{"M", m}, {"N", n}, {"K", k}}, epilogue,
      half ? program::DType::kFloat16 : program::DType::kFloat32);
  if (!workload.ok()) {
    std::fprintf(stderr, "%s\n", workload.status().ToString().c_str());
    return 2;
  }
  CudaBackend::Options backend_options;
  backend_options.build_threads = build_threads;
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(backend_options);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  const CudaDeviceInfo& device = (*backend)->device();
  const double flops = 2.0 * m * n * k;
  std::printf("%s (%s, %d SMs, L2 %lld MiB), NVRTC %s; dense %lld x %lld x %lld %s%s%s\n",
              device.name.c_str(), device.Arch().c_str(), device.multiprocessors,
              static_cast<long long>(device.l2_bytes >> 20), NvrtcVersion().c_str(),
              static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k),
              half ? "float16" : "float32", epilogue.empty() ? "" : " + ", argc > 6 ? argv[6] : "");
  std::printf("sampling within the device's limits: %s\n",
              program::LimitsSummary((*backend)->limits()).c_str());
  std::printf("build threads: %d%s\n", build_threads,
              build_threads == 0 ? " (programs are built inline, between timings)" : "");

  tlm::v1::MeasureOptions options;
  options.set_repeat(5);
  options.set_min_repeat_ms(2);
  const program::Sketch sketch = *program::Sketch::Make(*workload, "cuda", (*backend)->limits());
  std::mt19937_64 rng(1);
  double best = 0, gpu_seconds = 0, build_seconds = 0;
  int64_t failed = 0;
  program::Program best_program;
  const auto start = std::chrono::steady_clock::now();
  int64_t next_report = 1;
  // Sampled and prefetched, in trial order: the program to measure next and
  // up to build_threads + 1 after it.
  std::deque<std::pair<program::Program, tlm::v1::Program>> upcoming;
  int64_t sampled = 0;
  for (int64_t t = 1; t <= trials; ++t) {
    while (sampled < trials && upcoming.size() < static_cast<size_t>(build_threads) + 2) {
      program::Program next = program::SampleProgram(sketch, rng);
      tlm::v1::Program proto = program::ProgramToProto(next);
      (*backend)->Prefetch(proto, options);
      upcoming.emplace_back(std::move(next), std::move(proto));
      ++sampled;
    }
    const program::Program p = std::move(upcoming.front().first);
    const tlm::v1::Program proto = std::move(upcoming.front().second);
    upcoming.pop_front();
    const tlm::v1::MeasureResult r = (*backend)->Measure(proto, options);
    build_seconds += r.build_seconds();
    if (r.error_kind() != tlm::v1::ERROR_KIND_NONE) {
      ++failed;
      if (failed <= 5) {
        std::printf("  trial %lld: %s: %s\n", static_cast<long long>(t),
                    tlm::v1::ErrorKind_Name(r.error_kind()).c_str(),
                    r.error_message().substr(0, 200).c_str());
      }
    } else {
      for (double s : r.repeat_seconds()) gpu_seconds += s * r.number();
      if (best == 0 || r.median_seconds() < best) {
        best = r.median_seconds();
        best_program = p;
      }
    }
    if (t == next_report || t == trials) {
      std::printf("  after %5lld trials: best %.4f ms = %.1f TFLOP/s\n", static_cast<long long>(t),
                  best * 1e3, best > 0 ? flops / best / 1e12 : 0.0);
      next_report = next_report < 10 ? 10 : next_report < 32 ? 32 : next_report * 10 / 3 + 1;
    }
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%lld trials in %.1f s: %.2f measurements/s, %lld failed; GPU busy in timed kernels "
              "%.1f%% of the wall time; building (NVRTC, loading) %.1f%%, summed over the build "
              "threads (%d); %lld of %lld builds made ahead\n",
              static_cast<long long>(trials), wall, trials / wall, static_cast<long long>(failed),
              100 * gpu_seconds / wall, 100 * build_seconds / wall, std::max(build_threads, 1),
              static_cast<long long>((*backend)->builds_ahead()), static_cast<long long>(trials));
  if (best == 0) return 1;
  std::printf("best: %s\n", program::Print(best_program).c_str());

  // cuBLAS (+ epilogue kernel), timed like the backend times programs.
  absl::StatusOr<const CudaDriver*> driver = CudaDriver::Get();
  absl::StatusOr<Cublas> cublas = Cublas::Load();
  if (!driver.ok() || !cublas.ok()) {
    std::fprintf(stderr, "cuBLAS baseline unavailable: %s\n",
                 (!driver.ok() ? driver.status() : cublas.status()).ToString().c_str());
    return 1;
  }
  const CudaDriver& d = **driver;
  const size_t element = half ? 2 : 4;
  auto alloc = [&](size_t elements) { return *DeviceMemory::Allocate(d, elements * element); };
  DeviceMemory a = alloc(m * k), b = alloc(k * n), c = alloc(m * n), bias = alloc(n);
  DeviceMemory flush = *DeviceMemory::Allocate(d, 2 * std::max<int64_t>(device.l2_bytes, 1 << 20));
  for (DeviceMemory* buf : {&a, &b, &bias}) {
    // 0x3c00 / 0x3f800000 = 1.0; values do not change the timing.
    if (half) {
      d.cuMemsetD16(buf->get(), 0x3c00, buf->bytes() / 2);
    } else {
      d.cuMemsetD32(buf->get(), 0x3f800000u, buf->bytes() / 4);
    }
  }
  std::string epilogue_cubin;
  CUfunction epilogue_fn = nullptr;
  std::optional<CudaModule> epilogue_module;
  const bool gelu = std::find(epilogue.begin(), epilogue.end(), program::Epilogue::kGelu) !=
                    epilogue.end();
  if (!epilogue.empty()) {
    epilogue_cubin =
        *CompileToCubin(ElementwiseEpilogue(half), "epilogue.cu", device.sm_major, device.sm_minor);
    epilogue_module.emplace(*CudaModule::Load(d, epilogue_cubin));
    epilogue_fn = *epilogue_module->Function("epilogue");
  }
  const float one = 1, zero = 0;
  CUdeviceptr pa = a.get(), pb = b.get(), pc = c.get(), pbias = bias.get();
  int n32 = static_cast<int>(n), total = static_cast<int>(m * n), gelu32 = gelu ? 1 : 0;
  void* epilogue_args[] = {&pc, &pbias, &n32, &total, &gelu32};
  // false when cuBLAS or the epilogue launch reports an error.
  auto baseline = [&]() -> bool {
    int status = 0;
    if (half) {
      status = cublas->gemm_ex(cublas->handle, Cublas::kOpN, Cublas::kOpN, n, m, k, &one,
                      reinterpret_cast<void*>(pb), Cublas::kR16F, n, reinterpret_cast<void*>(pa),
                      Cublas::kR16F, k, &zero, reinterpret_cast<void*>(pc), Cublas::kR16F, n,
                      Cublas::kCompute32F, Cublas::kGemmDefault);
    } else {
      status = cublas->sgemm(cublas->handle, Cublas::kOpN, Cublas::kOpN, n, m, k, &one,
                    reinterpret_cast<const float*>(pb), n, reinterpret_cast<const float*>(pa), k,
                    &zero, reinterpret_cast<float*>(pc), n);
    }
    if (status == 0 && epilogue_fn != nullptr) {
      status = d.cuLaunchKernel(epilogue_fn, (total + 255) / 256, 1, 1, 256, 1, 1, 0, nullptr,
                                epilogue_args, nullptr);
    }
    return status == 0;
  };
  absl::StatusOr<CudaEvent> e0 = CudaEvent::Create(d), e1 = CudaEvent::Create(d);
  auto time_baseline = [&]() -> double {
    std::vector<double> repeats;
    int64_t number = 1;
    for (int r = 0; r < 7; ++r) {
      d.cuMemsetD32Async(flush.get(), r, flush.bytes() / 4, nullptr);
      d.cuEventRecord(e0->get(), nullptr);
      for (int64_t i = 0; i < number; ++i) {
        if (!baseline()) return -1.0;
      }
      d.cuEventRecord(e1->get(), nullptr);
      d.cuEventSynchronize(e1->get());
      float ms = 0;
      d.cuEventElapsedTime(&ms, e0->get(), e1->get());
      if (r == 0) {  // warm-up: size `number` to about 2 ms
        number = std::max<int64_t>(1, static_cast<int64_t>(2.0 / std::max(ms, 1e-3f)));
        continue;
      }
      repeats.push_back(ms / 1e3 / number);
    }
    return Median(repeats);
  };
  // Alternate ours and cuBLAS three times; keep each side's fastest median.
  double ours = 0, theirs = 0;
  for (int round = 0; round < 3; ++round) {
    const tlm::v1::MeasureResult r =
        (*backend)->Measure(program::ProgramToProto(best_program), options);
    if (r.error_kind() == tlm::v1::ERROR_KIND_NONE && (ours == 0 || r.median_seconds() < ours)) {
      ours = r.median_seconds();
    }
    const double t = time_baseline();
    if (t < 0) {
      std::fprintf(stderr, "the cuBLAS baseline failed\n");
      return 1;
    }
    if (theirs == 0 || t < theirs) theirs = t;
  }
  std::printf("re-timed: ours %.4f ms = %.1f TFLOP/s; cuBLAS%s %.4f ms = %.1f TFLOP/s; "
              "ours / cuBLAS speed = %.2fx\n",
              ours * 1e3, flops / ours / 1e12, epilogue.empty() ? "" : " + epilogue kernel",
              theirs * 1e3, flops / theirs / 1e12, theirs / ours);
  return 0;
}

}  // namespace
}  // namespace tlm::worker

int main(int argc, char** argv) { return tlm::worker::Main(argc, argv); }

// The generated CUDA C itself, run on the host: each program's source is
// compiled by the host C++ compiler behind a small shim (blockIdx and
// threadIdx per host thread, __syncthreads a barrier, the dynamic shared
// array tlm_shared one static buffer sized for the largest kernel because
// blocks run one after another), every thread of a block is a host thread,
// and the output must match the reference. This checks the
// code generator's translation, not just that NVRTC accepts it. float16
// programs get the shim's conversions (the compiler's _Float16) in place of
// the PTX ones, and are checked the way the cuda backend checks them.
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "program/loop_nest.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "tests/worker/kernel_check.h"
#include "worker/cuda_codegen.h"
#include "worker/half.h"
#include "worker/harness.h"

namespace tlm::worker {
namespace {

constexpr char kShim[] = R"(#include <algorithm>
#include <cmath>
#include <cstring>
#include <pthread.h>
#define __global__
#define __launch_bounds__(n)
#define __restrict__ __restrict
#define TLM_HOST_HALF
#define TLM_HOST_SHARED
static inline float h2f(unsigned short h) {
  _Float16 f;
  std::memcpy(&f, &h, 2);
  return static_cast<float>(f);
}
static inline unsigned short f2h(float f) {
  const _Float16 x = static_cast<_Float16>(f);
  unsigned short h;
  std::memcpy(&h, &x, 2);
  return h;
}
struct tlm_dim3 { long x; };
static thread_local tlm_dim3 threadIdx, blockIdx;
static thread_local pthread_barrier_t* tlm_barrier;
static inline void __syncthreads() { pthread_barrier_wait(tlm_barrier); }
static inline float __int_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
using std::max;
using std::min;
extern "C" void tlm_enter(long block, long thread, pthread_barrier_t* barrier) {
  blockIdx.x = block;
  threadIdx.x = thread;
  tlm_barrier = barrier;
}
)";

std::string Compiler() {
  if (const char* cxx = std::getenv("CXX"); cxx != nullptr && *cxx != '\0') return cxx;
  for (const char* path : {"/usr/bin/c++", "/usr/bin/g++", "/usr/bin/clang++"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "c++";
}

// The shim's tlm_shared: at least one float, as many as the largest kernel
// of `source` uses.
std::string HostSharedArray(const CudaSource& source) {
  int64_t bytes = 4;
  for (const CudaKernel& k : source.kernels) bytes = std::max(bytes, k.shared_bytes);
  return absl::StrCat("alignas(16) static float tlm_shared[", (bytes + 3) / 4, "];\n");
}

// A shared object built from generated code; unloaded on destruction.
class HostModule {
 public:
  explicit HostModule(const CudaSource& source) {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                      absl::StrCat("tlm_cuda_host_", getpid(), "_", counter_++);
    std::filesystem::create_directories(dir);
    const std::string src = (dir / "kernel.cc").string();
    const std::string lib = (dir / "kernel.so").string();
    std::ofstream(src) << kShim << HostSharedArray(source) << source.code;
    const std::string command = absl::StrCat(Compiler(), " -std=c++17 -O1 -w -shared -fPIC ", src,
                                             " -o ", lib, " -lpthread 2>", dir.string(), "/log");
    if (std::system(command.c_str()) == 0) handle_ = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      std::ifstream log(dir / "log");
      error_ = absl::StrCat("compiling with `", command, "` failed: ",
                            std::string(std::istreambuf_iterator<char>(log), {}));
    }
    std::filesystem::remove_all(dir);
  }
  ~HostModule() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  HostModule(const HostModule&) = delete;
  HostModule& operator=(const HostModule&) = delete;

  const std::string& error() const { return error_; }
  void* Symbol(const std::string& name) const { return dlsym(handle_, name.c_str()); }

 private:
  static inline int counter_ = 0;
  void* handle_ = nullptr;
  std::string error_;
};

// Calls a kernel taking `n` buffer pointers (float* or unsigned short*:
// pointers are passed alike).
void Call(void* fn, void* const* b, int n) {
  using P = void*;
  switch (n) {
    case 1: return reinterpret_cast<void (*)(P)>(fn)(b[0]);
    case 2: return reinterpret_cast<void (*)(P, P)>(fn)(b[0], b[1]);
    case 3: return reinterpret_cast<void (*)(P, P, P)>(fn)(b[0], b[1], b[2]);
    case 4: return reinterpret_cast<void (*)(P, P, P, P)>(fn)(b[0], b[1], b[2], b[3]);
    case 5: return reinterpret_cast<void (*)(P, P, P, P, P)>(fn)(b[0], b[1], b[2], b[3], b[4]);
    case 6:
      return reinterpret_cast<void (*)(P, P, P, P, P, P)>(fn)(b[0], b[1], b[2], b[3], b[4], b[5]);
    default:
      FAIL("kernels with " << n << " buffers are not supported by this test");
  }
}

// Runs every kernel of `source`, each block's threads as host threads.
void RunOnHost(const HostModule& module, const CudaSource& source, void* const* buffers) {
  using Enter = void (*)(long, long, pthread_barrier_t*);
  const auto enter = reinterpret_cast<Enter>(module.Symbol("tlm_enter"));
  REQUIRE(enter != nullptr);
  for (const CudaKernel& k : source.kernels) {
    void* fn = module.Symbol(k.name);
    REQUIRE(fn != nullptr);
    for (int64_t block = 0; block < k.grid; ++block) {
      pthread_barrier_t barrier;
      pthread_barrier_init(&barrier, nullptr, static_cast<unsigned>(k.block));
      std::vector<std::thread> threads;
      for (int64_t t = 0; t < k.block; ++t) {
        threads.emplace_back([&, t] {
          enter(block, t, &barrier);
          Call(fn, buffers, source.num_buffers);
        });
      }
      for (std::thread& t : threads) t.join();
      pthread_barrier_destroy(&barrier);
    }
  }
}

TEST_CASE("generated CUDA C of every operator computes the reference result on the host") {
  std::mt19937_64 rng(23);
  int kernels = 0, synchronised = 0;
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
    for (int n = 0; n < 3; ++n) {
      const program::Program p = program::SampleProgram(sketch, rng);
      const CudaSource source = *GenerateCuda(*program::Lower(p));
      INFO(program::Print(p) << "\n" << source.code);
      const HostModule module(source);
      REQUIRE(module.error().empty());
      const double ratio = testing::WorstRatio(p, [&](float* const* buffers) {
        RunOnHost(module, source, reinterpret_cast<void* const*>(buffers));
      });
      CHECK(ratio <= 1.0);
      kernels += static_cast<int>(source.kernels.size());
      synchronised += source.code.find("__syncthreads") != std::string::npos;
    }
  }
  CHECK(kernels >= 36);
  CHECK(synchronised > 10);
}

TEST_CASE("generated CUDA C with more than 48 KiB of shared memory computes the reference") {
  // dense 256 x 256 x 256 with 64 x 64 output tiles of 256 threads and
  // reduction steps of 128: tiles of A and B of 32 KiB each, B's at an
  // offset of 8192 floats.
  program::Program p;
  p.workload = *program::MakeWorkload("dense", {{"M", 256}, {"N", 256}, {"K", 256}});
  p.target = "cuda";
  p.decisions = {1, 16, 2, 2, 1, 16, 2, 2, 16, 8, 64};
  program::TargetLimits limits;
  limits.max_shared_bytes = 227 * 1024;
  const CudaSource source = *GenerateCuda(*program::Lower(p, limits));
  INFO(source.code);
  REQUIRE(source.kernels.size() == 1);
  CHECK(source.kernels[0].shared_bytes == 64 * 1024);
  CHECK_THAT(source.code, Catch::Contains("= tlm_shared + 8192;"));
  const HostModule module(source);
  REQUIRE(module.error().empty());
  CHECK(testing::WorstRatio(p, [&](float* const* buffers) {
          RunOnHost(module, source, reinterpret_cast<void* const*>(buffers));
        }) <= 1.0);
}

TEST_CASE("shared buffers start 16-byte aligned in allocation order") {
  // Each buffer's offset is the end of the previous one rounded up to 4
  // floats; some random tiles have sizes that are not multiples of 4.
  std::mt19937_64 rng(41);
  int padded = 0;
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
    for (int n = 0; n < 20; ++n) {
      const program::Program p = program::SampleProgram(sketch, rng);
      const program::LoopNest nest = *program::Lower(p);
      const CudaSource source = *GenerateCuda(nest);
      INFO(source.code);
      int64_t end = 0;  // floats of the current kernel's buffers
      size_t kernel = 0;
      for (const program::Stmt& block : nest.body) {
        for (const program::Stmt& s : block.body) {
          if (s.kind != program::StmtKind::kAlloc ||
              nest.buffers[s.buffer].scope != program::BufferScope::kShared) {
            continue;
          }
          const int64_t offset = (end + 3) / 4 * 4;
          padded += offset != end;
          CHECK_THAT(source.code, Catch::Contains(absl::StrCat("float* s", s.buffer,
                                                               " = tlm_shared + ", offset, ";")));
          end = offset + nest.buffers[s.buffer].elements;
        }
        CHECK(source.kernels[kernel++].shared_bytes == 4 * end);
        end = 0;
      }
    }
  }
  CHECK(padded > 0);
}

TEST_CASE("the host run notices wrong generated code") {
  // The same program with its reduction cut short must fail the check, so
  // the check above can fail.
  program::Program p = *program::DefaultProgram(
      *program::MakeWorkload("dense", {{"M", 8}, {"N", 8}, {"K", 8}}), "cuda");
  CudaSource source = *GenerateCuda(*program::Lower(p));
  const std::string loop = "< 8; ++";
  const size_t at = source.code.rfind(loop);
  REQUIRE(at != std::string::npos);
  source.code.replace(at, loop.size(), "< 7; ++");
  const HostModule module(source);
  REQUIRE(module.error().empty());
  CHECK(testing::WorstRatio(p, [&](float* const* buffers) {
          RunOnHost(module, source, reinterpret_cast<void* const*>(buffers));
        }) > 1.0);
}

// Runs a float16 program on half buffers as the cuda backend does: inputs
// rounded to half, the reference recomputed from them, the output checked
// with the half slack.
absl::Status RunHalf(const program::Program& p, const CudaSource& source) {
  const HostModule module(source);
  if (!module.error().empty()) return absl::InternalError(module.error());
  WorkloadData data = *MakeWorkloadData(p.workload);
  RoundInputsToHalf(data);
  std::vector<std::vector<uint16_t>> bits;
  std::vector<void*> pointers;
  for (const std::vector<float>& t : data.tensors) {
    bits.push_back(FloatsToHalfBits(t));
    pointers.push_back(bits.back().data());
  }
  const int out = data.dag.stages.back().output;
  std::fill(bits[out].begin(), bits[out].end(), uint16_t{0x7e00});  // NaN
  RunOnHost(module, source, pointers.data());
  double max_error = 0;
  return CheckOutput(HalfBitsToFloats(bits[out]), data.reference, kHalfOutputSlack, &max_error);
}

TEST_CASE("generated float16 CUDA C of every operator passes the cuda backend's check") {
  std::mt19937_64 rng(29);
  for (program::Workload w : testing::SmallWorkloads()) {
    w.dtype = program::DType::kFloat16;
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
    for (int n = 0; n < 2; ++n) {
      const program::Program p = program::SampleProgram(sketch, rng);
      const CudaSource source = *GenerateCuda(*program::Lower(p));
      REQUIRE(source.half);
      INFO(program::Print(p) << "\n" << source.code);
      const absl::Status checked = RunHalf(p, source);
      CHECK(checked.ok());
      INFO(checked.message());
    }
  }
}

TEST_CASE("the float16 check fails a float16 kernel that skips half of its reduction") {
  program::Program p = *program::DefaultProgram(
      *program::MakeWorkload("dense", {{"M", 8}, {"N", 8}, {"K", 8}}, {},
                             program::DType::kFloat16),
      "cuda");
  CudaSource source = *GenerateCuda(*program::Lower(p));
  const std::string loop = "< 8; ++";
  const size_t at = source.code.rfind(loop);
  REQUIRE(at != std::string::npos);
  source.code.replace(at, loop.size(), "< 4; ++");
  CHECK_FALSE(RunHalf(p, source).ok());
}

}  // namespace
}  // namespace tlm::worker

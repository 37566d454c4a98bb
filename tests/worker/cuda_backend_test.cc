// The cuda backend on any machine: without a GPU (CI) it refuses to start
// with a message naming the driver or the device; with one, it describes
// the device. The driver loader names what is missing. Over a fake driver
// that runs kernels on the host (fake_cuda_driver.cc), the whole
// measurement path runs: NVRTC, module, buffers, check, event timing, and
// the loss of the context; as do the device's limits: programs lowered
// within them, dynamic shared memory granted and passed at launch.
#include "worker/cuda_backend.h"

#include <dlfcn.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "program/loop_nest.h"
#include "program/program.h"
#include "worker/cuda_codegen.h"
#include "worker/cuda_driver.h"

namespace tlm::worker {
namespace {

std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return std::string(dir != nullptr ? dir : ".") + "/tlmd/" + path;
}

constexpr char kFakeLibrary[] = "tests/worker/libfake_cuda.so";

const CudaDriver& FakeDriver() {
  static const CudaDriver* const driver = [] {
    absl::StatusOr<std::unique_ptr<CudaDriver>> loaded = CudaDriver::Load(Runfile(kFakeLibrary));
    if (!loaded.ok()) FAIL(loaded.status().ToString());
    return loaded->release();
  }();
  return *driver;
}

// The fake driver's test hooks (see fake_cuda_driver.cc).
struct FakeHooks {
  void (*set_device)(int threads, int shared, int shared_optin, int registers) = nullptr;
  void (*reset_device)() = nullptr;
  unsigned (*last_launch_shared_bytes)() = nullptr;
  int (*shared_attribute_calls)() = nullptr;
  int (*last_shared_attribute)() = nullptr;
};

const FakeHooks& Hooks() {
  static const FakeHooks hooks = [] {
    FakeDriver();  // loads the library
    void* library = dlopen(Runfile(kFakeLibrary).c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (library == nullptr) FAIL("the fake driver is not loaded");
    auto hook = [library](const char* name) {
      void* symbol = dlsym(library, name);
      if (symbol == nullptr) FAIL("the fake driver lacks " << name);
      return symbol;
    };
    FakeHooks h;
    h.set_device = reinterpret_cast<decltype(h.set_device)>(hook("tlmFakeSetDevice"));
    h.reset_device = reinterpret_cast<decltype(h.reset_device)>(hook("tlmFakeResetDevice"));
    h.last_launch_shared_bytes = reinterpret_cast<decltype(h.last_launch_shared_bytes)>(
        hook("tlmFakeLastLaunchSharedBytes"));
    h.shared_attribute_calls =
        reinterpret_cast<decltype(h.shared_attribute_calls)>(hook("tlmFakeSharedAttributeCalls"));
    h.last_shared_attribute =
        reinterpret_cast<decltype(h.last_shared_attribute)>(hook("tlmFakeLastSharedAttribute"));
    return h;
  }();
  return hooks;
}

// While in scope, the fake device reports (and enforces) other per-block
// limits.
class FakeDeviceLimits {
 public:
  FakeDeviceLimits(int threads, int shared, int shared_optin, int registers) {
    Hooks().set_device(threads, shared, shared_optin, registers);
  }
  ~FakeDeviceLimits() { Hooks().reset_device(); }
  FakeDeviceLimits(const FakeDeviceLimits&) = delete;
  FakeDeviceLimits& operator=(const FakeDeviceLimits&) = delete;
};

constexpr char kAddSource[] = R"(
extern "C" __global__ void tlm_add(const float* a, const float* b, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = a[i] + b[i];
}
)";

// tlm_add staging `a` in dynamic shared memory, as generated kernels do.
constexpr char kSharedAddSource[] = R"(
extern "C" __global__ void tlm_add(const float* a, const float* b, float* out) {
  extern __shared__ float staged[];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  staged[threadIdx.x] = a[i];
  out[i] = staged[threadIdx.x] + b[i];
}
)";

// A backend over the fake driver whose programs are one kernel `name`
// (emulated by the fake) with source `code`, launched with `block` threads
// and `shared_bytes` of dynamic shared memory.
std::unique_ptr<CudaBackend> FakeBackend(const std::string& name,
                                         const std::string& code = kAddSource, int64_t block = 128,
                                         int64_t shared_bytes = 0) {
  CudaBackend::Options options;
  options.driver_for_testing = &FakeDriver();
  options.generate_for_testing = [=](const program::Program&) -> absl::StatusOr<CudaSource> {
    CudaSource source;
    source.code = code;
    source.kernels = {CudaKernel{name, 1, block, shared_bytes}};
    source.num_buffers = 3;
    return source;
  };
  // add M=13: out of bounds.
  options.out_of_bounds_for_testing = [](const program::Program& p) {
    return p.workload.param("M") == 13;
  };
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(options);
  if (!backend.ok()) FAIL(backend.status().ToString());
  return std::move(*backend);
}

// add M x 16: 128 elements for M = 8, the fake's kernel grid x block.
tlm::v1::Program Add(int64_t m) {
  return program::ProgramToProto(
      *program::DefaultProgram(*program::MakeWorkload("add", {{"M", m}, {"N", 16}}), "cuda"));
}

std::string Describe(const tlm::v1::MeasureResult& r) {
  return tlm::v1::ErrorKind_Name(r.error_kind()) + " [" + r.error_stage() + "] " +
         r.error_message();
}

TEST_CASE("over a fake driver a correct kernel is checked and timed with events") {
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add");
  const tlm::v1::WorkerCapabilities caps = backend->Capabilities();
  CHECK(caps.device_name() == "tlmd fake GPU");
  CHECK(caps.target().kind() == "cuda");
  CHECK(caps.target().device() == "sm_90");
  CHECK(caps.gpu().arch() == "sm_90");
  CHECK(caps.gpu().l2_bytes() == 1 << 20);
  CHECK(caps.gpu().shared_bytes_per_block() == 48 * 1024);
  CHECK(caps.gpu().shared_bytes_per_block_optin() == 227 * 1024);
  CHECK(caps.gpu().registers_per_block() == 65536);
  CHECK(caps.gpu().memory_bytes() == int64_t{1} << 30);
  CHECK(caps.gpu().driver_version() == "13.0");

  tlm::v1::MeasureOptions options;
  options.set_min_repeat_ms(1);
  options.set_repeat(5);
  for (int round = 0; round < 2; ++round) {  // the second reuses the workload's buffers
    const tlm::v1::MeasureResult r = backend->Measure(Add(8), options);
    INFO(Describe(r));
    REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
    CHECK(r.max_abs_error() < 1e-6);
    CHECK(r.repeat_seconds_size() == 5);
    // 20 us per launch by the fake's events; 1 ms per repeat needs 50.
    CHECK(r.median_seconds() == Approx(20e-6));
    CHECK(r.number() >= 50);
    CHECK(r.source() == kAddSource);
    CHECK(r.build_seconds() > 0);
  }
}

TEST_CASE("over a fake driver a kernel that writes nothing is WRONG_ANSWER") {
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_noop", R"(
extern "C" __global__ void tlm_noop(float* a, float* b, float* out) {}
)");
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_WRONG_ANSWER);
  CHECK(r.error_stage() == "check");
  CHECK_THAT(r.error_message(), Catch::StartsWith("output[0] = nan: not written"));
}

TEST_CASE("over a fake driver, code NVRTC rejects is COMPILE_DEVICE with its log") {
  std::unique_ptr<CudaBackend> backend =
      FakeBackend("tlm_add", "extern \"C\" __global__ void tlm_add(float* a) { a[0] = }\n");
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_COMPILE_DEVICE);
  CHECK(r.error_stage() == "build");
  CHECK_THAT(r.error_message(), Catch::Contains("tlm_program.cu(1): error"));
  CHECK_THAT(r.source(), Catch::Contains("a[0] = }"));
}

TEST_CASE("over a fake driver, a block larger than the device allows is INSTANTIATION") {
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add", kAddSource, 2048);
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK_THAT(r.error_message(), Catch::Contains("2048 threads per block is outside [1, 1024]"));
}

TEST_CASE("over a fake driver, shared memory beyond 48 KiB is granted and passed at launch") {
  constexpr int64_t kShared = 100 * 1024;  // above the default 48 KiB, within 227 KiB opt-in
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add", kSharedAddSource, 128, kShared);
  const int calls = Hooks().shared_attribute_calls();
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  INFO(Describe(r));
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.max_abs_error() < 1e-6);
  // Once per loaded module, not per launch.
  CHECK(Hooks().shared_attribute_calls() == calls + 1);
  CHECK(Hooks().last_shared_attribute() == kShared);
  CHECK(Hooks().last_launch_shared_bytes() == kShared);
}

TEST_CASE("over a fake driver, shared memory within 48 KiB is passed at launch, not opted in") {
  constexpr int64_t kShared = 48 * 1024;
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add", kSharedAddSource, 128, kShared);
  const int calls = Hooks().shared_attribute_calls();
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  INFO(Describe(r));
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(Hooks().shared_attribute_calls() == calls);
  CHECK(Hooks().last_launch_shared_bytes() == kShared);
}

TEST_CASE("over a fake driver, shared memory beyond the opt-in limit is INSTANTIATION") {
  std::unique_ptr<CudaBackend> backend =
      FakeBackend("tlm_add", kSharedAddSource, 128, 227 * 1024 + 4);
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "build");
  CHECK_THAT(r.error_message(),
             Catch::Contains("tlm_add: 232452 bytes of shared memory per block exceed 232448 "
                             "(opt-in) on tlmd fake GPU"));
}

TEST_CASE("over a fake driver, shared memory the driver refuses to grant is INSTANTIATION") {
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add", kSharedAddSource, 128, 100 * 1024);
  // The device now grants at most 64 KiB, less than the backend read.
  const FakeDeviceLimits smaller(1024, 48 * 1024, 64 * 1024, 65536);
  const tlm::v1::MeasureResult r = backend->Measure(Add(8), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "build");
  CHECK_THAT(r.error_message(),
             Catch::StartsWith("cuda: cuFuncSetAttribute(tlm_add, max dynamic shared memory "
                               "102400 B) failed: CUDA_ERROR_INVALID_VALUE"));
}

// dense 64 x 64 x 64 on cuda: per spatial axis the factors of levels 1..4
// (vthread, thread, inner, innermost), then of k's levels 1..2, unroll 0.
tlm::v1::Program Dense64(std::vector<int64_t> i, const std::vector<int64_t>& j,
                         const std::vector<int64_t>& k) {
  program::Program p;
  p.workload = *program::MakeWorkload("dense", {{"M", 64}, {"N", 64}, {"K", 64}});
  p.target = "cuda";
  p.decisions = std::move(i);
  p.decisions.insert(p.decisions.end(), j.begin(), j.end());
  p.decisions.insert(p.decisions.end(), k.begin(), k.end());
  p.decisions.push_back(0);
  const absl::Status valid = program::ValidateProgram(p);
  if (!valid.ok()) FAIL(valid.ToString());
  return program::ProgramToProto(p);
}

// A backend over the fake driver that lowers and generates code itself.
std::unique_ptr<CudaBackend> LoweringBackend() {
  CudaBackend::Options options;
  options.driver_for_testing = &FakeDriver();
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(options);
  if (!backend.ok()) FAIL(backend.status().ToString());
  return std::move(*backend);
}

TEST_CASE("over a fake driver, programs are lowered within the device's own limits") {
  // 32 x 16 = 512 threads per block.
  const tlm::v1::Program threads = Dense64({1, 32, 1, 1}, {1, 16, 1, 1}, {1, 1});
  // 64 threads, tiles of 64 x 64 of A and of B: 32 KiB of shared memory,
  // 64 accumulators per thread.
  const tlm::v1::Program big_tiles = Dense64({1, 8, 8, 1}, {1, 8, 1, 8}, {8, 8});
  struct Case {
    const char* what;
    int threads, shared, shared_optin, registers;
    const tlm::v1::Program* program;
    const char* message;
  };
  const Case cases[] = {
      {"256 threads", 256, 48 * 1024, 48 * 1024, 65536, &threads,
       "512 threads per block exceed the limit 256"},
      {"16 KiB opt-in shared memory", 1024, 16 * 1024, 16 * 1024, 65536, &big_tiles,
       "shared memory of 32768 B exceeds the limit 16384 B"},
      {"4096 registers", 1024, 48 * 1024, 227 * 1024, 4096, &big_tiles,
       "64 accumulators per thread need about 80 registers; 64 threads of a block may use 64 "
       "each"},
  };
  for (const Case& c : cases) {
    INFO("a device with " << c.what);
    std::unique_ptr<CudaBackend> backend;
    {
      const FakeDeviceLimits smaller(c.threads, c.shared, c.shared_optin, c.registers);
      backend = LoweringBackend();
    }
    CHECK(backend->limits().max_threads_per_block == c.threads);
    CHECK(backend->limits().max_shared_bytes == c.shared_optin);
    CHECK(backend->limits().max_registers_per_block == c.registers);
    CHECK(backend->Capabilities().gpu().registers_per_block() == c.registers);
    const tlm::v1::MeasureResult r = backend->Measure(*c.program, {});
    INFO(Describe(r));
    CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
    CHECK(r.error_stage() == "build");
    CHECK_THAT(r.error_message(), Catch::Contains(c.message));
  }
  // On the full-size device both lower, compile and launch (the fake does
  // not run generated kernels, so their output stays unwritten).
  std::unique_ptr<CudaBackend> backend = LoweringBackend();
  for (const tlm::v1::Program* p : {&threads, &big_tiles}) {
    const tlm::v1::MeasureResult r = backend->Measure(*p, {});
    INFO(Describe(r));
    CHECK(r.error_kind() == tlm::v1::ERROR_KIND_WRONG_ANSWER);
  }
  CHECK(Hooks().last_launch_shared_bytes() == 32 * 1024);
}

// Options for a backend over the fake driver that builds ahead on
// `build_threads` threads. Its add programs are hand-written: tlm_add over
// M x N elements (the fake runs it), or code NVRTC rejects for M = 3; its
// other programs are lowered within `limits` and generated as the backend
// does itself (the fake does not run them: WRONG_ANSWER). `builds`, when
// given, counts the programs built.
CudaBackend::Options BuildAheadOptions(int build_threads, const program::TargetLimits& limits,
                                       std::shared_ptr<std::atomic<int>> builds = nullptr) {
  CudaBackend::Options options;
  options.driver_for_testing = &FakeDriver();
  options.build_threads = build_threads;
  options.generate_for_testing = [=](const program::Program& p) -> absl::StatusOr<CudaSource> {
    if (builds != nullptr) ++*builds;
    if (p.workload.op != "add") {
      absl::StatusOr<program::LoopNest> nest = program::Lower(p, limits);
      if (!nest.ok()) return nest.status();
      return GenerateCuda(*nest);
    }
    const int64_t m = p.workload.param("M");
    CudaSource source;
    source.code = m == 3 ? "extern \"C\" __global__ void tlm_add(float* a) { a[0] = }\n"
                         : kAddSource;
    source.kernels = {CudaKernel{"tlm_add", 1, m * p.workload.param("N"), 0}};
    source.num_buffers = 3;
    return source;
  };
  return options;
}

std::unique_ptr<CudaBackend> MakeBackend(const CudaBackend::Options& options) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(options);
  if (!backend.ok()) FAIL(backend.status().ToString());
  return std::move(*backend);
}

tlm::v1::MeasureOptions QuickOptions() {
  tlm::v1::MeasureOptions options;
  options.set_min_repeat_ms(1);
  return options;
}

// Everything of `r` but the durations of the build and of the run, which
// are only checked to be there.
std::string Outcome(const tlm::v1::MeasureResult& r) {
  std::string outcome = Describe(r);
  outcome += "\nmax_abs_error " + std::to_string(r.max_abs_error()) + ", median " +
             std::to_string(r.median_seconds()) + " s, number " + std::to_string(r.number()) +
             ", repeats";
  for (double s : r.repeat_seconds()) outcome += " " + std::to_string(s);
  outcome += "\nbuilt: " + std::string(r.build_seconds() > 0 ? "yes" : "no") +
             "\nsource:\n" + r.source();
  return outcome;
}

TEST_CASE("over a fake driver, programs built ahead measure as programs built inline") {
  // A device with 256 threads per block, so a program of 512 does not lower.
  program::TargetLimits limits;
  std::unique_ptr<CudaBackend> ahead, inline_builds;
  {
    const FakeDeviceLimits smaller(256, 48 * 1024, 48 * 1024, 65536);
    limits = DeviceLimits(*QueryDevice(FakeDriver(), 0));
    ahead = MakeBackend(BuildAheadOptions(3, limits));
    inline_builds = MakeBackend(BuildAheadOptions(0, limits));
  }
  REQUIRE(ahead->limits().max_threads_per_block == 256);
  const tlm::v1::Program programs[] = {
      Add(8),                                          // NONE
      Dense64({1, 32, 1, 1}, {1, 16, 1, 1}, {1, 1}),   // 512 threads: does not lower
      Add(3),                                          // NVRTC rejects it
      Dense64({1, 8, 1, 1}, {1, 16, 1, 1}, {4, 16}),   // compiles; not run by the fake
      Add(16),                                         // NONE, 256 threads
      Dense64({1, 8, 8, 1}, {1, 8, 1, 8}, {8, 8}),     // 32 KiB of shared memory
  };
  for (const tlm::v1::Program& p : programs) ahead->Prefetch(p, QuickOptions());
  std::vector<tlm::v1::ErrorKind> kinds;
  for (const tlm::v1::Program& p : programs) {
    INFO(p.text());
    const tlm::v1::MeasureResult r = ahead->Measure(p, QuickOptions());
    const tlm::v1::MeasureResult expected = inline_builds->Measure(p, QuickOptions());
    CHECK(Outcome(r) == Outcome(expected));
    kinds.push_back(r.error_kind());
  }
  CHECK(kinds == std::vector<tlm::v1::ErrorKind>{
                     tlm::v1::ERROR_KIND_NONE, tlm::v1::ERROR_KIND_INSTANTIATION,
                     tlm::v1::ERROR_KIND_COMPILE_DEVICE, tlm::v1::ERROR_KIND_WRONG_ANSWER,
                     tlm::v1::ERROR_KIND_NONE, tlm::v1::ERROR_KIND_WRONG_ANSWER});
  CHECK(ahead->builds_ahead() == 6);
  CHECK(inline_builds->builds_ahead() == 0);
}

TEST_CASE("over a fake driver, a program never prefetched is built inline among prefetched ones") {
  std::unique_ptr<CudaBackend> ahead = MakeBackend(BuildAheadOptions(2, {}));
  std::unique_ptr<CudaBackend> inline_builds = MakeBackend(BuildAheadOptions(0, {}));
  ahead->Prefetch(Add(8), {});
  ahead->Prefetch(Add(16), {});
  const tlm::v1::Program dense = Dense64({1, 8, 1, 1}, {1, 16, 1, 1}, {4, 16});
  tlm::v1::MeasureResult r = ahead->Measure(dense, QuickOptions());
  CHECK(Outcome(r) == Outcome(inline_builds->Measure(dense, QuickOptions())));
  CHECK(ahead->builds_ahead() == 0);
  r = ahead->Measure(Add(16), QuickOptions());
  CHECK(Outcome(r) == Outcome(inline_builds->Measure(Add(16), QuickOptions())));
  r = ahead->Measure(Add(8), QuickOptions());
  CHECK(Outcome(r) == Outcome(inline_builds->Measure(Add(8), QuickOptions())));
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(ahead->builds_ahead() == 2);
}

TEST_CASE("over a fake driver, a program prefetched twice is built once and claimed once") {
  auto builds = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<CudaBackend> backend = MakeBackend(BuildAheadOptions(2, {}, builds));
  backend->Prefetch(Add(8), {});
  backend->Prefetch(Add(8), QuickOptions());  // options do not change a build
  tlm::v1::MeasureResult r = backend->Measure(Add(8), QuickOptions());
  INFO(Describe(r));
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(*builds == 1);
  CHECK(backend->builds_ahead() == 1);
  // Claimed: measuring it again builds it again.
  r = backend->Measure(Add(8), QuickOptions());
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(*builds == 2);
  CHECK(backend->builds_ahead() == 1);
  // The same text with a hash that does not match is another program.
  tlm::v1::Program wrong_hash = Add(8);
  wrong_hash.set_hash("0000000000000000");
  backend->Prefetch(Add(8), {});
  backend->Prefetch(wrong_hash, {});
  r = backend->Measure(wrong_hash, {});
  CHECK(r.error_stage() == "parse");
  CHECK_THAT(r.error_message(), Catch::Contains("does not match the text"));
  CHECK(backend->Measure(Add(8), QuickOptions()).error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(*builds == 3);  // the wrong hash fails at parse, before generating
  CHECK(backend->builds_ahead() == 3);
}

TEST_CASE("over a fake driver, without build threads Prefetch does nothing") {
  auto builds = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<CudaBackend> backend = MakeBackend(BuildAheadOptions(0, {}, builds));
  backend->Prefetch(Add(8), {});
  CHECK(*builds == 0);
  CHECK(backend->Measure(Add(8), QuickOptions()).error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(*builds == 1);
  CHECK(backend->builds_ahead() == 0);
}

TEST_CASE("over a fake driver, builds prefetched and never measured are bounded") {
  auto builds = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<CudaBackend> backend = MakeBackend(BuildAheadOptions(1, {}, builds));
  REQUIRE(backend->MaxPrefetched() == 12);
  // 30 programs, as many as a server might send and then cancel.
  for (int m = 4; m < 34; ++m) backend->Prefetch(Add(m), {});
  // Each is measured correctly whether its build was kept or not.
  for (int m = 4; m < 34; ++m) {
    INFO("M = " << m);
    const tlm::v1::MeasureResult r = backend->Measure(Add(m), QuickOptions());
    CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  }
  CHECK(backend->builds_ahead() <= backend->MaxPrefetched());
  // Every measurement that did not take over a build built its own.
  CHECK(*builds >= 30);
}

TEST_CASE("over a fake driver, a backend with builds queued and running is destroyed cleanly") {
  auto builds = std::make_shared<std::atomic<int>>(0);
  {
    std::unique_ptr<CudaBackend> backend = MakeBackend(BuildAheadOptions(2, {}, builds));
    for (int m = 4; m < 14; ++m) backend->Prefetch(Add(m), {});
    backend->Prefetch(Dense64({1, 8, 1, 1}, {1, 16, 1, 1}, {4, 16}), {});
    // Measured, so the context is held too.
    CHECK(backend->Measure(Add(20), QuickOptions()).error_kind() == tlm::v1::ERROR_KIND_NONE);
  }
  // The pool is gone: nothing holds the options' hook, no build starts.
  CHECK(builds.use_count() == 1);
  CHECK(*builds <= 12);
}

TEST_CASE("over a fake driver, builds ahead stop when the context is lost") {
  CudaBackend::Options options = BuildAheadOptions(2, {});
  options.out_of_bounds_for_testing = [](const program::Program& p) {
    return p.workload.param("M") == 13;
  };
  std::unique_ptr<CudaBackend> backend = MakeBackend(options);
  backend->Prefetch(Add(13), {});
  backend->Prefetch(Add(8), {});
  tlm::v1::MeasureResult r = backend->Measure(Add(13), QuickOptions());
  INFO(Describe(r));
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK_THAT(r.error_message(), Catch::Contains("the CUDA context is lost"));
  // The build of Add(8) is dropped unused; nothing is built any more.
  r = backend->Measure(Add(8), QuickOptions());
  CHECK_THAT(r.error_message(), Catch::StartsWith("the CUDA context was lost after"));
  backend->Prefetch(Add(9), {});
  r = backend->Measure(Add(9), QuickOptions());
  CHECK_THAT(r.error_message(), Catch::StartsWith("the CUDA context was lost after"));
  CHECK(backend->builds_ahead() == 1);
}

TEST_CASE("DeviceLimits takes the device's limits, opt-in shared memory first") {
  CudaDeviceInfo device;
  device.max_threads_per_block = 512;
  device.shared_bytes_per_block = 48 * 1024;
  device.shared_bytes_per_block_optin = 99 * 1024;
  device.registers_per_block = 32768;
  program::TargetLimits limits = DeviceLimits(device);
  CHECK(limits.max_threads_per_block == 512);
  CHECK(limits.max_shared_bytes == 99 * 1024);
  CHECK(limits.max_registers_per_block == 32768);
  CHECK(limits.max_vthreads == program::TargetLimits{}.max_vthreads);
  // Without an opt-in value (or registers), the default shared memory (and
  // the portable register count).
  device.shared_bytes_per_block_optin = 0;
  device.registers_per_block = 0;
  limits = DeviceLimits(device);
  CHECK(limits.max_shared_bytes == 48 * 1024);
  CHECK(limits.max_registers_per_block == program::TargetLimits{}.max_registers_per_block);
}

TEST_CASE("over a fake driver, a poisoned context makes every later call RUNTIME_DEVICE") {
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add");
  CHECK(backend->Measure(Add(8), {}).error_kind() == tlm::v1::ERROR_KIND_NONE);
  tlm::v1::MeasureResult r = backend->Measure(Add(13), {});
  INFO(Describe(r));
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK(r.error_stage() == "run");
  // The fake reports the error at the next call, here the next launch.
  CHECK_THAT(r.error_message(),
             Catch::StartsWith("cuda: cuLaunchKernel(tlm_add) failed: CUDA_ERROR_ILLEGAL_ADDRESS "
                               "(an illegal memory access was encountered)"));
  CHECK_THAT(r.error_message(), Catch::Contains("the CUDA context is lost"));
  r = backend->Measure(Add(8), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK_THAT(r.error_message(),
             Catch::StartsWith("the CUDA context was lost after cuda: cuLaunchKernel(tlm_add) "
                               "failed: CUDA_ERROR_ILLEGAL_ADDRESS"));
  CHECK_THAT(r.error_message(), Catch::EndsWith("the runner must restart"));
}

TEST_CASE("over a fake driver, programs for another target are refused before the device") {
  std::unique_ptr<CudaBackend> backend = FakeBackend("tlm_add");
  const program::Program cpu =
      *program::DefaultProgram(*program::MakeWorkload("add", {{"M", 8}, {"N", 16}}), "cpu");
  const tlm::v1::MeasureResult r = backend->Measure(program::ProgramToProto(cpu), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "parse");
  CHECK_THAT(r.error_message(), Catch::Contains("targets cpu"));
}

TEST_CASE("Create refuses without a GPU, or describes the GPU it found") {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create();
  if (!backend.ok()) {
    INFO(backend.status().ToString());
    CHECK(backend.status().code() == absl::StatusCode::kFailedPrecondition);
    const std::string message(backend.status().message());
    // "the NVIDIA driver (libcuda.so.1) is not installed", "no CUDA device", ...
    const bool names_cause =
        message.find("driver") != std::string::npos || message.find("device") != std::string::npos;
    CHECK(names_cause);
    CHECK_THAT(message, Catch::StartsWith("cuda: "));
    // The failure is cached: asking again gives the same answer.
    CHECK(CudaBackend::Create().status() == backend.status());
    return;
  }
  const tlm::v1::WorkerCapabilities caps = (*backend)->Capabilities();
  CHECK((*backend)->name() == "cuda");
  CHECK(caps.backend() == "cuda");
  CHECK(caps.target().kind() == "cuda");
  CHECK_THAT(caps.target().device(), Catch::StartsWith("sm_"));
  CHECK(caps.gpu().arch() == caps.target().device());
  CHECK(!caps.device_name().empty());
  CHECK(caps.gpu().multiprocessors() > 0);
  CHECK(caps.gpu().max_threads_per_block() >= 256);
  CHECK(caps.gpu().shared_bytes_per_block() >= 16 * 1024);
  CHECK(caps.gpu().shared_bytes_per_block_optin() >= caps.gpu().shared_bytes_per_block());
  CHECK(caps.gpu().l2_bytes() > 0);
  CHECK(caps.gpu().memory_bytes() > caps.gpu().l2_bytes());
  CHECK(caps.gpu().warp_size() == 32);
  CHECK(!caps.gpu().nvrtc_version().empty());

  tlm::v1::MeasureOptions options;
  tlm::v1::Program bad;
  bad.set_text("dense M 64");
  tlm::v1::MeasureResult r = (*backend)->Measure(bad, options);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "parse");
  const program::Program cpu = *program::DefaultProgram(
      *program::MakeWorkload("dense", {{"M", 8}, {"N", 8}, {"K", 8}}), "cpu");
  r = (*backend)->Measure(program::ProgramToProto(cpu), options);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK_THAT(r.error_message(), Catch::Contains("targets cpu"));
}

TEST_CASE("a missing driver library is FAILED_PRECONDITION saying it is not installed") {
  absl::StatusOr<std::unique_ptr<CudaDriver>> driver =
      CudaDriver::Load("libtlmd-no-such-driver.so.1");
  REQUIRE(!driver.ok());
  CHECK(driver.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(driver.status().message()),
             Catch::StartsWith(
                 "cuda: the NVIDIA driver (libtlmd-no-such-driver.so.1) is not installed: "));
}

#ifdef TLMD_CUDA_STUBS
TEST_CASE("every driver symbol resolves in the toolkit's stub driver, whose cuInit then fails") {
  // The stub exports the whole driver API and fails every call: loading it
  // proves the versioned names looked up exist, without a GPU.
  absl::StatusOr<std::unique_ptr<CudaDriver>> driver = CudaDriver::Load(TLMD_CUDA_STUBS);
  REQUIRE(!driver.ok());
  const std::string message(driver.status().message());
  INFO(message);
  CHECK(driver.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(message, !Catch::Contains("lacks"));
  CHECK_THAT(message, Catch::Contains("cuInit failed"));
}
#endif

TEST_CASE("context-poisoning errors are told apart from recoverable ones") {
  for (CUresult r :
       {CUDA_ERROR_ILLEGAL_ADDRESS, CUDA_ERROR_LAUNCH_FAILED, CUDA_ERROR_ILLEGAL_INSTRUCTION,
        CUDA_ERROR_MISALIGNED_ADDRESS, CUDA_ERROR_INVALID_PC, CUDA_ERROR_HARDWARE_STACK_ERROR,
        CUDA_ERROR_LAUNCH_TIMEOUT, CUDA_ERROR_ASSERT}) {
    CHECK(IsContextPoisoning(r));
  }
  for (CUresult r : {CUDA_SUCCESS, CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_INVALID_VALUE,
                     CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, CUDA_ERROR_NO_BINARY_FOR_GPU,
                     CUDA_ERROR_NOT_FOUND, CUDA_ERROR_NO_DEVICE}) {
    CHECK(!IsContextPoisoning(r));
  }
}

}  // namespace
}  // namespace tlm::worker

// The cuda backend on a real GPU: random programs of every small workload,
// sampled within the device's limits, compile, run, match the reference and
// are timed; a dense program with more than 48 KiB of shared memory runs
// correctly where the device's opt-in limit allows it; a kernel that stores
// out of bounds poisons the CUDA context, after which the backend refuses
// to measure, and under an IsolatedBackend the next program runs in a fresh
// runner.
//
// Tagged manual and gpu: `bazel test //...` skips it. Run it where there is
// a GPU with `bazel test //tests/worker:cuda_gpu_test`, or copy the binary
// bazel-bin/tests/worker/cuda_gpu_test alone (this repository's libraries
// are linked in statically; gRPC, LLVM and libtorch are not linked at all)
// and run it. Shared libraries it needs at run time (`readelf -d` lists
// them): libnvrtc.so.13 (found through an rpath to the toolkit it was built
// with, else LD_LIBRARY_PATH); from Debian 12 packages libprotobuf.so.32,
// libspdlog.so.1.10, libfmt.so.9 and libabsl_{status,statusor,strings,
// str_format_internal,synchronization,time,throw_delegate}.so.20220623 with
// their own dependencies (copy them along and set LD_LIBRARY_PATH where
// they are not installed); libstdc++.so.6, libgcc_s.so.1, libm.so.6, libc.so.6; and the
// NVIDIA driver's libcuda.so.1, loaded with dlopen. Without a GPU it fails
// at once with one line saying so.
//
// Internal modes, run as child processes by the tests below:
//   --runner        serve ServeRunner on stdin/stdout with a CudaBackend
//                   whose dense programs with M = 13 store out of bounds
//   --context-loss  measure a good program, one that stores out of bounds
//                   and a good one again in this process; exit 0 when the
//                   results are NONE, RUNTIME_DEVICE naming the error, and
//                   RUNTIME_DEVICE saying the context was lost
#define CATCH_CONFIG_RUNNER
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "worker/cuda_backend.h"
#include "worker/cuda_driver.h"
#include "worker/isolated_backend.h"

extern char** environ;

namespace tlm::worker {
namespace {

bool StoresOutOfBounds(const program::Program& p) {
  return p.workload.op == "dense" && p.workload.param("M") == 13;
}

tlm::v1::Program Dense(int64_t m) {
  return program::ProgramToProto(*program::DefaultProgram(
      *program::MakeWorkload("dense", {{"M", m}, {"N", 16}, {"K", 16}}), "cuda"));
}

tlm::v1::MeasureOptions Quick() {
  tlm::v1::MeasureOptions options;
  options.set_min_repeat_ms(1);
  options.set_run_timeout_s(20);
  return options;
}

std::string Describe(const tlm::v1::MeasureResult& r) {
  return tlm::v1::ErrorKind_Name(r.error_kind()) + " [" + r.error_stage() + "] " +
         r.error_message();
}

int ServeFaultyRunner() {
  CudaBackend::Options options;
  options.out_of_bounds_for_testing = StoresOutOfBounds;
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(options);
  if (!backend.ok()) {
    std::fprintf(stderr, "runner: %s\n", backend.status().ToString().c_str());
    return 1;
  }
  // stdout carries the protocol; anything printed goes to stderr.
  const int protocol_out = dup(STDOUT_FILENO);
  dup2(STDERR_FILENO, STDOUT_FILENO);
  return ServeRunner(**backend, STDIN_FILENO, protocol_out).ok() ? 0 : 1;
}

int CheckContextLoss() {
  CudaBackend::Options options;
  options.out_of_bounds_for_testing = StoresOutOfBounds;
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(options);
  if (!backend.ok()) {
    std::fprintf(stderr, "context-loss: %s\n", backend.status().ToString().c_str());
    return 1;
  }
  const tlm::v1::MeasureResult good = (*backend)->Measure(Dense(8), Quick());
  const tlm::v1::MeasureResult crash = (*backend)->Measure(Dense(13), Quick());
  const tlm::v1::MeasureResult after = (*backend)->Measure(Dense(8), Quick());
  std::fprintf(stderr, "context-loss: good: %s\ncontext-loss: crash: %s\ncontext-loss: after: %s\n",
               Describe(good).c_str(), Describe(crash).c_str(), Describe(after).c_str());
  const bool ok =
      good.error_kind() == tlm::v1::ERROR_KIND_NONE &&
      crash.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE &&
      crash.error_message().find("CUDA_ERROR_") != std::string::npos &&
      crash.error_message().find("the CUDA context is lost") != std::string::npos &&
      after.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE &&
      after.error_message().find("the CUDA context was lost after") != std::string::npos;
  return ok ? 0 : 1;
}

// Runs this binary with one argument and returns its exit code (-1 when it
// did not exit normally).
int RunSelf(const char* mode) {
  char self[] = "/proc/self/exe";
  char* argv[] = {self, const_cast<char*>(mode), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, self, nullptr, nullptr, argv, environ) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A program checked against the reference and timed: 3 repeats of at
// least one call each, built from generated CUDA C.
void RequireMeasured(const tlm::v1::MeasureResult& r) {
  INFO(Describe(r));
  INFO(r.source());
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.median_seconds() > 0);
  CHECK(r.repeat_seconds_size() == 3);
  CHECK(r.number() >= 1);
  CHECK(r.build_seconds() > 0);
  CHECK_THAT(r.source(), Catch::Contains("__global__"));
}

TEST_CASE("random programs of every small workload match the reference and are timed") {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create();
  REQUIRE(backend.ok());
  INFO((*backend)->Capabilities().DebugString());
  std::mt19937_64 rng(7);
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda", (*backend)->limits());
    for (int n = 0; n < 4; ++n) {
      const program::Program p =
          n == 0 ? *program::DefaultProgram(w, "cuda") : program::SampleProgram(sketch, rng);
      INFO(program::Print(p));
      RequireMeasured((*backend)->Measure(program::ProgramToProto(p), Quick()));
    }
  }
}

TEST_CASE("programs built ahead on two threads match the reference and are timed") {
  CudaBackend::Options options;
  options.build_threads = 2;
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(options);
  REQUIRE(backend.ok());
  std::mt19937_64 rng(11);
  int64_t prefetched = 0;
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda", (*backend)->limits());
    std::vector<program::Program> programs = {*program::DefaultProgram(w, "cuda")};
    for (int n = 0; n < 3; ++n) programs.push_back(program::SampleProgram(sketch, rng));
    for (const program::Program& p : programs) {
      (*backend)->Prefetch(program::ProgramToProto(p), Quick());
      ++prefetched;
    }
    for (const program::Program& p : programs) {
      INFO(program::Print(p));
      RequireMeasured((*backend)->Measure(program::ProgramToProto(p), Quick()));
    }
  }
  CHECK((*backend)->builds_ahead() == prefetched);
}

// dense 256 x 256 x 256: 64 x 64 output tiles of 16 x 16 threads, each
// with 2 x 2 accumulators, and reduction steps of 128, so a block caches
// 64 x 128 floats of A and 128 x 64 of B: 64 KiB of shared memory.
constexpr int64_t kBigSharedBytes = 64 * 1024;

program::Program BigSharedDense() {
  program::Program p;
  p.workload = *program::MakeWorkload("dense", {{"M", 256}, {"N", 256}, {"K", 256}});
  p.target = "cuda";
  p.decisions = {1, 16, 2, 2, 1, 16, 2, 2, 16, 8, 64};
  return p;
}

TEST_CASE("a dense program with more than 48 KiB of shared memory runs where the device allows") {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create();
  REQUIRE(backend.ok());
  const CudaDeviceInfo& device = (*backend)->device();
  const program::Program p = BigSharedDense();
  INFO(program::Print(p));
  // Not within the portable 48 KiB; whether within this device's limits:
  REQUIRE_FALSE(program::ValidateProgram(p, program::TargetLimits{}).ok());
  const absl::Status fits = program::ValidateProgram(p, (*backend)->limits());
  if (!fits.ok()) {
    std::printf(
        "note: skipped: %s (%s, %lld B of opt-in shared memory per block) cannot run a "
        "block with %lld B: %s\n",
        device.name.c_str(), device.Arch().c_str(),
        static_cast<long long>(device.shared_bytes_per_block_optin),
        static_cast<long long>(kBigSharedBytes), std::string(fits.message()).c_str());
    return;
  }
  REQUIRE(kBigSharedBytes > device.shared_bytes_per_block);
  const tlm::v1::MeasureResult r = (*backend)->Measure(program::ProgramToProto(p), Quick());
  INFO(Describe(r));
  INFO(r.source());
  // NONE: the output matched the reference.
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.median_seconds() > 0);
  // The B tile starts after A's 64 x 128 floats.
  CHECK_THAT(r.source(), Catch::Contains("= tlm_shared + 8192;"));
}

TEST_CASE("a timed repeat lasts at least min_repeat_ms, so number grows for a tiny kernel") {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create();
  REQUIRE(backend.ok());
  tlm::v1::MeasureOptions options = Quick();
  options.set_min_repeat_ms(5);
  options.set_repeat(4);
  const tlm::v1::MeasureResult r = (*backend)->Measure(Dense(8), options);
  INFO(Describe(r));
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.number() > 1);
  CHECK(r.repeat_seconds_size() == 4);
  CHECK(r.median_seconds() * r.number() >= 0.5 * 5e-3);
}

TEST_CASE("an out-of-bounds store poisons the context; the backend then refuses to measure") {
  CHECK(RunSelf("--context-loss") == 0);
}

TEST_CASE(
    "under IsolatedBackend an out-of-bounds store is RUNTIME_DEVICE and the next program "
    "runs in a fresh runner") {
  absl::StatusOr<std::unique_ptr<CudaBackend>> local = CudaBackend::Create();
  REQUIRE(local.ok());
  IsolatedBackend backend(std::move(*local), {"/proc/self/exe", "--runner"});
  CHECK(backend.name() == "cuda");

  tlm::v1::MeasureResult r = backend.Measure(Dense(8), Quick());
  INFO(Describe(r));
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(backend.spawned() == 1);

  r = backend.Measure(Dense(13), Quick());
  INFO(Describe(r));
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK_THAT(r.error_message(), Catch::Contains("CUDA_ERROR_"));

  r = backend.Measure(Dense(8), Quick());
  INFO(Describe(r));
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.median_seconds() > 0);
  CHECK(backend.spawned() == 2);
}

}  // namespace
}  // namespace tlm::worker

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--runner") == 0) {
    return tlm::worker::ServeFaultyRunner();
  }
  if (argc == 2 && std::strcmp(argv[1], "--context-loss") == 0) {
    return tlm::worker::CheckContextLoss();
  }
  absl::StatusOr<const tlm::worker::CudaDriver*> driver = tlm::worker::CudaDriver::Get();
  if (!driver.ok()) {
    std::fprintf(stderr, "cuda_gpu_test: FAIL: no GPU found (%s)\n",
                 std::string(driver.status().message()).c_str());
    return 1;
  }
  return Catch::Session().run(argc, argv);
}

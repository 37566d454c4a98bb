// The cuda backend on any machine: without a GPU (CI) it refuses to start
// with a message naming the driver or the device; with one, it describes
// the device. The driver loader names what is missing. Over a fake driver
// that runs kernels on the host (fake_cuda_driver.cc), the whole
// measurement path runs: NVRTC, module, buffers, check, event timing, and
// the loss of the context.
#include "worker/cuda_backend.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "program/program.h"
#include "worker/cuda_driver.h"

namespace tlm::worker {
namespace {

std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return std::string(dir != nullptr ? dir : ".") + "/tlmd/" + path;
}

const CudaDriver& FakeDriver() {
  static const CudaDriver* const driver = [] {
    absl::StatusOr<std::unique_ptr<CudaDriver>> loaded =
        CudaDriver::Load(Runfile("tests/worker/libfake_cuda.so"));
    if (!loaded.ok()) FAIL(loaded.status().ToString());
    return loaded->release();
  }();
  return *driver;
}

constexpr char kAddSource[] = R"(
extern "C" __global__ void tlm_add(const float* a, const float* b, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = a[i] + b[i];
}
)";

// A backend over the fake driver whose programs are one kernel `name`
// (emulated by the fake) with source `code`, launched with `block` threads.
std::unique_ptr<CudaBackend> FakeBackend(const std::string& name,
                                         const std::string& code = kAddSource,
                                         int64_t block = 128) {
  CudaBackend::Options options;
  options.driver_for_testing = &FakeDriver();
  options.generate_for_testing = [=](const program::Program&) -> absl::StatusOr<CudaSource> {
    CudaSource source;
    source.code = code;
    source.kernels = {CudaKernel{name, 1, block, 0}};
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

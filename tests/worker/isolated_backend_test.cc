// Kernels that crash, hang or exit run in a runner child; the worker's
// process survives and gets a typed result.
#include "worker/isolated_backend.h"

#include <catch2/catch.hpp>
#include <cstdlib>

#include "program/program.h"
#include "worker/cpu_ref_backend.h"
#include "worker/llvm_cpu_backend.h"

namespace tlm::worker {
namespace {

std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return std::string(dir != nullptr ? dir : ".") + "/tlmd/" + path;
}

tlm::v1::Program Text(const std::string& text) {
  tlm::v1::Program p;
  p.set_text(text);
  return p;
}

TEST_CASE("crashes, hangs and exits become typed results and the runner is replaced") {
  IsolatedBackend backend(std::make_unique<CpuRefBackend>(),
                          {Runfile("tests/worker/faulty_runner")}, absl::Milliseconds(200));
  tlm::v1::MeasureOptions fast;
  fast.set_build_timeout_s(0.2);
  fast.set_run_timeout_s(0.3);

  tlm::v1::MeasureResult r = backend.Measure(Text("ok"), fast);
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.number() == 1);
  CHECK(backend.Measure(Text("ok"), fast).number() == 2);  // the same child, still alive
  CHECK(backend.spawned() == 1);

  r = backend.Measure(Text("crash"), fast);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK(r.error_stage() == "run");
  CHECK_THAT(r.error_message(), Catch::Contains("killed by signal 11"));

  r = backend.Measure(Text("ok"), fast);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.number() == 1);  // a fresh child
  CHECK(backend.spawned() == 2);

  r = backend.Measure(Text("hang"), fast);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUN_TIMEOUT);
  CHECK_THAT(r.error_message(), Catch::Contains("the runner was killed"));
  CHECK(backend.Measure(Text("ok"), fast).error_kind() == tlm::v1::ERROR_KIND_NONE);

  r = backend.Measure(Text("exit"), fast);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK_THAT(r.error_message(), Catch::Contains("exited with code 3"));
  CHECK(backend.Measure(Text("ok"), fast).number() == 1);
  CHECK(backend.spawned() == 4);
  CHECK(backend.name() == "cpu-ref");  // identity comes from the local backend
}

TEST_CASE("prefetch hints reach the runner's backend with the next measurement, in order") {
  IsolatedBackend backend(std::make_unique<CpuRefBackend>(),
                          {Runfile("tests/worker/faulty_runner")}, absl::Milliseconds(200));
  tlm::v1::MeasureOptions fast;
  fast.set_build_timeout_s(0.2);
  fast.set_run_timeout_s(0.3);
  CHECK(backend.Measure(Text("ok"), fast).source().empty());
  backend.Prefetch(Text("a"), fast);
  backend.Prefetch(Text("b"), fast);
  CHECK(backend.Measure(Text("ok"), fast).source() == "a,b");
  CHECK(backend.Measure(Text("ok"), fast).source() == "a,b");  // each hint is sent once
  // A runner that dies loses its hints; its successor starts without them.
  backend.Prefetch(Text("c"), fast);
  CHECK(backend.Measure(Text("crash"), fast).error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  backend.Prefetch(Text("d"), fast);
  const tlm::v1::MeasureResult r = backend.Measure(Text("ok"), fast);
  CHECK(r.number() == 1);
  CHECK(r.source() == "d");
}

TEST_CASE("a device error reported by the runner is passed on and the runner is replaced") {
  IsolatedBackend backend(std::make_unique<CpuRefBackend>(),
                          {Runfile("tests/worker/faulty_runner")}, absl::Milliseconds(200));
  tlm::v1::MeasureOptions fast;
  fast.set_build_timeout_s(0.2);
  fast.set_run_timeout_s(0.3);

  CHECK(backend.Measure(Text("ok"), fast).number() == 1);
  CHECK(backend.Measure(Text("ok"), fast).number() == 2);
  tlm::v1::MeasureResult r = backend.Measure(Text("device-error"), fast);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK(r.error_stage() == "run");
  CHECK(r.number() == 3);  // the runner's own result, passed on unchanged
  CHECK_THAT(r.error_message(), Catch::Contains("CUDA_ERROR_ILLEGAL_ADDRESS"));
  CHECK(backend.spawned() == 1);

  r = backend.Measure(Text("ok"), fast);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.number() == 1);  // a fresh child
  CHECK(backend.spawned() == 2);
  CHECK(backend.Measure(Text("ok"), fast).number() == 2);
  CHECK(backend.spawned() == 2);
}

tlm::v1::Program UntiledDense(int64_t m) {
  return program::ProgramToProto(*program::DefaultProgram(
      *program::MakeWorkload("dense", {{"M", m}, {"N", 16}, {"K", 16}})));
}

TEST_CASE("JIT-compiled kernels that store out of bounds or never end do not take the worker down") {
  IsolatedBackend backend(std::make_unique<LlvmCpuBackend>(),
                          {Runfile("tests/worker/faulty_runner"), "--llvm"},
                          absl::Milliseconds(500));
  tlm::v1::MeasureOptions options;
  options.set_min_repeat_ms(1);
  options.set_run_timeout_s(1);
  tlm::v1::MeasureResult r = backend.Measure(UntiledDense(8), options);
  INFO(r.error_message());
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);

  r = backend.Measure(UntiledDense(13), options);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
  CHECK_THAT(r.error_message(), Catch::Contains("killed by signal 11"));
  CHECK(backend.Measure(UntiledDense(8), options).error_kind() == tlm::v1::ERROR_KIND_NONE);

  r = backend.Measure(UntiledDense(17), options);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_RUN_TIMEOUT);
  CHECK(backend.Measure(UntiledDense(8), options).error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(backend.spawned() == 3);
}

TEST_CASE("a runner that cannot start is an UNKNOWN result, not a crash") {
  IsolatedBackend backend(std::make_unique<CpuRefBackend>(), {"/nonexistent/runner"});
  tlm::v1::MeasureResult r = backend.Measure(Text("ok"), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_UNKNOWN);
  CHECK_THAT(r.error_message(), Catch::Contains("cannot start runner /nonexistent/runner"));
}

}  // namespace
}  // namespace tlm::worker

#include "worker/llvm_cpu_backend.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "worker/llvm_codegen.h"

namespace tlm::worker {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

LlvmCpuBackend::LlvmCpuBackend(Options options)
    : options_(std::move(options)),
      pool_(options_.num_threads > 0 ? options_.num_threads : HardwareThreads()) {}

tlm::v1::WorkerCapabilities LlvmCpuBackend::Capabilities() const {
  return CpuCapabilities(name(), absl::StrCat(CpuModelName(), " / ", HostTargetDescription()),
                         pool_.num_threads());
}

tlm::v1::MeasureResult LlvmCpuBackend::Measure(const tlm::v1::Program& program,
                                               const tlm::v1::MeasureOptions& options) {
  const auto build_start = std::chrono::steady_clock::now();
  tlm::v1::MeasureResult failure;
  absl::StatusOr<program::Program> parsed = ParseProgramFor(program, "cpu", &failure);
  if (!parsed.ok()) return failure;
  absl::StatusOr<program::LoopNest> nest = program::Lower(*parsed);
  if (!nest.ok()) {
    return FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "build",
                             std::string(nest.status().message()));
  }
  if (options_.rewrite_for_testing) options_.rewrite_for_testing(*nest);
  absl::StatusOr<std::unique_ptr<CompiledKernel>> compiled = CompileLoopNest(*nest);
  const double build_seconds = Seconds(build_start);
  if (!compiled.ok()) {
    tlm::v1::MeasureResult failure = FailedMeasurement(tlm::v1::ERROR_KIND_COMPILE_HOST, "build",
                                                       std::string(compiled.status().message()));
    failure.set_build_seconds(build_seconds);
    return failure;
  }
  const KernelFn fn = (*compiled)->fn();
  ThreadPool* pool = &pool_;
  return harness_.Measure(
      *parsed, [fn, pool](float* const* buffers) { fn(buffers, pool); }, options, build_seconds,
      absl::StrCat(program::PrintLoopNest(*nest), "compiled by LLVM 15 (O3) for ",
                   HostTargetDescription(), ", ", pool_.num_threads(), " threads\n"));
}

}  // namespace tlm::worker

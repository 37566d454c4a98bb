// cpu: dense programs compiled to native code with LLVM 15. The loop nest of
// the schedule is emitted with IRBuilder (tile sizes as constants, so loops
// unroll and vectorize for the host's features), optimised with the O3
// pipeline for the host CPU and JIT-compiled with ORC. Kernels run on one
// thread; the output is checked against the same reference as cpu-ref.
#ifndef TLMD_WORKER_LLVM_CPU_BACKEND_H_
#define TLMD_WORKER_LLVM_CPU_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "program/program.h"
#include "worker/backend.h"
#include "worker/dense_harness.h"

namespace tlm::worker {

using DenseKernelFn = void (*)(const float* a, const float* b, const float* bias, float* c);

// A compiled kernel; the code lives as long as this object.
class CompiledDense {
 public:
  virtual ~CompiledDense() = default;
  virtual DenseKernelFn fn() const = 0;
};

// Compiles one dense program for the host CPU. COMPILE errors come back as
// INTERNAL with LLVM's message. Thread-safe.
absl::StatusOr<std::unique_ptr<CompiledDense>> CompileDense(const program::DenseProgram& p);

// "znver3 (+avx2,+fma,...)": the CPU LLVM compiles for.
std::string HostTargetDescription();

class LlvmCpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  tlm::v1::WorkerCapabilities Capabilities() const override;
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions& options) override;

 private:
  DenseHarness harness_;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_LLVM_CPU_BACKEND_H_

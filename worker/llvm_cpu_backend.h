// cpu: programs compiled to native code with LLVM 15 (see llvm_codegen.h),
// their parallel loops run on a pool of the host's threads. Outputs are
// checked against the reference executor before timing.
#ifndef TLMD_WORKER_LLVM_CPU_BACKEND_H_
#define TLMD_WORKER_LLVM_CPU_BACKEND_H_

#include <functional>
#include <string>

#include "program/loop_nest.h"
#include "worker/backend.h"
#include "worker/harness.h"
#include "worker/thread_pool.h"

namespace tlm::worker {

class LlvmCpuBackend final : public Backend {
 public:
  struct Options {
    // Threads for parallel loops; 0 means one per hardware thread.
    int num_threads = 0;
    // Test-only: rewrites each lowered loop nest before compilation, to
    // inject broken kernels (out-of-bounds stores, endless loops).
    std::function<void(program::LoopNest&)> rewrite_for_testing;
  };

  LlvmCpuBackend() : LlvmCpuBackend(Options{}) {}
  explicit LlvmCpuBackend(Options options);

  std::string name() const override { return "cpu"; }
  tlm::v1::WorkerCapabilities Capabilities() const override;
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions& options) override;

 private:
  Options options_;
  ThreadPool pool_;
  Harness harness_;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_LLVM_CPU_BACKEND_H_

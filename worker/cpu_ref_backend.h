// cpu-ref: the reference CPU backend. Interprets a program's loop nest
// statement by statement in fp32 (parallel and vectorized loops run as plain
// loops), checks it against the reference executor and times it on one
// thread. It validates lowering independently of any code generator.
#ifndef TLMD_WORKER_CPU_REF_BACKEND_H_
#define TLMD_WORKER_CPU_REF_BACKEND_H_

#include <string>

#include "absl/status/status.h"

#include "program/loop_nest.h"
#include "worker/backend.h"
#include "worker/harness.h"

namespace tlm::worker {

// Runs `nest` (cpu or cuda) on buffers[t] = global buffer t, the threads of
// a cuda block in lockstep. INTERNAL naming the first out-of-bounds access,
// shared-memory data race or divergent barrier; the run stops there.
absl::Status RunLoopNest(const program::LoopNest& nest, float* const* buffers);

class CpuRefBackend final : public Backend {
 public:
  struct Options {
    // Test-only: perturbs one output element so checking must fail.
    bool corrupt_output_for_testing = false;
  };

  CpuRefBackend() : CpuRefBackend(Options{}) {}
  explicit CpuRefBackend(Options options);

  std::string name() const override { return "cpu-ref"; }
  tlm::v1::WorkerCapabilities Capabilities() const override;
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions& options) override;

 private:
  Harness harness_;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_CPU_REF_BACKEND_H_

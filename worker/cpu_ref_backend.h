// cpu-ref: the reference CPU backend. Runs a dense program as a plain C++
// loop nest that follows the program's schedule exactly (tiling and loop
// order), checks it against a double-precision reference, and times it on
// one thread. It is the correctness reference for faster CPU backends.
#ifndef TLMD_WORKER_CPU_REF_BACKEND_H_
#define TLMD_WORKER_CPU_REF_BACKEND_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "program/program.h"
#include "worker/backend.h"
#include "worker/dense_harness.h"

namespace tlm::worker {

// C = epilogue(A * B) with the program's loop nest; c has M*N elements.
void RunDense(const program::DenseProgram& p, const float* a, const float* b, const float* bias,
              float* c);

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
  DenseHarness harness_;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_CPU_REF_BACKEND_H_

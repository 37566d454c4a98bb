// Checking and timing of dense kernels, shared by the CPU backends: random
// inputs and a double-precision reference per workload (kept while
// consecutive programs share it), the output check, and the timing loop.
#ifndef TLMD_WORKER_DENSE_HARNESS_H_
#define TLMD_WORKER_DENSE_HARNESS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "program/program.h"
#include "tlm/v1/fleet.pb.h"
#include "tlm/v1/program.pb.h"
#include "worker/timing.h"

namespace tlm::worker {

// Inputs of a dense workload and its reference output.
struct DenseData {
  program::DenseWorkload workload;
  std::vector<float> a;           // M x K, row-major, uniform in [-1, 1]
  std::vector<float> b;           // K x N
  std::vector<float> bias;        // N (empty without a bias epilogue)
  std::vector<double> expected;   // M x N, computed in double precision
  std::vector<double> tolerance;  // M x N, allowed absolute error per element
};

// Random inputs (fixed seed) and the reference output with its tolerance per
// element: the worst-case rounding error of K+2 fp32 terms in any order,
// gamma(K+2) * (sum_k |a*b| + |bias|), which no correct loop nest exceeds
// and a missing or repeated product almost always does.
DenseData MakeDenseData(const program::DenseWorkload& workload);

// C = epilogue(A * B) for one workload; c has M*N elements.
using DenseKernel =
    std::function<void(const float* a, const float* b, const float* bias, float* c)>;

// A result for a program that failed before it could be measured.
tlm::v1::MeasureResult FailedMeasurement(tlm::v1::ErrorKind kind, const std::string& stage,
                                         const std::string& message);

// CPU model name from /proc/cpuinfo ("unknown CPU" if unreadable).
std::string CpuModelName();

// Capabilities of a one-thread CPU backend.
tlm::v1::WorkerCapabilities CpuCapabilities(const std::string& backend,
                                            const std::string& device_name);

class DenseHarness {
 public:
  // Checks `kernel` against the reference (unless options.skip_check) and
  // times it. `build_seconds` is what the backend spent building; preparing
  // inputs for a new workload is added to it. Not thread-safe.
  tlm::v1::MeasureResult Measure(const program::DenseProgram& program, const DenseKernel& kernel,
                                 const tlm::v1::MeasureOptions& options, double build_seconds,
                                 std::string source);

  // Test-only: perturbs one output element after every call, so checking
  // must fail.
  void set_corrupt_output_for_testing(bool corrupt) { corrupt_output_ = corrupt; }

 private:
  const DenseData& DataFor(const program::DenseWorkload& workload);

  std::optional<DenseData> data_;
  std::vector<float> output_;
  CacheFlusher flusher_;
  bool corrupt_output_ = false;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_DENSE_HARNESS_H_

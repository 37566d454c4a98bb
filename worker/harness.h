// Checking and timing of CPU kernels, shared by the CPU backends: random
// inputs and the reference output per workload (kept while consecutive
// programs share the workload), the output check, and the timing loop.
#ifndef TLMD_WORKER_HARNESS_H_
#define TLMD_WORKER_HARNESS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "program/compute.h"
#include "program/program.h"
#include "program/reference.h"
#include "tlm/v1/fleet.pb.h"
#include "tlm/v1/program.pb.h"
#include "worker/timing.h"

namespace tlm::worker {

// A kernel reads and writes the workload's tensors: buffers[t] is tensor t
// of the DAG (inputs, intermediates, output), row-major fp32.
using Kernel = std::function<void(float* const* buffers)>;

// Buffers and reference of one workload.
struct WorkloadData {
  program::Workload workload;
  program::ComputeDag dag;
  std::vector<std::vector<float>> tensors;  // inputs random, others sized
  std::vector<float*> pointers;             // tensors[t].data()
  program::ReferenceOutput reference;
};

absl::StatusOr<WorkloadData> MakeWorkloadData(const program::Workload& workload);

// For devices that store float16: rounds the input tensors to the nearest
// half and recomputes the reference from them, so that the reference sees
// the inputs the device sees.
void RoundInputsToHalf(WorkloadData& data);

// CheckOutput's relative slack for float16 outputs: up to four roundings to
// half (intermediate tensors and the output) of 2^-11 each, relative to
// |expected| + 1.
inline constexpr double kHalfOutputSlack = 4.0 / 2048;

// The program a backend of `target` was sent, or the ERROR_KIND_INSTANTIATION
// result (stage "parse") saying why it cannot be measured there.
absl::StatusOr<program::Program> ParseProgramFor(const tlm::v1::Program& proto,
                                                 absl::string_view target,
                                                 tlm::v1::MeasureResult* failure);

// A result for a program that failed before it could be measured.
tlm::v1::MeasureResult FailedMeasurement(tlm::v1::ErrorKind kind, const std::string& stage,
                                         const std::string& message);

// CPU model name from /proc/cpuinfo ("unknown CPU" if unreadable).
std::string CpuModelName();

// Capabilities of a CPU backend running kernels on `num_threads` threads.
tlm::v1::WorkerCapabilities CpuCapabilities(const std::string& backend,
                                            const std::string& device_name, int num_threads);

// Checks a kernel's output against the reference: every element of
// `output` must be finite (an output that starts as NaN fails where the
// kernel did not write) and each reference element within its tolerance,
// widened by `relative_slack` * (|expected| + 1) for devices that store in
// a narrower type than the reference assumes (0 for fp32). OK, or
// INVALID_ARGUMENT naming the first bad element. `max_abs_error` receives
// the largest absolute error over the reference's elements whenever every
// element is finite, also when the check fails.
absl::Status CheckOutput(absl::Span<const float> output, const program::ReferenceOutput& reference,
                         double relative_slack, double* max_abs_error);

class Harness {
 public:
  // Checks `kernel` against the reference with CheckOutput (unless
  // options.skip_check; the output starts as NaN), then times it.
  // `build_seconds` is what the backend spent building; preparing inputs
  // for a new workload is added to it. Not thread-safe.
  tlm::v1::MeasureResult Measure(const program::Program& program, const Kernel& kernel,
                                 const tlm::v1::MeasureOptions& options, double build_seconds,
                                 std::string source);

  // Test-only: perturbs one output element after every call, so checking
  // must fail.
  void set_corrupt_output_for_testing(bool corrupt) { corrupt_output_ = corrupt; }

 private:
  absl::StatusOr<WorkloadData*> DataFor(const program::Workload& workload);

  std::optional<WorkloadData> data_;
  CacheFlusher flusher_;
  bool corrupt_output_ = false;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_HARNESS_H_

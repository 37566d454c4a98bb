// Runs a kernel on a workload's reference inputs and measures how far its
// output is from the reference executor's.
#ifndef TLMD_TESTS_WORKER_KERNEL_CHECK_H_
#define TLMD_TESTS_WORKER_KERNEL_CHECK_H_

#include <cmath>
#include <limits>

#include "program/program.h"
#include "worker/harness.h"

namespace tlm::testing {

// Largest |output - expected| / tolerance over the reference's elements
// (<= 1 means correct); infinity when an output element is not finite.
inline double WorstRatio(const program::Program& p, const worker::Kernel& kernel) {
  absl::StatusOr<worker::WorkloadData> data = worker::MakeWorkloadData(p.workload);
  if (!data.ok()) return std::numeric_limits<double>::infinity();
  std::vector<float>& out = data->tensors[data->dag.stages.back().output];
  std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
  kernel(data->pointers.data());
  for (float x : out) {
    if (!std::isfinite(x)) return std::numeric_limits<double>::infinity();
  }
  double worst = 0;
  const program::ReferenceOutput& ref = data->reference;
  for (size_t i = 0; i < ref.index.size(); ++i) {
    worst = std::max(worst, std::fabs(out[ref.index[i]] - ref.expected[i]) / ref.tolerance[i]);
  }
  return worst;
}

}  // namespace tlm::testing

#endif  // TLMD_TESTS_WORKER_KERNEL_CHECK_H_

// The reference executor: evaluates a workload's DAG in double precision,
// straight from its tensor expressions (no schedule), to check kernels.
#ifndef TLMD_PROGRAM_REFERENCE_H_
#define TLMD_PROGRAM_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "program/compute.h"

namespace tlm::program {

// Expected values of some output elements, each with the absolute error a
// correct fp32 kernel may have there.
struct ReferenceOutput {
  std::vector<int64_t> index;  // flat indices into the output, ascending
  std::vector<double> expected;
  std::vector<double> tolerance;
};

// Random inputs for every input tensor of `dag` (uniform in [-1, 1], fixed
// seed), one vector per tensor id; intermediates and the output are empty.
std::vector<std::vector<float>> MakeInputs(const ComputeDag& dag, uint64_t seed = 20240101);

// Evaluates every stage but the last in full and the last at every output
// element when that costs at most `max_evaluations` body evaluations, else
// at `sample_points` output elements drawn at random (fixed seed).
//
// The tolerance of an element is gamma(n) * (sum of |terms| of its
// reduction + |expected| + 1), gamma(n) = n*u / (1 - n*u), u = 2^-24, with
// n = the reduction lengths of all stages + 16: the worst-case rounding of
// summing in any order plus a few ulps for exp, erf and division.
ReferenceOutput EvaluateReference(const ComputeDag& dag,
                                  const std::vector<std::vector<float>>& inputs,
                                  int64_t max_evaluations = int64_t{1} << 22,
                                  int64_t sample_points = 2048);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_REFERENCE_H_

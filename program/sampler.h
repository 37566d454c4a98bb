// Uniform random sampling of valid dense schedules: the random-search
// baseline and the source of programs until a model is trained.
#ifndef TLMD_PROGRAM_SAMPLER_H_
#define TLMD_PROGRAM_SAMPLER_H_

#include <cstdint>
#include <random>
#include <vector>

#include "program/program.h"

namespace tlm::program {

// The valid schedules of one workload. Sampling is uniform over the whole
// space: each axis's (middle, inner) pair is drawn uniformly from the pairs
// whose product divides the extent, and the order from the 6 permutations.
class ScheduleSpace {
 public:
  explicit ScheduleSpace(const DenseWorkload& workload);

  // Number of distinct valid programs.
  uint64_t size() const;

  // The program with the given index in [0, size()): a fixed enumeration of
  // the space, so distinct indices give distinct programs.
  DenseProgram At(uint64_t index) const;

  // A uniformly drawn valid program. Thread-compatible.
  DenseProgram Sample(std::mt19937_64& rng) const;

 private:
  DenseWorkload workload_;
  std::vector<AxisTiling> i_;
  std::vector<AxisTiling> j_;
  std::vector<AxisTiling> k_;
};

// All (middle, inner) pairs with middle*inner dividing extent.
std::vector<AxisTiling> TilingsOf(int64_t extent);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_SAMPLER_H_

#include "program/sampler.h"

namespace tlm::program {

Program SampleProgram(const Sketch& sketch, std::mt19937_64& rng) {
  Program p;
  p.workload = sketch.workload();
  p.target = sketch.target();
  for (size_t i = 0; i < sketch.slots().size(); ++i) {
    const std::vector<int64_t> candidates = sketch.Candidates(i, p.decisions);
    std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
    p.decisions.push_back(candidates[pick(rng)]);
  }
  return p;
}

}  // namespace tlm::program

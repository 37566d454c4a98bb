#include "program/sampler.h"

#include <vector>

namespace tlm::program {

double OrderedFactorizations(int64_t n, int factors) {
  // Product over the prime powers p^e of n of C(e + factors - 1, e).
  double count = 1;
  for (int64_t p = 2; p * p <= n; ++p) {
    int e = 0;
    for (; n % p == 0; n /= p) ++e;
    for (int i = 1; i <= e; ++i) count = count * (factors - 1 + i) / i;
  }
  if (n > 1) count *= factors;  // one prime left, exponent 1
  return count;
}

Program SampleProgram(const Sketch& sketch, std::mt19937_64& rng) {
  Program p;
  p.workload = sketch.workload();
  p.target = sketch.target();
  const std::vector<Slot>& slots = sketch.slots();
  for (size_t i = 0; i < slots.size(); ++i) {
    const std::vector<int64_t> candidates = sketch.Candidates(i, p.decisions);
    std::vector<double> weights(candidates.size(), 1.0);
    const Slot& slot = slots[i];
    if (slot.kind == SlotKind::kTile) {
      const Stage& stage = sketch.dag().stages[slot.stage];
      const size_t n_spatial = stage.spatial.size();
      int64_t remaining = slot.axis < static_cast<int>(n_spatial)
                              ? stage.spatial[slot.axis].extent
                              : stage.reduce[slot.axis - n_spatial].extent;
      // Factors still to choose after this one, the derived level 0 included.
      int later = 1;
      for (size_t j = 0; j < slots.size(); ++j) {
        const bool same_axis = slots[j].kind == SlotKind::kTile &&
                               slots[j].stage == slot.stage && slots[j].axis == slot.axis;
        if (same_axis && j < i) remaining /= p.decisions[j];
        if (same_axis && j > i) ++later;
      }
      for (size_t c = 0; c < candidates.size(); ++c) {
        weights[c] = OrderedFactorizations(remaining / candidates[c], later);
      }
    }
    std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
    p.decisions.push_back(candidates[pick(rng)]);
  }
  return p;
}

}  // namespace tlm::program

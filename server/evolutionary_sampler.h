// Evolutionary search guided by a cost model trained online on the task's
// measurements (the approach of Ansor), the baseline the language model is
// measured against.
#ifndef TLMD_SERVER_EVOLUTIONARY_SAMPLER_H_
#define TLMD_SERVER_EVOLUTIONARY_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "program/program.h"
#include "server/cost_model.h"
#include "server/sampler.h"

namespace tlm::server {

// Features of a program for the cost model, one row of fixed width per
// sketch: per decision log2(value + 1), then per stage log2 of its tile
// volume (the product of the factors of levels >= 1 over all its axes).
std::vector<double> ProgramFeatures(const program::Sketch& sketch,
                                    const std::vector<int64_t>& decisions);

// A copy of `parent` with one decision changed to another allowed value and
// the later decisions kept where still allowed, redrawn otherwise: always
// valid.
program::Program Mutate(const program::Sketch& sketch, const program::Program& parent,
                        std::mt19937_64& rng);

// Until it has observed kWarmUp successful programs it samples at random;
// then each Propose refits the tree cost model on all measurements, evolves
// the fastest measured programs for a few generations by mutation, ranks the
// offspring by predicted log(seconds) and returns the best predicted, with a
// share drawn at random (exploration). Failed programs are taught to the
// model as twice as slow as the slowest success so far. When the model fails to fit
// or predict, the error is logged and that Propose samples at random.
class EvolutionarySampler : public Sampler {
 public:
  static constexpr int kWarmUp = 8;

  EvolutionarySampler(program::Sketch sketch, uint64_t seed);

  std::vector<program::Program> Propose(
      int count, const absl::flat_hash_set<std::string>& exclude) override;
  void Observe(const program::Program& program, std::optional<double> seconds) override;

 private:
  program::Sketch sketch_;
  std::mt19937_64 rng_;
  RandomSampler random_;
  TreeCostModel model_;
  // Measured programs: successes with their log(seconds), then failures.
  std::vector<std::pair<double, program::Program>> measured_;
  std::vector<program::Program> failed_;
  double worst_log_seconds_ = 0;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_EVOLUTIONARY_SAMPLER_H_

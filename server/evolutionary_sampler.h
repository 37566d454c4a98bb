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
#include "server/sampler.h"

namespace tlm::server {

// Features of a program for the cost model: per decision log2(value + 1)
// and its square, per stage log2 of the tile volume (product of the factors
// of levels >= 1) and its square, and a constant.
std::vector<double> ProgramFeatures(const program::Sketch& sketch,
                                    const std::vector<int64_t>& decisions);

// Ridge regression of log(seconds) on standardized features, refit from all
// observations on demand. Not thread-safe.
class LinearCostModel {
 public:
  explicit LinearCostModel(double ridge = 1e-2) : ridge_(ridge) {}
  void Add(std::vector<double> features, double log_seconds);
  // Refits if observations arrived since the last fit.
  void Fit();
  // Predicted log(seconds); 0 before any observation.
  double Predict(const std::vector<double>& features) const;
  size_t size() const { return targets_.size(); }

 private:
  double ridge_;
  std::vector<std::vector<double>> rows_;
  std::vector<double> targets_;
  bool dirty_ = false;
  std::vector<double> mean_, scale_, weights_;
  double bias_ = 0;
};

// A copy of `parent` with one decision changed to another allowed value and
// the later decisions kept where still allowed, redrawn otherwise: always
// valid.
program::Program Mutate(const program::Sketch& sketch, const program::Program& parent,
                        std::mt19937_64& rng);

// Until it has observed kWarmUp successful programs it samples at random;
// then each Propose evolves the fastest measured programs for a few
// generations by mutation, ranks the offspring with the cost model and
// returns the best predicted, with a share drawn at random (exploration).
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
  LinearCostModel model_;
  // Measured programs: successes with their log(seconds), then failures.
  std::vector<std::pair<double, program::Program>> measured_;
  std::vector<program::Program> failed_;
  double worst_log_seconds_ = 0;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_EVOLUTIONARY_SAMPLER_H_

#include "server/evolutionary_sampler.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace tlm::server {
namespace {

constexpr int kGenerations = 4;
constexpr int kOffspringPerGeneration = 128;
constexpr int kElite = 32;
constexpr double kRandomShare = 0.2;

double Log2p1(double v) { return std::log2(v + 1); }

}  // namespace

std::vector<double> ProgramFeatures(const program::Sketch& sketch,
                                    const std::vector<int64_t>& decisions) {
  std::vector<double> f;
  for (int64_t v : decisions) f.push_back(Log2p1(v));
  for (const program::StageSchedule& stage : sketch.Schedules(decisions)) {
    double volume = 0;
    for (const std::vector<int64_t>& levels : stage.factors) {
      for (size_t l = 1; l < levels.size(); ++l) volume += std::log2(double(levels[l]));
    }
    f.push_back(volume);
  }
  return f;
}

program::Program Mutate(const program::Sketch& sketch, const program::Program& parent,
                        std::mt19937_64& rng) {
  const size_t n = parent.decisions.size();
  program::Program child{parent.workload, parent.target, {}};
  if (n == 0) return child;
  const size_t k = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  child.decisions.assign(parent.decisions.begin(), parent.decisions.begin() + k);
  for (size_t j = k; j < n; ++j) {
    const std::vector<int64_t> allowed = sketch.Candidates(j, child.decisions);
    const bool keep = j != k && std::binary_search(allowed.begin(), allowed.end(),
                                                   parent.decisions[j]);
    int64_t v = parent.decisions[j];
    if (!keep) {
      // At the mutated slot, another value when there is one.
      std::vector<int64_t> choices = allowed;
      if (j == k && choices.size() > 1) choices.erase(std::remove(choices.begin(), choices.end(), v), choices.end());
      v = choices[std::uniform_int_distribution<size_t>(0, choices.size() - 1)(rng)];
    }
    child.decisions.push_back(v);
  }
  return child;
}

EvolutionarySampler::EvolutionarySampler(program::Sketch sketch, uint64_t seed)
    : sketch_(sketch), rng_(seed), random_(std::move(sketch), seed + 1) {}

void EvolutionarySampler::Observe(const program::Program& p, std::optional<double> seconds) {
  if (p.decisions.size() != sketch_.slots().size()) return;
  if (!seconds.has_value() || *seconds <= 0) {
    failed_.push_back(p);
    return;
  }
  const double y = std::log(*seconds);
  worst_log_seconds_ = measured_.empty() ? y : std::max(worst_log_seconds_, y);
  measured_.emplace_back(y, p);
  model_.Add(ProgramFeatures(sketch_, p.decisions), y);
}

std::vector<program::Program> EvolutionarySampler::Propose(
    int count, const absl::flat_hash_set<std::string>& exclude) {
  if (count <= 0) return {};
  if (measured_.size() < kWarmUp) return random_.Propose(count, exclude);
  // Failed programs teach the model to stay away: slower than the slowest.
  for (const program::Program& p : failed_) {
    model_.Add(ProgramFeatures(sketch_, p.decisions), worst_log_seconds_ + std::log(2.0));
  }
  failed_.clear();
  if (absl::Status fitted = model_.Fit(); !fitted.ok()) {
    spdlog::warn("evolutionary sampler: cost model did not fit, sampling at random: {}",
                 fitted.ToString());
    return random_.Propose(count, exclude);
  }

  struct Scored {
    double predicted;
    program::Program program;
  };
  std::vector<Scored> elite;
  std::sort(measured_.begin(), measured_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < measured_.size() && elite.size() < kElite; ++i) {
    elite.push_back({measured_[i].first, measured_[i].second});
  }
  absl::flat_hash_set<std::string> offspring_hashes;
  std::vector<Scored> offspring;
  for (int g = 0; g < kGenerations; ++g) {
    std::vector<Scored> born;
    std::vector<std::vector<double>> features;
    for (int i = 0; i < kOffspringPerGeneration; ++i) {
      const Scored& parent =
          elite[std::uniform_int_distribution<size_t>(0, elite.size() - 1)(rng_)];
      program::Program child = Mutate(sketch_, parent.program, rng_);
      std::string hash = program::ProgramHash(child);
      if (exclude.contains(hash) || !offspring_hashes.insert(std::move(hash)).second) continue;
      features.push_back(ProgramFeatures(sketch_, child.decisions));
      born.push_back({0, std::move(child)});
    }
    absl::StatusOr<std::vector<double>> predicted = model_.PredictMany(features);
    if (!predicted.ok()) {
      spdlog::warn("evolutionary sampler: cost model did not predict, sampling at random: {}",
                   predicted.status().ToString());
      return random_.Propose(count, exclude);
    }
    for (size_t i = 0; i < born.size(); ++i) born[i].predicted = (*predicted)[i];
    offspring.insert(offspring.end(), born.begin(), born.end());
    elite.insert(elite.end(), born.begin(), born.end());
    std::sort(elite.begin(), elite.end(),
              [](const Scored& a, const Scored& b) { return a.predicted < b.predicted; });
    if (elite.size() > kElite) elite.resize(kElite);
  }
  std::sort(offspring.begin(), offspring.end(),
            [](const Scored& a, const Scored& b) { return a.predicted < b.predicted; });

  const int exploit = count - static_cast<int>(std::ceil(count * kRandomShare));
  std::vector<program::Program> out;
  absl::flat_hash_set<std::string> taken = exclude;
  for (const Scored& s : offspring) {
    if (static_cast<int>(out.size()) >= exploit) break;
    taken.insert(program::ProgramHash(s.program));
    out.push_back(s.program);
  }
  for (program::Program& p : random_.Propose(count - static_cast<int>(out.size()), taken)) {
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace tlm::server

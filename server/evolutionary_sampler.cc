#include "server/evolutionary_sampler.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace tlm::server {
namespace {

constexpr int kGenerations = 4;
constexpr int kOffspringPerGeneration = 128;
constexpr int kElite = 32;
constexpr double kRandomShare = 0.2;

double Log2p1(double v) { return std::log2(v + 1); }

// Solves a x = b (n x n, row-major) in place by Gaussian elimination with
// partial pivoting; a is symmetric positive definite here.
std::vector<double> Solve(std::vector<double> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t pivot = c;
    for (size_t r = c + 1; r < n; ++r) {
      if (std::abs(a[r * n + c]) > std::abs(a[pivot * n + c])) pivot = r;
    }
    for (size_t k = 0; k < n; ++k) std::swap(a[c * n + k], a[pivot * n + k]);
    std::swap(b[c], b[pivot]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / a[c * n + c];
      for (size_t k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[i * n + k] * x[k];
    x[i] = s / a[i * n + i];
  }
  return x;
}

}  // namespace

std::vector<double> ProgramFeatures(const program::Sketch& sketch,
                                    const std::vector<int64_t>& decisions) {
  std::vector<double> f;
  for (int64_t v : decisions) {
    const double x = Log2p1(v);
    f.push_back(x);
    f.push_back(x * x);
  }
  for (const program::StageSchedule& stage : sketch.Schedules(decisions)) {
    double volume = 0;
    for (const std::vector<int64_t>& levels : stage.factors) {
      for (size_t l = 1; l < levels.size(); ++l) volume += std::log2(double(levels[l]));
    }
    f.push_back(volume);
    f.push_back(volume * volume);
  }
  return f;
}

void LinearCostModel::Add(std::vector<double> features, double log_seconds) {
  rows_.push_back(std::move(features));
  targets_.push_back(log_seconds);
  dirty_ = true;
}

void LinearCostModel::Fit() {
  if (!dirty_ || rows_.empty()) return;
  dirty_ = false;
  const size_t n = rows_.size(), d = rows_[0].size();
  mean_.assign(d, 0);
  scale_.assign(d, 0);
  for (const auto& r : rows_) {
    for (size_t j = 0; j < d; ++j) mean_[j] += r[j] / n;
  }
  for (const auto& r : rows_) {
    for (size_t j = 0; j < d; ++j) scale_[j] += (r[j] - mean_[j]) * (r[j] - mean_[j]) / n;
  }
  for (double& s : scale_) s = s > 1e-12 ? std::sqrt(s) : 1.0;
  bias_ = 0;
  for (double t : targets_) bias_ += t / n;
  std::vector<double> a(d * d, 0), b(d, 0);
  std::vector<double> z(d);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) z[j] = (rows_[i][j] - mean_[j]) / scale_[j];
    for (size_t j = 0; j < d; ++j) {
      b[j] += z[j] * (targets_[i] - bias_);
      for (size_t k = 0; k < d; ++k) a[j * d + k] += z[j] * z[k];
    }
  }
  for (size_t j = 0; j < d; ++j) a[j * d + j] += ridge_ * n + 1e-9;
  weights_ = Solve(std::move(a), std::move(b));
}

double LinearCostModel::Predict(const std::vector<double>& features) const {
  double y = bias_;
  for (size_t j = 0; j < weights_.size() && j < features.size(); ++j) {
    y += weights_[j] * (features[j] - mean_[j]) / scale_[j];
  }
  return y;
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
  model_.Fit();

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
    for (int i = 0; i < kOffspringPerGeneration; ++i) {
      const Scored& parent =
          elite[std::uniform_int_distribution<size_t>(0, elite.size() - 1)(rng_)];
      program::Program child = Mutate(sketch_, parent.program, rng_);
      std::string hash = program::ProgramHash(child);
      if (exclude.contains(hash) || !offspring_hashes.insert(std::move(hash)).second) continue;
      const double predicted = model_.Predict(ProgramFeatures(sketch_, child.decisions));
      born.push_back({predicted, child});
    }
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

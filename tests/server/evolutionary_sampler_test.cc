#include "server/evolutionary_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "catch2/catch.hpp"
#include "program/program.h"
#include "program/sampler.h"
#include "server/cost_model.h"
#include "tests/program/small_workloads.h"

namespace tlm::server {
namespace {

TEST_CASE("mutation keeps every program valid and changes it") {
  std::mt19937_64 rng(4);
  for (const program::Workload& w : testing::SmallWorkloads()) {
    for (const std::string& target : program::TargetKinds()) {
      const program::Sketch sketch = *program::Sketch::Make(w, target);
      for (int i = 0; i < 200; ++i) {
        const program::Program parent = program::SampleProgram(sketch, rng);
        const program::Program child = Mutate(sketch, parent, rng);
        INFO(program::Print(parent) << " -> " << program::Print(child));
        REQUIRE(program::ValidateProgram(child).ok());
      }
    }
  }
  // A program with freedom in every tile slot always changes.
  const program::Sketch dense = *program::Sketch::Make(program::DenseWorkload(64, 64, 64), "cpu");
  for (int i = 0; i < 100; ++i) {
    const program::Program parent = program::SampleProgram(dense, rng);
    REQUIRE(Mutate(dense, parent, rng).decisions != parent.decisions);
  }
}

// Share of the pairs of `points` whose truths differ by more than
// `min_gap` that the model orders like the truth.
double PairwiseOrderingAccuracy(const TreeCostModel& model,
                                const std::vector<std::vector<double>>& points,
                                const std::vector<double>& truth, double min_gap) {
  const absl::StatusOr<std::vector<double>> predicted = model.PredictMany(points);
  REQUIRE(predicted.ok());
  int pairs = 0, agree = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    for (size_t j = i + 1; j < points.size(); ++j) {
      if (std::abs(truth[i] - truth[j]) <= min_gap) continue;
      ++pairs;
      if (((*predicted)[i] < (*predicted)[j]) == (truth[i] < truth[j])) ++agree;
    }
  }
  REQUIRE(pairs > 0);
  return static_cast<double>(agree) / pairs;
}

// log(seconds) = |x0 - 3| + (x1 > 2 ? 1 : 0); x2 is noise.
double NonlinearTruth(const std::vector<double>& x) {
  return std::abs(x[0] - 3) + (x[1] > 2 ? 1.0 : 0.0);
}

// The truth observed on a grid over x0 in [0, 7], x1 in [0, 4], with a
// random distractor x2.
TreeCostModel FitOnGrid(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> noise(0, 10);
  TreeCostModel model;
  for (double x0 = 0; x0 <= 7; x0 += 0.25) {
    for (double x1 = 0; x1 <= 4; x1 += 0.5) {
      const std::vector<double> x = {x0, x1, noise(rng)};
      model.Add(x, NonlinearTruth(x));
    }
  }
  REQUIRE(model.Fit().ok());
  return model;
}

std::vector<std::vector<double>> RandomPoints(std::mt19937_64& rng, int n) {
  std::uniform_real_distribution<double> x0(0, 7), x1(0, 4), x2(0, 10);
  std::vector<std::vector<double>> points;
  for (int i = 0; i < n; ++i) points.push_back({x0(rng), x1(rng), x2(rng)});
  return points;
}

TEST_CASE("the tree cost model ranks held-out points of a nonlinear function") {
  std::mt19937_64 rng(8);
  const TreeCostModel model = FitOnGrid(rng);
  REQUIRE(model.size() == 29 * 9);
  const std::vector<std::vector<double>> held_out = RandomPoints(rng, 200);
  std::vector<double> truth;
  for (const auto& x : held_out) truth.push_back(NonlinearTruth(x));
  const double accuracy = PairwiseOrderingAccuracy(model, held_out, truth, 0.25);
  INFO("pairwise ordering accuracy " << accuracy);
  REQUIRE(accuracy > 0.9);
  // Predictions are on the scale of the labels (between grid lines the
  // step of x1 is ambiguous, hence the mean).
  double error = 0;
  for (const auto& x : held_out) {
    const absl::StatusOr<double> y = model.Predict(x);
    REQUIRE(y.ok());
    error += std::abs(*y - NonlinearTruth(x)) / held_out.size();
  }
  INFO("mean absolute error " << error);
  REQUIRE(error < 0.2);
}

TEST_CASE("the tree cost model ranks programs by a nonlinear function of their features") {
  const program::Sketch sketch = *program::Sketch::Make(program::DenseWorkload(64, 64, 64), "cpu");
  std::mt19937_64 rng(8);
  // Each decision has a best value; its distance from it in log2 costs.
  auto truth = [](const std::vector<int64_t>& decisions) {
    double y = 0;
    for (size_t j = 0; j < decisions.size(); ++j) {
      y += std::abs(std::log2(decisions[j] + 1.0) - (j % 2 == 0 ? 1.0 : 2.5));
    }
    return y;
  };
  TreeCostModel model;
  for (int i = 0; i < 400; ++i) {
    const program::Program p = program::SampleProgram(sketch, rng);
    model.Add(ProgramFeatures(sketch, p.decisions), truth(p.decisions));
  }
  REQUIRE(model.Fit().ok());
  std::vector<std::vector<double>> held_out;
  std::vector<double> truths;
  for (int i = 0; i < 100; ++i) {
    const program::Program p = program::SampleProgram(sketch, rng);
    held_out.push_back(ProgramFeatures(sketch, p.decisions));
    truths.push_back(truth(p.decisions));
  }
  const double accuracy = PairwiseOrderingAccuracy(model, held_out, truths, 1.0);
  INFO("pairwise ordering accuracy " << accuracy);
  REQUIRE(accuracy > 0.9);
}

TEST_CASE("program features have one width per sketch") {
  std::mt19937_64 rng(3);
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
    const size_t width =
        ProgramFeatures(sketch, program::SampleProgram(sketch, rng).decisions).size();
    REQUIRE(width > sketch.slots().size());
    for (int i = 0; i < 20; ++i) {
      REQUIRE(ProgramFeatures(sketch, program::SampleProgram(sketch, rng).decisions).size() ==
              width);
    }
  }
}

TEST_CASE("a tree cost model predicts 0 before it is fit, then the mean of few observations") {
  TreeCostModel model;
  REQUIRE(model.size() == 0);
  REQUIRE(*model.Predict({1, 2, 3}) == 0);
  REQUIRE(*model.PredictMany({{1, 2, 3}, {4, 5, 6}}) == std::vector<double>{0, 0});
  REQUIRE(model.Fit().ok());
  REQUIRE(model.fits() == 0);
  REQUIRE(*model.Predict({1, 2, 3}) == 0);

  model.Add({1, 2, 3}, -5);
  REQUIRE(model.size() == 1);
  REQUIRE(*model.Predict({1, 2, 3}) == 0);  // not fit yet
  REQUIRE(model.Fit().ok());
  REQUIRE(*model.Predict({1, 2, 3}) == -5);
  REQUIRE(*model.Predict({7, 8, 9}) == -5);

  model.Add({4, 5, 6}, -3);
  REQUIRE(model.Fit().ok());
  REQUIRE(*model.Predict({1, 2, 3}) < *model.Predict({4, 5, 6}));
}

TEST_CASE("fitting a tree cost model without new observations does nothing") {
  std::mt19937_64 rng(5);
  TreeCostModel model = FitOnGrid(rng);
  REQUIRE(model.fits() == 1);
  const std::vector<std::vector<double>> points = RandomPoints(rng, 20);
  const std::vector<double> before = *model.PredictMany(points);
  REQUIRE(model.Fit().ok());
  REQUIRE(model.fits() == 1);
  REQUIRE(*model.PredictMany(points) == before);
  // A new observation far off the others is learnt at the next fit.
  model.Add({3, 0, 5}, 20);
  REQUIRE(*model.Predict({3, 0, 5}) < 1);
  REQUIRE(model.Fit().ok());
  REQUIRE(model.fits() == 2);
  REQUIRE(*model.Predict({3, 0, 5}) > 5);
}

TEST_CASE("a batch prediction equals the predictions row by row") {
  std::mt19937_64 rng(6);
  const TreeCostModel model = FitOnGrid(rng);
  const std::vector<std::vector<double>> points = RandomPoints(rng, 64);
  const absl::StatusOr<std::vector<double>> batch = model.PredictMany(points);
  REQUIRE(batch.ok());
  REQUIRE(batch->size() == points.size());
  for (size_t i = 0; i < points.size(); ++i) REQUIRE((*batch)[i] == *model.Predict(points[i]));
  REQUIRE(model.PredictMany({})->empty());
}

TEST_CASE("tree cost models fit on the same observations predict the same") {
  std::mt19937_64 rng_a(7), rng_b(7);
  const TreeCostModel a = FitOnGrid(rng_a);
  const TreeCostModel b = FitOnGrid(rng_b);
  const std::vector<std::vector<double>> points = RandomPoints(rng_a, 32);
  REQUIRE(*a.PredictMany(points) == *b.PredictMany(points));
}

TEST_CASE("a tree cost model rejects rows of another width and labels that are not finite") {
  std::mt19937_64 rng(9);
  TreeCostModel model = FitOnGrid(rng);
  REQUIRE(model.Predict({1, 2}).status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(model.PredictMany({{1, 2, 3}, {1, 2, 3, 4}}).status().code() ==
          absl::StatusCode::kInvalidArgument);
  const double before = *model.Predict({1, 2, 3});

  TreeCostModel copy = std::move(model);
  copy.Add({1, 2}, 0);
  REQUIRE(copy.Fit().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(copy.fits() == 1);
  REQUIRE(*copy.Predict({1, 2, 3}) == before);  // the previous model is kept

  TreeCostModel infinite;
  infinite.Add({1}, 0);
  infinite.Add({2}, std::numeric_limits<double>::infinity());
  REQUIRE(infinite.Fit().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(*infinite.Predict({1}) == 0);
}

// A synthetic task: every decision has a best value; time grows with the
// squared distance from it in log2. Returns the best and the mean time of
// the last rounds a sampler finds in `rounds` rounds of 16 proposals.
std::pair<double, double> Search(Sampler& sampler, const program::Sketch& sketch, int rounds) {
  auto seconds = [&](const program::Program& p) {
    double cost = 0;
    for (size_t j = 0; j < p.decisions.size(); ++j) {
      const double d = std::log2(p.decisions[j] + 1.0) - (j % 2 == 0 ? 1.0 : 2.5);
      cost += d * d;
    }
    return 1e-3 * std::exp(0.3 * cost);
  };
  absl::flat_hash_set<std::string> seen;
  double best = 1e9, late_sum = 0;
  int late = 0;
  for (int r = 0; r < rounds; ++r) {
    for (const program::Program& p : sampler.Propose(16, seen)) {
      seen.insert(program::ProgramHash(p));
      const double s = seconds(p);
      sampler.Observe(p, s);
      best = std::min(best, s);
      if (r >= rounds - 4) {
        late_sum += s;
        ++late;
      }
    }
  }
  return {best, late_sum / late};
}

TEST_CASE("guided by its cost model, evolution beats random search on a learnable task") {
  const program::Sketch sketch =
      *program::Sketch::Make(program::DenseWorkload(256, 256, 256), "cpu");
  EvolutionarySampler evolutionary(sketch, 1);
  RandomSampler random(sketch, 1);
  const auto [evo_best, evo_late] = Search(evolutionary, sketch, 16);
  const auto [random_best, random_late] = Search(random, sketch, 16);
  INFO("best: evolutionary " << evo_best << " s, random " << random_best << " s; mean of the last "
                             "rounds: evolutionary " << evo_late << " s, random " << random_late);
  REQUIRE(evo_best < random_best);
  REQUIRE(evo_late < random_late / 2);
}

TEST_CASE("before it has observed enough, evolution samples at random, without repeats") {
  const program::Sketch sketch = *program::Sketch::Make(program::DenseWorkload(8, 8, 8), "cpu");
  EvolutionarySampler sampler(sketch, 5);
  absl::flat_hash_set<std::string> seen;
  for (int round = 0; round < 6; ++round) {
    for (const program::Program& p : sampler.Propose(8, seen)) {
      REQUIRE(program::ValidateProgram(p).ok());
      REQUIRE(seen.insert(program::ProgramHash(p)).second);
      sampler.Observe(p, round == 2 ? std::nullopt : std::optional<double>(1e-3 * seen.size()));
    }
  }
  REQUIRE(seen.size() == 48);
}

}  // namespace
}  // namespace tlm::server

namespace tlm::server {
namespace {

TEST_CASE("the default sampler proposes the untuned schedule once") {
  const program::Workload w = program::DenseWorkload(16, 16, 16);
  std::unique_ptr<Sampler> sampler = *SamplerRegistry().Make("default", w, "cpu", 1);
  std::vector<program::Program> first = sampler->Propose(8, {});
  REQUIRE(first.size() == 1);
  REQUIRE(program::Print(first[0]) == program::Print(*program::DefaultProgram(w, "cpu")));
  REQUIRE(sampler->Propose(8, {program::ProgramHash(first[0])}).empty());
}

}  // namespace
}  // namespace tlm::server

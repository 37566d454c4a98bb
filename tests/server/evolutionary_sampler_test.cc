#include "server/evolutionary_sampler.h"

#include <algorithm>
#include <memory>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "program/program.h"
#include "program/sampler.h"
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

TEST_CASE("the linear cost model fits a function of its features") {
  const program::Sketch sketch = *program::Sketch::Make(program::DenseWorkload(64, 64, 64), "cpu");
  std::mt19937_64 rng(8);
  LinearCostModel model(1e-6);
  auto truth = [&](const std::vector<double>& f) {
    double y = 0.5;
    for (size_t j = 0; j < f.size(); ++j) y += (j % 3 == 0 ? 0.3 : -0.1) * f[j];
    return y;
  };
  for (int i = 0; i < 400; ++i) {
    const std::vector<double> f =
        ProgramFeatures(sketch, program::SampleProgram(sketch, rng).decisions);
    model.Add(f, truth(f));
  }
  model.Fit();
  for (int i = 0; i < 50; ++i) {
    const std::vector<double> f =
        ProgramFeatures(sketch, program::SampleProgram(sketch, rng).decisions);
    REQUIRE(model.Predict(f) == Approx(truth(f)).margin(1e-3));
  }
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

#include "server/sampler.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "program/sampler.h"
#include "server/evolutionary_sampler.h"

namespace tlm::server {
namespace {

// Programs visited at most when enumerating a space after rejection
// sampling stopped finding unseen ones.
constexpr int64_t kEnumerationLimit = int64_t{1} << 16;
// Rejection-sampling draws per requested program before enumerating.
constexpr int kDrawsPerProgram = 32;

}  // namespace

RandomSampler::RandomSampler(program::Sketch sketch, uint64_t seed)
    : sketch_(std::move(sketch)), rng_(seed) {}

std::vector<program::Program> RandomSampler::Propose(
    int count, const absl::flat_hash_set<std::string>& exclude) {
  std::vector<program::Program> out;
  if (count <= 0) return out;
  absl::flat_hash_set<std::string> taken;
  auto take = [&](const program::Program& p) {
    std::string hash = program::ProgramHash(p);
    if (exclude.contains(hash) || !taken.insert(std::move(hash)).second) return;
    out.push_back(p);
  };
  for (int draws = 0; draws < kDrawsPerProgram * count && static_cast<int>(out.size()) < count;
       ++draws) {
    take(program::SampleProgram(sketch_, rng_));
  }
  // Depth-first enumeration, for spaces nearly exhausted.
  int64_t visited = 0;
  program::Program p;
  p.workload = sketch_.workload();
  p.target = sketch_.target();
  std::function<void()> enumerate = [&] {
    if (static_cast<int>(out.size()) >= count || visited >= kEnumerationLimit) return;
    if (p.decisions.size() == sketch_.slots().size()) {
      ++visited;
      take(p);
      return;
    }
    for (int64_t v : sketch_.Candidates(p.decisions.size(), p.decisions)) {
      p.decisions.push_back(v);
      enumerate();
      p.decisions.pop_back();
    }
  };
  if (static_cast<int>(out.size()) < count) enumerate();
  return out;
}

std::vector<program::Program> DefaultSampler::Propose(
    int count, const absl::flat_hash_set<std::string>& exclude) {
  absl::StatusOr<program::Program> p = program::DefaultProgram(sketch_.workload(), sketch_.target());
  if (count <= 0 || !p.ok() || exclude.contains(program::ProgramHash(*p))) return {};
  return {*std::move(p)};
}

SamplerRegistry::SamplerRegistry() {
  Add("random", [](program::Sketch sketch, uint64_t seed) -> absl::StatusOr<std::unique_ptr<Sampler>> {
    return std::make_unique<RandomSampler>(std::move(sketch), seed);
  });
  Add("evolutionary",
      [](program::Sketch sketch, uint64_t seed) -> absl::StatusOr<std::unique_ptr<Sampler>> {
        return std::make_unique<EvolutionarySampler>(std::move(sketch), seed);
      });
  Add("default", [](program::Sketch sketch, uint64_t) -> absl::StatusOr<std::unique_ptr<Sampler>> {
    return std::make_unique<DefaultSampler>(std::move(sketch));
  });
}

void SamplerRegistry::Add(const std::string& name, SamplerMaker maker) {
  auto it = std::find(names_.begin(), names_.end(), name);
  if (it != names_.end()) {
    makers_[it - names_.begin()] = std::move(maker);
    return;
  }
  names_.push_back(name);
  makers_.push_back(std::move(maker));
}

absl::StatusOr<std::unique_ptr<Sampler>> SamplerRegistry::Make(const std::string& name,
                                                               const program::Workload& workload,
                                                               const std::string& target,
                                                               uint64_t seed,
                                                               const program::TargetLimits& limits) const {
  const std::string& wanted = name.empty() ? names_.front() : name;
  auto it = std::find(names_.begin(), names_.end(), wanted);
  if (it == names_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler: unknown sampler \"", name, "\" (known: ", absl::StrJoin(names_, ", "), ")"));
  }
  absl::StatusOr<program::Sketch> sketch = program::Sketch::Make(workload, target, limits);
  if (!sketch.ok()) return sketch.status();
  return makers_[it - names_.begin()](*std::move(sketch), seed);
}

}  // namespace tlm::server

#include "server/sampler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlm::server {
namespace {

// Spaces up to this size are enumerated once rejection sampling stops
// finding unseen programs, so a task can exhaust a small space exactly.
constexpr uint64_t kEnumerableSpace = uint64_t{1} << 20;
// Rejection-sampling draws per requested program before enumerating.
constexpr int kDrawsPerProgram = 32;

}  // namespace

RandomSampler::RandomSampler(const program::DenseWorkload& workload, uint64_t seed)
    : space_(workload), rng_(seed) {}

std::vector<program::DenseProgram> RandomSampler::Propose(
    int count, const absl::flat_hash_set<std::string>& exclude) {
  std::vector<program::DenseProgram> out;
  if (count <= 0) return out;
  absl::flat_hash_set<std::string> taken;
  auto take = [&](const program::DenseProgram& p) {
    std::string hash = program::HashText(program::Print(p));
    if (exclude.contains(hash) || !taken.insert(std::move(hash)).second) return;
    out.push_back(p);
  };
  for (int draws = 0; draws < kDrawsPerProgram * count && static_cast<int>(out.size()) < count;
       ++draws) {
    take(space_.Sample(rng_));
  }
  if (static_cast<int>(out.size()) < count && space_.size() <= kEnumerableSpace) {
    std::vector<uint64_t> order(space_.size());
    for (uint64_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    for (uint64_t i = 0; i < order.size() && static_cast<int>(out.size()) < count; ++i) {
      take(space_.At(order[i]));
    }
  }
  return out;
}

const std::vector<std::string>& SamplerNames() {
  static const auto* names = new std::vector<std::string>{"random"};
  return *names;
}

absl::StatusOr<std::unique_ptr<Sampler>> MakeSampler(const std::string& name,
                                                     const program::DenseWorkload& workload,
                                                     uint64_t seed) {
  if (name.empty() || name == "random") return std::make_unique<RandomSampler>(workload, seed);
  return absl::InvalidArgumentError(absl::StrCat("sampler: unknown sampler \"", name, "\" (known: ",
                                                 absl::StrJoin(SamplerNames(), ", "), ")"));
}

}  // namespace tlm::server

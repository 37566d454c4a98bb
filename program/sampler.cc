#include "program/sampler.h"

namespace tlm::program {
namespace {

constexpr const char* kOrders[] = {"ijk", "ikj", "jik", "jki", "kij", "kji"};

}  // namespace

std::vector<AxisTiling> TilingsOf(int64_t extent) {
  std::vector<AxisTiling> out;
  for (int64_t middle = 1; middle <= extent; ++middle) {
    if (extent % middle != 0) continue;
    const int64_t rest = extent / middle;
    for (int64_t inner = 1; inner <= rest; ++inner) {
      if (rest % inner == 0) out.push_back({middle, inner});
    }
  }
  return out;
}

ScheduleSpace::ScheduleSpace(const DenseWorkload& workload)
    : workload_(workload), i_(TilingsOf(workload.m)), j_(TilingsOf(workload.n)),
      k_(TilingsOf(workload.k)) {}

uint64_t ScheduleSpace::size() const {
  return static_cast<uint64_t>(i_.size()) * j_.size() * k_.size() * std::size(kOrders);
}

DenseProgram ScheduleSpace::Sample(std::mt19937_64& rng) const {
  auto pick = [&rng](const std::vector<AxisTiling>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  DenseProgram p;
  p.workload = workload_;
  p.schedule.i = pick(i_);
  p.schedule.j = pick(j_);
  p.schedule.k = pick(k_);
  p.schedule.order =
      kOrders[std::uniform_int_distribution<size_t>(0, std::size(kOrders) - 1)(rng)];
  return p;
}

}  // namespace tlm::program

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
    : workload_(workload),
      i_(TilingsOf(workload.m)),
      j_(TilingsOf(workload.n)),
      k_(TilingsOf(workload.k)) {}

uint64_t ScheduleSpace::size() const {
  return static_cast<uint64_t>(i_.size()) * j_.size() * k_.size() * std::size(kOrders);
}

DenseProgram ScheduleSpace::At(uint64_t index) const {
  DenseProgram p;
  p.workload = workload_;
  p.schedule.order = kOrders[index % std::size(kOrders)];
  index /= std::size(kOrders);
  p.schedule.k = k_[index % k_.size()];
  index /= k_.size();
  p.schedule.j = j_[index % j_.size()];
  index /= j_.size();
  p.schedule.i = i_[index % i_.size()];
  return p;
}

DenseProgram ScheduleSpace::Sample(std::mt19937_64& rng) const {
  return At(std::uniform_int_distribution<uint64_t>(0, size() - 1)(rng));
}

}  // namespace tlm::program

#include "server/task_scheduler.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_format.h"

namespace tlm::server {
namespace {

std::string Ms(double seconds) { return absl::StrFormat("%.4g ms", seconds * 1e3); }

}  // namespace

Choice ChooseTask(const std::vector<ScheduledTask>& tasks, const SchedulerOptions& o) {
  Choice best;
  size_t best_count = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const ScheduledTask& t = tasks[i];
    const size_t n = t.best_after.size();
    if (t.exhausted || (o.cap > 0 && n >= static_cast<size_t>(o.cap))) continue;
    const double now = n > 0 ? t.best_after.back() : 0;
    double gain;
    std::string why;
    if (now <= 0) {
      gain = std::numeric_limits<double>::infinity();
      why = absl::StrFormat("%s: no successful measurement in %d", t.name, n);
    } else {
      const size_t window = std::min<size_t>(std::max(o.window, 1), n);
      const double before = t.best_after[n - window];
      const double recent = before > 0 ? (before - now) / window : 0;
      const double forward = now / n;
      gain = t.weight * (o.alpha * recent + (1 - o.alpha) * forward);
      why = absl::StrFormat(
          "%s: weight %d, best %s after %d, improved %s per measurement lately; expected gain %s "
          "per measurement",
          t.name, t.weight, Ms(now), n, recent > 0 ? Ms(recent) : "nothing", Ms(gain));
    }
    if (best.index < 0 || gain > best.gain || (gain == best.gain && n < best_count)) {
      best = {static_cast<int>(i), gain, why};
      best_count = n;
    }
  }
  return best;
}

}  // namespace tlm::server

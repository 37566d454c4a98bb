#include "server/task_scheduler.h"

#include <string>
#include <vector>

#include "catch2/catch.hpp"

namespace tlm::server {
namespace {

ScheduledTask Task(const std::string& name, int64_t weight, std::vector<double> best_after) {
  return {name, weight, std::move(best_after)};
}

TEST_CASE("a task without a successful measurement goes first") {
  const Choice c = ChooseTask({Task("a", 10, {2e-3, 1e-3}), Task("b", 1, {0, 0})}, {});
  REQUIRE(c.index == 1);
  REQUIRE(c.why == "b: no successful measurement in 2");
}

TEST_CASE("weight times latency decides between tasks that stopped improving") {
  // Same history; the heavier task saves the network more per measurement.
  const std::vector<double> flat = {1e-3, 1e-3, 1e-3, 1e-3};
  REQUIRE(ChooseTask({Task("light", 1, flat), Task("heavy", 12, flat)}, {}).index == 1);
  // Same weight: the slower task has more to gain.
  REQUIRE(ChooseTask({Task("fast", 2, {1e-4, 1e-4}), Task("slow", 2, {5e-3, 5e-3})}, {}).index ==
          1);
}

TEST_CASE("recent improvement raises a task's gain") {
  SchedulerOptions o;
  o.window = 2;
  o.alpha = 0.5;
  const Choice c = ChooseTask(
      {Task("flat", 1, {2e-3, 2e-3, 2e-3, 2e-3}), Task("improving", 1, {4e-3, 4e-3, 3e-3, 1.5e-3})},
      o);
  REQUIRE(c.index == 1);
  // 0.5 * (3e-3 - 1.5e-3) / 2 + 0.5 * 1.5e-3 / 4 = 0.5625e-3 per measurement.
  REQUIRE(c.gain == Approx(0.5625e-3));
  REQUIRE(c.why.find("improving: weight 1, best 1.5 ms after 4") == 0);
}

TEST_CASE("capped and exhausted tasks are not chosen; ties go to the less measured") {
  SchedulerOptions o;
  o.cap = 3;
  std::vector<ScheduledTask> tasks = {Task("capped", 100, {1e-3, 1e-3, 1e-3}),
                                      Task("a", 1, {1e-3}), Task("b", 1, {1e-3})};
  REQUIRE(ChooseTask(tasks, o).index == 1);  // equal gains and counts: the first
  tasks[1].best_after = {2e-3, 2e-3};
  tasks[2].best_after = {1e-3};
  REQUIRE(ChooseTask(tasks, o).index == 2);  // equal gains (1 ms per measurement): fewer measured
  tasks[1].exhausted = true;
  REQUIRE(ChooseTask(tasks, o).index == 2);
  tasks[2].best_after = {1e-3, 1e-3, 1e-3};
  REQUIRE(ChooseTask(tasks, o).index == -1);
}

}  // namespace
}  // namespace tlm::server

// The task scheduler of a session: which task gets the next measurements,
// by expected end-to-end gain (the gradient idea of Ansor).
#ifndef TLMD_SERVER_TASK_SCHEDULER_H_
#define TLMD_SERVER_TASK_SCHEDULER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tlm::server {

struct ScheduledTask {
  std::string name;
  int64_t weight = 1;  // occurrences in the network
  // Best latency in seconds after each of the task's measurements; 0 until
  // the first success.
  std::vector<double> best_after;
  bool exhausted = false;  // its space holds nothing unmeasured: never chosen
};

struct SchedulerOptions {
  int window = 4;      // measurements the recent improvement is taken over
  double alpha = 0.2;  // weight of the recent improvement against the forward estimate
  int cap = 0;         // most measurements of one task (0: no cap)
};

struct Choice {
  int index = -1;   // the task; -1 when every task is at its cap or exhausted
  double gain = 0;  // expected network seconds saved per measurement
  std::string why;  // one line, for the log
};

// For task i with t measurements and best g(t), the expected gain of one
// more measurement is weight_i * (alpha * (g(t - window) - g(t)) / window
// + (1 - alpha) * g(t) / t): what it improved lately and an optimistic
// forward estimate that shrinks as the task is measured. A task without a
// successful measurement goes first. Ties go to the less measured task.
Choice ChooseTask(const std::vector<ScheduledTask>& tasks, const SchedulerOptions& options);

}  // namespace tlm::server

#endif  // TLMD_SERVER_TASK_SCHEDULER_H_

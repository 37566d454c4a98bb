// The tuning core: turns tasks into measured programs.
//
// For every running task the tuner keeps a window of programs queued or
// leased in the dispatcher, proposed by the task's sampler. Each program is
// stored before it is enqueued and each result is stored before the task's
// progress moves, so a restart (Resume) re-enqueues exactly the programs that
// have no stored result and nothing acknowledged is lost.
#ifndef TLMD_SERVER_TUNER_H_
#define TLMD_SERVER_TUNER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "program/workload.h"
#include "server/dispatcher.h"
#include "server/sampler.h"
#include "server/store.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::server {

// Checks a submission (all but the sampler, which the tuner's registry
// checks); INVALID_ARGUMENT names the offending field.
absl::Status ValidateSubmitRequest(const tlm::v1::SubmitTaskRequest& request);

// A subscription to one task's events. Thread-safe.
class TaskWatch {
 public:
  // The next event, or nullopt when `timeout` passes or the watch is over
  // (done() then tells which). The last event of a task ends the watch.
  std::optional<tlm::v1::TaskEvent> Next(absl::Duration timeout);
  // True once the last event has been taken.
  bool done() const;

 private:
  friend class Tuner;
  void Push(tlm::v1::TaskEvent event, bool last);

  mutable absl::Mutex mu_;
  std::deque<tlm::v1::TaskEvent> events_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // the last event has been pushed
};

// Distribution of a per-job duration, in milliseconds.
struct DurationStats {
  int64_t jobs = 0;
  double median_ms = 0;
  double p90_ms = 0;
  double max_ms = 0;
};

// Where a job's time went on the server, over the jobs stored so far.
struct OverheadStats {
  // From the lease to the stored result, minus the worker's build and run
  // time: what the dispatcher, the network and the dataset add per job.
  DurationStats dispatch;
  // From enqueue to the stored result, minus the worker's time: includes
  // waiting in the queue for a free worker.
  DurationStats enqueue_to_stored;
};

class Tuner {
 public:
  struct Options {
    // Programs of one task queued or leased at once.
    int window_per_task = 32;
    // The samplers tasks may ask for; must outlive the tuner. Null: random
    // only.
    const SamplerRegistry* samplers = nullptr;
    std::function<absl::Time()> clock = [] { return absl::Now(); };
    // Called with every result once it is stored, under the tuner's lock:
    // it must be quick and must not call the tuner.
    std::function<void(const tlm::v1::MeasureResult&)> on_stored;
    // Called with a task's id when it ends (any state), under the tuner's
    // lock: it must be quick and must not call the tuner.
    std::function<void(int64_t)> on_ended;
  };

  // `store` and `dispatcher` must outlive the tuner. The dispatcher's outcome
  // callback must call OnOutcome.
  Tuner(Store* store, Dispatcher* dispatcher, Options options);

  // Picks up every task the store holds as running: re-enqueues its programs
  // without a result and continues sampling. Call once, before serving.
  absl::Status Resume();

  // What Submit would refuse the request for (including its sampler),
  // without storing anything.
  absl::Status Check(const tlm::v1::SubmitTaskRequest& request) const;
  // Validates, stores and starts a task. A cuda task's limits are resolved
  // (LimitsFor) and stored with it. With a `key` (Store::CreateTask), a task
  // already stored under it is returned as it is instead, so a creator that
  // restarts between submitting and recording the id gets the same task.
  // UNAVAILABLE after StopAccepting.
  absl::StatusOr<tlm::v1::Task> Submit(tlm::v1::SubmitTaskRequest request,
                                       const std::string& key = "");
  absl::StatusOr<tlm::v1::Task> Get(int64_t task_id);
  absl::StatusOr<std::vector<tlm::v1::Task>> List(int limit,
                                                  const std::vector<tlm::v1::TaskState>& states);
  absl::StatusOr<tlm::v1::Trial> Best(int64_t task_id);
  // Drops the task's queued programs; results already in flight are stored.
  // An ended task is returned unchanged.
  absl::StatusOr<tlm::v1::Task> Cancel(int64_t task_id);
  // Raises a task's trial count (see tlm.v1.Tuning.ExtendTask).
  absl::StatusOr<tlm::v1::Task> Extend(int64_t task_id, int32_t more_trials);
  // Subscribes to a task. The first event is the task as it is now; a task
  // that has ended yields only that event.
  absl::StatusOr<std::shared_ptr<TaskWatch>> Watch(int64_t task_id);

  // Stores a job's outcome and advances its task. Thread-safe.
  void OnOutcome(const JobOutcome& outcome);

  // Stops taking tasks and generating programs, and drops queued programs
  // from the dispatcher (they stay in the store, unmeasured, for Resume).
  // Results of leased programs are still stored when they arrive.
  void StopAccepting();

  OverheadStats Overhead() const;

 private:
  struct ActiveTask {
    int64_t id = 0;
    int32_t num_trials = 0;
    tlm::v1::Target target;
    tlm::v1::MeasureOptions measure;
    std::unique_ptr<Sampler> sampler;
    absl::flat_hash_set<std::string> hashes;  // every program stored for the task
    int outstanding = 0;                      // stored programs without a result
    int done = 0;                             // stored results
    bool exhausted = false;                   // the sampler has nothing new
    std::vector<std::weak_ptr<TaskWatch>> watchers;
  };

  static std::unique_ptr<ActiveTask> MakeActiveTask(const tlm::v1::Task& stored,
                                                    std::unique_ptr<Sampler> sampler);
  // Makes a stored task active: a sampler that has seen its results, its
  // unmeasured programs re-enqueued and its window refilled (appended to
  // `jobs`). FAILED_PRECONDITION "cannot resume: ..." when no sampler can be
  // made for it; other errors are the store's.
  absl::Status Activate(const tlm::v1::Task& stored, std::vector<Job>& jobs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Proposes and stores programs to refill the task's window; returns the
  // jobs to enqueue once mu_ is released.
  absl::StatusOr<std::vector<Job>> TopUp(ActiveTask& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the task if nothing is outstanding and nothing more will come.
  void MaybeFinish(ActiveTask& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the task with `state`, notifies and forgets it.
  void Finish(int64_t task_id, tlm::v1::TaskState state, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(ActiveTask& task, const tlm::v1::Task& snapshot, const tlm::v1::Trial* trial,
              bool last) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Job MakeJob(const ActiveTask& task, int64_t program_id, const tlm::v1::Program& program) const;
  // A cuda task's limits, every field filled in: the request's, else the
  // tightest over the connected workers serving the target, else the
  // portable defaults.
  tlm::v1::TargetLimits LimitsFor(const tlm::v1::Target& target) const;
  int64_t NowMs() const;

  Store* const store_;
  Dispatcher* const dispatcher_;
  const Options options_;
  const SamplerRegistry default_samplers_;
  const SamplerRegistry& samplers_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<int64_t, std::unique_ptr<ActiveTask>> active_ ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<double> dispatch_ms_ ABSL_GUARDED_BY(mu_);
  std::vector<double> enqueue_to_stored_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_TUNER_H_

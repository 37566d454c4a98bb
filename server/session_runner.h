// Sessions: the workloads of a network tuned together within one
// measurement budget, in rounds.
//
// A round gives trials_per_round programs to each task the task scheduler
// picks: every task that was never measured first (all of them in one
// round), then the tasks_per_round tasks with the largest expected gain for
// the network. Tasks are ordinary tuner tasks (created when first picked,
// extended afterwards), so they are measured, stored and resumed like any
// other. A round ends when all its tasks have ended; then the next one is
// chosen at once and `on_round_end` is called (tlmd fine-tunes the model in
// the background there, while the next round generates with the current
// one). A session ends when its budget is spent or no task can take more.
//
// Everything a session needs to go on is in the store: the session (its
// tasks and rounds) and its tasks' measurements. After a restart, Start
// picks running sessions up where the stored state says they are.
#ifndef TLMD_SERVER_SESSION_RUNNER_H_
#define TLMD_SERVER_SESSION_RUNNER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store.h"
#include "server/tuner.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::server {

class SessionRunner {
 public:
  struct Options {
    // Called on the runner's thread with a session's round once it ended
    // and the session was stored; must not call the runner.
    std::function<void(int64_t session_id, const tlm::v1::SessionRound& round)> on_round_end;
    std::function<absl::Time()> clock = [] { return absl::Now(); };
    // How often running sessions are looked at when no task ended.
    absl::Duration poll = absl::Seconds(1);
  };

  // `store` and `tuner` must outlive the runner. The tuner's on_ended option
  // should call TaskEnded.
  SessionRunner(Store* store, Tuner* tuner, Options options);
  // Stops the thread; running sessions stay running in the store.
  ~SessionRunner();
  SessionRunner(const SessionRunner&) = delete;
  SessionRunner& operator=(const SessionRunner&) = delete;

  // Starts advancing the sessions the store holds as running, and any started
  // later. Call once, after Tuner::Resume.
  void Start();

  // Validates and stores a session and starts its untuned-schedule tasks;
  // the first round follows on the runner's thread. INVALID_ARGUMENT names
  // the offending field ("workloads[2].weight: ..."), including a workload
  // the target cannot run; nothing is stored then.
  absl::StatusOr<tlm::v1::Session> StartSession(tlm::v1::StartSessionRequest request);
  absl::StatusOr<tlm::v1::Session> Get(int64_t session_id);
  absl::StatusOr<std::vector<tlm::v1::Session>> List(int limit);
  // Ends the session as cancelled and cancels its running tasks. An ended
  // session is returned unchanged.
  absl::StatusOr<tlm::v1::Session> Cancel(int64_t session_id);

  // Stops advancing sessions (they stay running in the store). Call before
  // the tuner stops accepting work.
  void Stop();

  // A task ended: look at the sessions soon. Quick; never blocks on the
  // runner's work (safe under the tuner's lock).
  void TaskEnded(int64_t task_id);

 private:
  void Loop();
  // Brings one running session up to date (Step) and stores it when
  // anything changed, also after an error.
  absl::Status Advance(tlm::v1::Session& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the session's round when the round's tasks have ended (setting
  // `ended` to it), then chooses and starts the next round or ends the
  // session.
  absl::Status Step(tlm::v1::Session& session, std::optional<tlm::v1::SessionRound>& ended)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks the next round's tasks and starts them; false when no task can
  // take more measurements.
  absl::StatusOr<bool> StartRound(tlm::v1::Session& session,
                                  const std::vector<tlm::v1::Task>& tasks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a session; cancels its tasks that still run.
  absl::Status End(tlm::v1::Session& session, tlm::v1::SessionState state,
                   const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t NowMs() const;

  Store* const store_;
  Tuner* const tuner_;
  const Options options_;

  absl::Mutex mu_;  // one session changes at a time

  absl::Mutex wake_mu_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread thread_;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_SESSION_RUNNER_H_

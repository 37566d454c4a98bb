// The dispatcher: per-target-kind job queues, credit-based flow control and
// leases for the workers connected over tlm.v1.Fleet.
//
// Contract:
// - A job is sent to a worker of its target kind (and device, when the job
//   names one) only while that worker holds credits; each job sent uses one.
//   Credits come back only when the worker grants them again (after sending
//   a result), never implicitly.
// - Every send is a lease with a deadline (build + run timeouts + margin).
//   A lease that expires, or whose worker disconnects or stays silent for
//   three heartbeat intervals, puts the job back at the front of its queue;
//   after `max_attempts` lost leases the job ends with ERROR_KIND_UNKNOWN.
// - Each job ends exactly once through the outcome callback, unless its task
//   is cancelled while it is queued. Results for leases that are not current
//   (late, duplicate, or from another worker) are ignored.
// - Thread-safe. The outcome callback runs without internal locks held, on
//   the thread that completed, expired or disconnected the job.
#ifndef TLMD_SERVER_DISPATCHER_H_
#define TLMD_SERVER_DISPATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tlm/v1/admin.pb.h"
#include "tlm/v1/fleet.pb.h"

namespace tlm::server {

struct Job {
  int64_t job_id = 0;  // unique among live jobs; the tuner uses the program id
  int64_t task_id = 0;
  tlm::v1::Target target;
  tlm::v1::Program program;
  tlm::v1::MeasureOptions options;
};

struct JobOutcome {
  Job job;
  std::string worker_id;  // empty when the dispatcher gave up on the job
  int32_t attempt = 0;    // 1-based attempt that produced the outcome
  tlm::v1::MeasureResult result;
  absl::Time enqueued_at;  // first Enqueue
  absl::Time leased_at;    // start of the lease that produced the outcome
  absl::Time completed_at;
};

// The server's side of one worker's stream. Shared by the stream handler and
// the dispatcher. Thread-safe.
class WorkerSession {
 public:
  explicit WorkerSession(std::string worker_id) : worker_id_(std::move(worker_id)) {}

  const std::string& worker_id() const { return worker_id_; }
  // The next job leased to this worker, or nullopt after `timeout` or once
  // the session is closed.
  std::optional<tlm::v1::MeasureJob> NextJob(absl::Duration timeout);
  bool closed() const;

 private:
  friend class Dispatcher;
  void Deliver(tlm::v1::MeasureJob job);
  void Close();

  const std::string worker_id_;
  mutable absl::Mutex mu_;
  std::deque<tlm::v1::MeasureJob> outbox_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class Dispatcher {
 public:
  struct Options {
    int max_attempts = 3;
    absl::Duration lease_margin = absl::Seconds(30);
    absl::Duration heartbeat_interval = absl::Seconds(2);
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };
  using OutcomeCallback = std::function<void(const JobOutcome&)>;

  Dispatcher(Options options, OutcomeCallback on_outcome);
  // Stops the ticker and closes every session.
  ~Dispatcher();

  void Enqueue(Job job);
  // Drops the task's queued jobs (no outcome for them); leased jobs still
  // complete. Returns how many were dropped.
  int CancelTask(int64_t task_id);

  // Registers a worker. INVALID_ARGUMENT names the field that is wrong.
  absl::StatusOr<std::shared_ptr<WorkerSession>> Connect(const tlm::v1::RegisterRequest& request);
  // What to answer a worker that has just connected.
  tlm::v1::RegisterResponse Registration(const std::string& worker_id) const;
  // Closes the worker's session and requeues its leased jobs. Idempotent.
  void Disconnect(const std::string& worker_id);
  void Grant(const std::string& worker_id, int32_t credits);
  void Heartbeat(const std::string& worker_id);
  // Ends the job if `result` answers its current lease held by this worker;
  // otherwise ignores it and returns false.
  bool Complete(const std::string& worker_id, const tlm::v1::JobResult& result);

  // Expires overdue leases and drops silent workers. Start() calls it every
  // 200 ms; tests call it directly with a fake clock.
  void Tick();
  void Start();
  void Stop();

  std::vector<tlm::v1::QueueStatus> Queues() const;
  std::vector<tlm::v1::WorkerInfo> Workers() const;
  // Jobs queued or leased.
  size_t pending() const;

 private:
  struct Lease {
    int64_t lease_id = 0;
    std::string worker_id;
    absl::Time started;
    absl::Time deadline;
  };
  struct Entry {
    Job job;
    int32_t attempts = 0;
    absl::Time enqueued_at;
    std::optional<Lease> lease;
  };
  struct Worker {
    std::shared_ptr<WorkerSession> session;
    tlm::v1::RegisterRequest registration;
    int32_t credits = 0;
    absl::Time connected_at;
    absl::Time last_heartbeat;
    int64_t results = 0;
    absl::flat_hash_set<int64_t> leased;  // job ids
  };

  // Hands queued jobs to workers with credits, round-robin.
  void Assign() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `job_id`'s lease; requeues it, or gives up and appends an outcome.
  void LoseLease(int64_t job_id, const std::string& reason, std::vector<JobOutcome>& outcomes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes and forgets a worker, losing its leases.
  void DropWorker(const std::string& worker_id, const std::string& reason,
                  std::vector<JobOutcome>& outcomes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(std::vector<JobOutcome> outcomes);
  absl::Duration LeaseFor(const tlm::v1::MeasureOptions& options) const;

  const Options options_;
  const OutcomeCallback on_outcome_;

  mutable absl::Mutex mu_;
  std::map<int64_t, Entry> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<int64_t>> queues_ ABSL_GUARDED_BY(mu_);  // by target kind
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::string last_served_ ABSL_GUARDED_BY(mu_);  // round-robin cursor
  int64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_worker_ ABSL_GUARDED_BY(mu_) = 1;

  std::unique_ptr<absl::Notification> stop_ticker_;
  std::thread ticker_;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_DISPATCHER_H_

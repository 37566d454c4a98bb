// The dispatcher: per-target job queues, credit-based flow control and leases
// for the workers connected over tlm.v1.Fleet. Pure in-memory logic with an
// injectable clock; it knows neither gRPC nor the dataset.
//
// Contract:
// - A job goes to a worker whose capabilities.target.kind equals the job's
//   target kind and, when the job names a device, whose
//   capabilities.target.device equals it, and, when the job's target has
//   limits, whose reported GPU meets each of them. Jobs no connected worker can take
//   stay queued. Within what a worker can take, jobs leave in FIFO order;
//   work is spread over eligible workers round-robin, one job per turn.
// - Credits: a worker receives a job only while it holds credits; Grant adds
//   credits and each job sent uses one. Credits never come back implicitly:
//   neither a result (Complete) nor a lost lease returns one. A worker
//   re-grants a credit after it has sent a result, including a result for a
//   lease that has expired meanwhile (it was busy until then).
// - Every job sent is a new lease (lease ids are unique and increase across
//   the dispatcher) with a deadline of build_timeout_s + run_timeout_s (30 s
//   and 60 s when unset) + Options::lease_margin. A lease ends when Tick finds
//   it past its deadline, when its worker disconnects, or when Tick finds its
//   worker silent (no message at all) for three heartbeat intervals. The job
//   then goes back to the front of its queue with attempt + 1, or, after
//   `max_attempts` attempts, ends with ERROR_KIND_UNKNOWN at stage "dispatch".
// - Each enqueued job ends exactly once through the outcome callback, unless
//   its task is cancelled while it is queued. Complete accepts only the
//   current lease of a job, from the worker holding it; a result for an
//   unknown, ended (expired, lost or completed) lease, or from another worker,
//   is ignored and logged. A lease past its deadline stays current until Tick
//   ends it, so a result arriving in between is accepted.
// - Thread-safe. The outcome callback runs without the dispatcher's lock held,
//   on the thread that completed, expired or dropped the job, possibly on
//   several threads at once; it may call back into the dispatcher.
#ifndef TLMD_SERVER_DISPATCHER_H_
#define TLMD_SERVER_DISPATCHER_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
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
  tlm::v1::Target target;  // kind required; device and limits optional
  tlm::v1::Program program;
  tlm::v1::MeasureOptions options;
};

struct JobOutcome {
  Job job;
  std::string worker_id;  // empty when the dispatcher gave up on the job
  int32_t attempt = 0;    // 1-based attempt that produced the outcome
  // The worker's result, or on give-up: ERROR_KIND_UNKNOWN, stage "dispatch",
  // and a message with the number of attempts and why the last one was lost.
  tlm::v1::MeasureResult result;
  absl::Time enqueued_at;  // first Enqueue
  absl::Time leased_at;    // start of the last lease (InfinitePast if never leased)
  absl::Time completed_at;
};

// The server's side of one worker's stream, shared by the stream handler and
// the dispatcher. Thread-safe.
class WorkerSession {
 public:
  explicit WorkerSession(std::string worker_id) : worker_id_(std::move(worker_id)) {}

  const std::string& worker_id() const { return worker_id_; }
  // Blocks until a job leased to this worker is ready (returns it), the
  // session is closed, or `timeout` passes (both return nullopt; see
  // closed()). Jobs not yet taken when the session closes are discarded.
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
    // Attempts (leases) a job gets before it ends as an UNKNOWN error.
    int max_attempts = 3;
    // Added to a job's build + run timeouts to make its lease.
    absl::Duration lease_margin = absl::Seconds(30);
    // Told to workers; a worker silent for three intervals is dropped.
    absl::Duration heartbeat_interval = absl::Seconds(2);
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };
  using OutcomeCallback = std::function<void(const JobOutcome&)>;

  Dispatcher(Options options, OutcomeCallback on_outcome);
  // Stops the ticker and closes every session. Jobs still queued or leased
  // get no outcome.
  ~Dispatcher();

  // Queues a job at the back of its queue. A job whose id is already queued
  // or leased is ignored (logged).
  void Enqueue(Job job);
  // Drops the task's queued jobs (no outcome for them); leased jobs still
  // complete or get lost as usual. Returns how many were dropped.
  int CancelTask(int64_t task_id);

  // Registers a worker under a new id "w-<n>". INVALID_ARGUMENT names the
  // field that is wrong. The worker holds no credits until it grants some.
  absl::StatusOr<std::shared_ptr<WorkerSession>> Connect(const tlm::v1::RegisterRequest& request);
  // What to answer a worker that has just connected.
  tlm::v1::RegisterResponse Registration(const std::string& worker_id) const;
  // Closes the worker's session and requeues (or gives up on) its leased
  // jobs. Idempotent; unknown ids are ignored.
  void Disconnect(const std::string& worker_id);
  // Adds credits (ignored unless positive) and counts as a sign of life.
  void Grant(const std::string& worker_id, int32_t credits);
  void Heartbeat(const std::string& worker_id);
  // Ends the job with `result` if it answers the job's current lease and this
  // worker holds it; returns true then. Otherwise ignores it and returns
  // false. Adds no credit.
  bool Complete(const std::string& worker_id, const tlm::v1::JobResult& result);

  // Drops workers silent for three heartbeat intervals and expires leases
  // past their deadline. Start() calls it every 200 ms; tests call it
  // directly with a fake clock.
  void Tick();
  // Start and Stop must not race each other; Stop is idempotent.
  void Start();
  void Stop();

  // The tightest limits over the connected workers of the target's kind
  // (and device, when it names one) that report a GPU; nullopt if none does.
  std::optional<tlm::v1::TargetLimits> TightestLimits(const tlm::v1::Target& target) const;

  // Per target kind ever enqueued: jobs queued and leased.
  std::vector<tlm::v1::QueueStatus> Queues() const;
  // Connected workers, in connection order.
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
    // Order among queued jobs: increasing at the back, decreasing at the front.
    int64_t position = 0;
    absl::Time enqueued_at;
    absl::Time last_leased_at = absl::InfinitePast();
    std::optional<Lease> lease;
  };
  struct Worker {
    std::shared_ptr<WorkerSession> session;
    tlm::v1::RegisterRequest registration;
    int64_t credits = 0;
    absl::Time connected_at;
    absl::Time last_heartbeat;
    int64_t results = 0;
    double run_seconds = 0;    // of its results
    double build_seconds = 0;  // of its results
    absl::flat_hash_set<int64_t> leased;  // job ids
  };
  // Orders "w-<n>" ids by n: shorter first, then lexicographically.
  struct ConnectionOrder {
    bool operator()(const std::string& a, const std::string& b) const {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    }
  };
  // (target kind, device, limits); device is empty for jobs any worker of
  // the kind can take, and limits are what a worker's device must meet
  // (threads, shared bytes and registers per block; zeros for targets
  // without limits). Each queue is sorted by Entry::position.
  struct QueueKey {
    std::string kind;
    std::string device;
    std::array<int64_t, 3> limits = {0, 0, 0};
    friend bool operator<(const QueueKey& a, const QueueKey& b) {
      return std::tie(a.kind, a.device, a.limits) < std::tie(b.kind, b.device, b.limits);
    }
  };
  static QueueKey KeyOf(const Job& job);

  // Hands queued jobs to workers with credits, round-robin.
  void Assign() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queue holding the oldest job `worker` can take, or nullptr.
  std::deque<int64_t>* QueueFor(const Worker& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushBack(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushFront(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `job_id`'s lease (already removed from its worker's set); requeues
  // the job, or gives up and appends an outcome.
  void LoseLease(int64_t job_id, const std::string& reason, std::vector<JobOutcome>& outcomes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes and forgets a worker, losing its leases.
  void DropWorker(const std::string& worker_id, const std::string& reason,
                  std::vector<JobOutcome>& outcomes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(const std::vector<JobOutcome>& outcomes) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration LeaseFor(const tlm::v1::MeasureOptions& options) const;

  const Options options_;
  const OutcomeCallback on_outcome_;

  mutable absl::Mutex mu_;
  std::map<int64_t, Entry> jobs_ ABSL_GUARDED_BY(mu_);  // queued and leased
  std::map<QueueKey, std::deque<int64_t>> queues_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Worker, ConnectionOrder> workers_ ABSL_GUARDED_BY(mu_);
  std::string last_served_ ABSL_GUARDED_BY(mu_);  // round-robin cursor
  int64_t next_back_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_front_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_worker_ ABSL_GUARDED_BY(mu_) = 1;

  std::unique_ptr<absl::Notification> stop_ticker_;
  std::thread ticker_;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_DISPATCHER_H_

#include "server/dispatcher.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "program/program.h"
#include "spdlog/spdlog.h"

namespace tlm::server {
namespace {

constexpr double kDefaultBuildTimeoutS = 30;
constexpr double kDefaultRunTimeoutS = 60;
constexpr int kSilentIntervals = 3;

JobOutcome GiveUp(Job job, int32_t attempt, std::string message) {
  JobOutcome outcome;
  outcome.job = std::move(job);
  outcome.attempt = attempt;
  outcome.result.set_error_kind(tlm::v1::ERROR_KIND_UNKNOWN);
  outcome.result.set_error_stage("dispatch");
  outcome.result.set_error_message(std::move(message));
  return outcome;
}

// A device's per-block limits as its worker reports them, every field filled
// in (the portable defaults where it reports nothing).
tlm::v1::TargetLimits WorkerLimits(const tlm::v1::WorkerCapabilities& caps) {
  const tlm::v1::GpuProperties& gpu = caps.gpu();
  tlm::v1::TargetLimits reported;
  reported.set_max_threads_per_block(gpu.max_threads_per_block());
  reported.set_max_shared_bytes_per_block(gpu.shared_bytes_per_block_optin() > 0
                                              ? gpu.shared_bytes_per_block_optin()
                                              : gpu.shared_bytes_per_block());
  reported.set_max_registers_per_block(gpu.registers_per_block());
  return program::LimitsToProto(program::LimitsFromProto(reported));
}

// Limits in a comparable form; zero fields take the portable defaults.
std::array<int64_t, 3> LimitsArray(const tlm::v1::TargetLimits& proto) {
  const program::TargetLimits limits = program::LimitsFromProto(proto);
  return {limits.max_threads_per_block, limits.max_shared_bytes, limits.max_registers_per_block};
}

}  // namespace

std::optional<tlm::v1::MeasureJob> WorkerSession::NextJob(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !outbox_.empty() || closed_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (closed_ || outbox_.empty()) return std::nullopt;
  tlm::v1::MeasureJob job = std::move(outbox_.front());
  outbox_.pop_front();
  return job;
}

bool WorkerSession::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void WorkerSession::Deliver(tlm::v1::MeasureJob job) {
  absl::MutexLock lock(&mu_);
  if (!closed_) outbox_.push_back(std::move(job));
}

void WorkerSession::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  outbox_.clear();
}

Dispatcher::Dispatcher(Options options, OutcomeCallback on_outcome)
    : options_(std::move(options)), on_outcome_(std::move(on_outcome)) {}

Dispatcher::~Dispatcher() {
  Stop();
  absl::MutexLock lock(&mu_);
  for (auto& [id, worker] : workers_) worker.session->Close();
}

absl::Duration Dispatcher::LeaseFor(const tlm::v1::MeasureOptions& o) const {
  const double build = o.build_timeout_s() > 0 ? o.build_timeout_s() : kDefaultBuildTimeoutS;
  const double run = o.run_timeout_s() > 0 ? o.run_timeout_s() : kDefaultRunTimeoutS;
  return absl::Seconds(build + run) + options_.lease_margin;
}

void Dispatcher::Deliver(const std::vector<JobOutcome>& outcomes) {
  for (const JobOutcome& o : outcomes) on_outcome_(o);
}

void Dispatcher::PushBack(Entry& entry) {
  entry.position = next_back_++;
  queues_[KeyOf(entry.job)].push_back(entry.job.job_id);
}

void Dispatcher::PushFront(Entry& entry) {
  entry.position = next_front_--;
  queues_[KeyOf(entry.job)].push_front(entry.job.job_id);
}

void Dispatcher::Enqueue(Job job) {
  std::vector<JobOutcome> outcomes;
  {
    absl::MutexLock lock(&mu_);
    const int64_t id = job.job_id;
    if (jobs_.count(id) != 0) {
      spdlog::warn("job {} is already queued or leased; enqueue ignored", id);
      return;
    }
    if (job.target.kind().empty()) {
      spdlog::error("job {} (task {}) has no target kind; giving up on it", id, job.task_id);
      JobOutcome outcome =
          GiveUp(std::move(job), 0, "job has no target kind; no worker can take it");
      outcome.enqueued_at = outcome.completed_at = options_.clock();
      outcomes.push_back(std::move(outcome));
    } else {
      Entry& entry = jobs_[id];
      entry.job = std::move(job);
      entry.enqueued_at = options_.clock();
      PushBack(entry);
      Assign();
    }
  }
  Deliver(outcomes);
}

int Dispatcher::CancelTask(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  int dropped = 0;
  for (auto& [key, queue] : queues_) {
    auto keep = std::remove_if(queue.begin(), queue.end(), [&](int64_t id) {
      auto it = jobs_.find(id);
      if (it->second.job.task_id != task_id) return false;
      jobs_.erase(it);
      ++dropped;
      return true;
    });
    queue.erase(keep, queue.end());
  }
  if (dropped > 0) spdlog::info("task {}: {} queued jobs dropped", task_id, dropped);
  return dropped;
}

absl::StatusOr<std::shared_ptr<WorkerSession>> Dispatcher::Connect(
    const tlm::v1::RegisterRequest& request) {
  if (request.capabilities().target().kind().empty()) {
    return absl::InvalidArgumentError("register.capabilities.target.kind: missing");
  }
  if (request.capabilities().max_in_flight() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("register.capabilities.max_in_flight: must be at least 1, got ",
                     request.capabilities().max_in_flight()));
  }
  absl::MutexLock lock(&mu_);
  const std::string id = absl::StrCat("w-", next_worker_++);
  Worker& worker = workers_[id];
  worker.session = std::make_shared<WorkerSession>(id);
  worker.registration = request;
  worker.connected_at = worker.last_heartbeat = options_.clock();
  return worker.session;
}

tlm::v1::RegisterResponse Dispatcher::Registration(const std::string& worker_id) const {
  tlm::v1::RegisterResponse response;
  response.set_worker_id(worker_id);
  response.set_heartbeat_interval_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  return response;
}

void Dispatcher::Disconnect(const std::string& worker_id) {
  std::vector<JobOutcome> outcomes;
  {
    absl::MutexLock lock(&mu_);
    DropWorker(worker_id, absl::StrCat("worker ", worker_id, " disconnected"), outcomes);
    Assign();
  }
  Deliver(outcomes);
}

void Dispatcher::Grant(const std::string& worker_id, int32_t credits) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  Worker& worker = it->second;
  worker.last_heartbeat = options_.clock();
  if (credits <= 0) {
    spdlog::warn("worker {} granted {} credits; ignored", worker_id, credits);
    return;
  }
  worker.credits += credits;
  Assign();
}

void Dispatcher::Heartbeat(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.last_heartbeat = options_.clock();
}

bool Dispatcher::Complete(const std::string& worker_id, const tlm::v1::JobResult& result) {
  std::vector<JobOutcome> outcomes;
  {
    absl::MutexLock lock(&mu_);
    auto w = workers_.find(worker_id);
    if (w != workers_.end()) w->second.last_heartbeat = options_.clock();
    auto it = jobs_.find(result.job_id());
    if (w == workers_.end() || it == jobs_.end() || !it->second.lease.has_value() ||
        it->second.lease->lease_id != result.lease_id() ||
        it->second.lease->worker_id != worker_id) {
      spdlog::info("ignoring result for job {} lease {} from {}: not a lease it holds now",
                   result.job_id(), result.lease_id(), worker_id);
      return false;
    }
    Entry& entry = it->second;
    JobOutcome outcome;
    outcome.job = std::move(entry.job);
    outcome.worker_id = worker_id;
    outcome.attempt = entry.attempts;
    outcome.result = result.result();
    outcome.enqueued_at = entry.enqueued_at;
    outcome.leased_at = entry.lease->started;
    outcome.completed_at = options_.clock();
    outcomes.push_back(std::move(outcome));
    jobs_.erase(it);
    w->second.leased.erase(result.job_id());
    ++w->second.results;
    w->second.run_seconds += std::max(0.0, result.result().run_seconds());
    w->second.build_seconds += std::max(0.0, result.result().build_seconds());
  }
  Deliver(outcomes);
  return true;
}

void Dispatcher::LoseLease(int64_t job_id, const std::string& reason,
                           std::vector<JobOutcome>& outcomes) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Entry& entry = it->second;
  entry.lease.reset();
  if (entry.attempts >= options_.max_attempts) {
    spdlog::warn("job {} (task {}) lost {} times; giving up: {}", job_id, entry.job.task_id,
                 entry.attempts, reason);
    JobOutcome outcome = GiveUp(
        std::move(entry.job), entry.attempts,
        absl::StrCat("no result after ", entry.attempts, " attempts; last attempt: ", reason));
    outcome.enqueued_at = entry.enqueued_at;
    outcome.leased_at = entry.last_leased_at;
    outcome.completed_at = options_.clock();
    outcomes.push_back(std::move(outcome));
    jobs_.erase(it);
    return;
  }
  spdlog::info("job {} requeued after attempt {}: {}", job_id, entry.attempts, reason);
  PushFront(entry);
}

void Dispatcher::DropWorker(const std::string& worker_id, const std::string& reason,
                            std::vector<JobOutcome>& outcomes) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  it->second.session->Close();
  std::vector<int64_t> leased(it->second.leased.begin(), it->second.leased.end());
  workers_.erase(it);
  // Requeued at the front in reverse queue order, so they keep their order.
  std::sort(leased.begin(), leased.end(),
            [this](int64_t a, int64_t b) { return jobs_.at(a).position > jobs_.at(b).position; });
  for (int64_t id : leased) LoseLease(id, reason, outcomes);
}

Dispatcher::QueueKey Dispatcher::KeyOf(const Job& job) {
  QueueKey key{job.target.kind(), job.target.device()};
  if (job.target.has_limits()) key.limits = LimitsArray(job.target.limits());
  return key;
}

std::deque<int64_t>* Dispatcher::QueueFor(const Worker& worker) {
  const tlm::v1::WorkerCapabilities& caps = worker.registration.capabilities();
  const std::array<int64_t, 3> has = LimitsArray(WorkerLimits(caps));
  std::deque<int64_t>* best = nullptr;
  int64_t best_position = std::numeric_limits<int64_t>::max();
  for (auto& [key, queue] : queues_) {
    if (queue.empty() || key.kind != caps.target().kind()) continue;
    if (!key.device.empty() && key.device != caps.target().device()) continue;
    if (key.limits[0] > has[0] || key.limits[1] > has[1] || key.limits[2] > has[2]) continue;
    const int64_t position = jobs_.at(queue.front()).position;
    if (position < best_position) {
      best = &queue;
      best_position = position;
    }
  }
  return best;
}

std::optional<tlm::v1::TargetLimits> Dispatcher::TightestLimits(
    const tlm::v1::Target& target) const {
  absl::MutexLock lock(&mu_);
  std::optional<tlm::v1::TargetLimits> tightest;
  for (const auto& [id, worker] : workers_) {
    const tlm::v1::WorkerCapabilities& caps = worker.registration.capabilities();
    if (!caps.has_gpu() || caps.target().kind() != target.kind()) continue;
    if (!target.device().empty() && caps.target().device() != target.device()) continue;
    const tlm::v1::TargetLimits limits = WorkerLimits(caps);
    if (!tightest.has_value()) {
      tightest = limits;
      continue;
    }
    tightest->set_max_threads_per_block(
        std::min(tightest->max_threads_per_block(), limits.max_threads_per_block()));
    tightest->set_max_shared_bytes_per_block(
        std::min(tightest->max_shared_bytes_per_block(), limits.max_shared_bytes_per_block()));
    tightest->set_max_registers_per_block(
        std::min(tightest->max_registers_per_block(), limits.max_registers_per_block()));
  }
  return tightest;
}

void Dispatcher::Assign() {
  if (workers_.empty()) return;
  while (true) {
    bool assigned = false;
    // One job per worker per pass, starting after the last worker served.
    std::vector<std::string> order;
    order.reserve(workers_.size());
    for (auto it = workers_.upper_bound(last_served_); it != workers_.end(); ++it) {
      order.push_back(it->first);
    }
    for (auto it = workers_.begin(); it != workers_.end() && order.size() < workers_.size(); ++it) {
      order.push_back(it->first);
    }
    for (const std::string& id : order) {
      Worker& worker = workers_.at(id);
      if (worker.credits <= 0) continue;
      std::deque<int64_t>* queue = QueueFor(worker);
      if (queue == nullptr) continue;
      Entry& entry = jobs_.at(queue->front());
      queue->pop_front();
      ++entry.attempts;
      const absl::Duration lease = LeaseFor(entry.job.options);
      const absl::Time now = options_.clock();
      entry.lease = Lease{next_lease_id_++, id, now, now + lease};
      entry.last_leased_at = now;
      --worker.credits;
      worker.leased.insert(entry.job.job_id);
      tlm::v1::MeasureJob message;
      message.set_job_id(entry.job.job_id);
      message.set_lease_id(entry.lease->lease_id);
      *message.mutable_program() = entry.job.program;
      *message.mutable_options() = entry.job.options;
      message.set_attempt(entry.attempts);
      message.set_lease_ms(absl::ToInt64Milliseconds(lease));
      spdlog::debug("job {} leased to {} (lease {}, attempt {})", entry.job.job_id, id,
                    message.lease_id(), message.attempt());
      worker.session->Deliver(std::move(message));
      last_served_ = id;
      assigned = true;
    }
    if (!assigned) return;
  }
}

void Dispatcher::Tick() {
  std::vector<JobOutcome> outcomes;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.clock();
    std::vector<std::string> silent;
    for (const auto& [id, worker] : workers_) {
      if (now - worker.last_heartbeat > kSilentIntervals * options_.heartbeat_interval) {
        silent.push_back(id);
      }
    }
    for (const std::string& id : silent) {
      spdlog::warn("worker {} sent nothing for {} heartbeat intervals; dropping it", id,
                   kSilentIntervals);
      DropWorker(id, absl::StrCat("worker ", id, " went silent"), outcomes);
    }
    // Every lease belongs to a connected worker, so only their jobs can expire.
    std::vector<int64_t> expired_ids;
    for (auto& [id, worker] : workers_) {
      for (int64_t job_id : worker.leased) {
        if (jobs_.at(job_id).lease->deadline < now) expired_ids.push_back(job_id);
      }
    }
    // Requeued at the front in reverse queue order, so they keep their order.
    std::sort(expired_ids.begin(), expired_ids.end(),
              [this](int64_t a, int64_t b) { return jobs_.at(a).position > jobs_.at(b).position; });
    for (int64_t job_id : expired_ids) {
      const std::string worker_id = jobs_.at(job_id).lease->worker_id;
      workers_.at(worker_id).leased.erase(job_id);
      LoseLease(job_id, absl::StrCat("lease expired on worker ", worker_id), outcomes);
    }
    Assign();
  }
  Deliver(outcomes);
}

void Dispatcher::Start() {
  if (ticker_.joinable()) return;
  stop_ticker_ = std::make_unique<absl::Notification>();
  ticker_ = std::thread([this] {
    while (!stop_ticker_->WaitForNotificationWithTimeout(absl::Milliseconds(200))) Tick();
  });
}

void Dispatcher::Stop() {
  if (!ticker_.joinable()) return;
  stop_ticker_->Notify();
  ticker_.join();
}

std::vector<tlm::v1::QueueStatus> Dispatcher::Queues() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, tlm::v1::QueueStatus> by_kind;
  for (const auto& [key, queue] : queues_) {
    tlm::v1::QueueStatus& q = by_kind[key.kind];
    q.set_queued(q.queued() + static_cast<int32_t>(queue.size()));
  }
  for (const auto& [id, worker] : workers_) {
    for (int64_t job_id : worker.leased) {
      tlm::v1::QueueStatus& q = by_kind[jobs_.at(job_id).job.target.kind()];
      q.set_leased(q.leased() + 1);
    }
  }
  std::vector<tlm::v1::QueueStatus> out;
  out.reserve(by_kind.size());
  for (auto& [kind, q] : by_kind) {
    q.set_target_kind(kind);
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<tlm::v1::WorkerInfo> Dispatcher::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<tlm::v1::WorkerInfo> out;
  out.reserve(workers_.size());
  for (const auto& [id, worker] : workers_) {
    tlm::v1::WorkerInfo info;
    info.set_worker_id(id);
    info.set_name(worker.registration.name());
    *info.mutable_capabilities() = worker.registration.capabilities();
    info.set_credits(static_cast<int32_t>(
        std::min<int64_t>(worker.credits, std::numeric_limits<int32_t>::max())));
    info.set_in_flight(static_cast<int32_t>(worker.leased.size()));
    info.set_connected_unix_ms(absl::ToUnixMillis(worker.connected_at));
    info.set_last_heartbeat_unix_ms(absl::ToUnixMillis(worker.last_heartbeat));
    info.set_results(worker.results);
    info.set_run_seconds(worker.run_seconds);
    info.set_build_seconds(worker.build_seconds);
    out.push_back(std::move(info));
  }
  return out;
}

size_t Dispatcher::pending() const {
  absl::MutexLock lock(&mu_);
  return jobs_.size();
}

}  // namespace tlm::server

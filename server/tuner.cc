#include "server/tuner.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "program/program.h"
#include "spdlog/spdlog.h"

namespace tlm::server {
namespace {

constexpr int kMaxTrials = 100000;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

template <typename T>
absl::Status CheckRange(absl::string_view field, T value, T max) {
  if (value < 0 || value > max) {
    return Invalid(field, absl::StrCat("must be between 0 and ", max, ", got ", value));
  }
  return absl::OkStatus();
}

DurationStats Summarize(std::vector<double> ms) {
  DurationStats stats;
  if (ms.empty()) return stats;
  std::sort(ms.begin(), ms.end());
  stats.jobs = static_cast<int64_t>(ms.size());
  stats.median_ms = ms[ms.size() / 2];
  stats.p90_ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  stats.max_ms = ms.back();
  return stats;
}

bool Ended(tlm::v1::TaskState state) { return state != tlm::v1::TASK_STATE_RUNNING; }

// Seeds are mixed with the number of programs already stored so a resumed
// task does not replay the proposals it made before the restart.
uint64_t ResumeSeed(uint64_t seed, size_t stored) {
  return seed ^ (0x9e3779b97f4a7c15ULL * (stored + 1));
}

// Tells a sampler how one of its programs did.
void Observe(Sampler& sampler, const tlm::v1::Program& proto, const tlm::v1::MeasureResult& r) {
  absl::StatusOr<program::Program> p = program::ProgramFromProto(proto);
  if (!p.ok()) return;
  sampler.Observe(*p, r.error_kind() == tlm::v1::ERROR_KIND_NONE
                          ? std::optional<double>(r.median_seconds())
                          : std::nullopt);
}

}  // namespace

absl::Status ValidateSubmitRequest(const tlm::v1::SubmitTaskRequest& request) {
  if (request.name().size() > 200) return Invalid("name", "longer than 200 characters");
  absl::StatusOr<program::Workload> workload = program::WorkloadFromProto(request.workload());
  if (!workload.ok()) return workload.status();
  const std::string& kind = request.target().kind();
  const std::string known = absl::StrJoin(program::TargetKinds(), ", ");
  if (kind.empty()) return Invalid("target.kind", absl::StrCat("missing (known: ", known, ")"));
  if (std::find(program::TargetKinds().begin(), program::TargetKinds().end(), kind) ==
      program::TargetKinds().end()) {
    return Invalid("target.kind",
                   absl::StrCat("unknown target kind \"", kind, "\" (known: ", known, ")"));
  }
  if (request.target().has_limits()) {
    if (kind != "cuda") {
      return Invalid("target.limits", absl::StrCat("only cuda targets take limits, not ", kind));
    }
    if (absl::Status s = program::ValidateLimits(request.target().limits()); !s.ok()) return s;
  }
  // What the target cannot run (e.g. float16 on cpu).
  if (absl::Status s = program::Sketch::Make(*workload, kind).status(); !s.ok()) return s;
  if (request.num_trials() < 1 || request.num_trials() > kMaxTrials) {
    return Invalid("num_trials", absl::StrCat("must be between 1 and ", kMaxTrials, ", got ",
                                              request.num_trials()));
  }
  const tlm::v1::MeasureOptions& m = request.measure();
  for (absl::Status s : {
           CheckRange("measure.repeat", m.repeat(), 1000),
           CheckRange("measure.number", m.number(), 1000000),
           CheckRange("measure.min_repeat_ms", m.min_repeat_ms(), 10000.0),
           CheckRange("measure.build_timeout_s", m.build_timeout_s(), 3600.0),
           CheckRange("measure.run_timeout_s", m.run_timeout_s(), 3600.0),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::optional<tlm::v1::TaskEvent> TaskWatch::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty() || closed_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (events_.empty()) return std::nullopt;
  tlm::v1::TaskEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

bool TaskWatch::done() const {
  absl::MutexLock lock(&mu_);
  return closed_ && events_.empty();
}

void TaskWatch::Push(tlm::v1::TaskEvent event, bool last) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  events_.push_back(std::move(event));
  closed_ = last;
}

Tuner::Tuner(Store* store, Dispatcher* dispatcher, Options options)
    : store_(store),
      dispatcher_(dispatcher),
      options_(std::move(options)),
      samplers_(options_.samplers != nullptr ? *options_.samplers : default_samplers_) {}

int64_t Tuner::NowMs() const { return absl::ToUnixMillis(options_.clock()); }

std::unique_ptr<Tuner::ActiveTask> Tuner::MakeActiveTask(const tlm::v1::Task& stored,
                                                         std::unique_ptr<Sampler> sampler) {
  auto task = std::make_unique<ActiveTask>();
  task->id = stored.id();
  task->num_trials = stored.num_trials();
  task->target = stored.target();
  task->measure = stored.measure();
  task->sampler = std::move(sampler);
  task->done = stored.trials_done();
  return task;
}

Job Tuner::MakeJob(const ActiveTask& task, int64_t program_id,
                   const tlm::v1::Program& program) const {
  Job job;
  job.job_id = program_id;
  job.task_id = task.id;
  job.target = task.target;
  job.program = program;
  job.options = task.measure;
  return job;
}

absl::Status Tuner::Activate(const tlm::v1::Task& t, std::vector<Job>& jobs) {
  absl::StatusOr<std::vector<std::string>> hashes = store_->ProgramHashes(t.id());
  if (!hashes.ok()) return hashes.status();
  absl::StatusOr<std::vector<StoredProgram>> unmeasured = store_->ListUnmeasuredPrograms(t.id());
  if (!unmeasured.ok()) return unmeasured.status();
  absl::StatusOr<program::Workload> workload = program::WorkloadFromProto(t.workload());
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      workload.ok() ? samplers_.Make(t.sampler(), *workload, t.target().kind(),
                                   ResumeSeed(t.seed(), hashes->size()),
                                   program::LimitsFromProto(t.target().limits()))
                    : workload.status();
  if (!sampler.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume: ", sampler.status().message()));
  }
  absl::StatusOr<std::vector<tlm::v1::Trial>> trials = store_->ListTrials(t.id());
  if (!trials.ok()) return trials.status();
  for (const tlm::v1::Trial& trial : *trials) Observe(**sampler, trial.program(), trial.result());
  std::unique_ptr<ActiveTask> task = MakeActiveTask(t, std::move(*sampler));
  task->hashes.insert(hashes->begin(), hashes->end());
  for (const StoredProgram& p : *unmeasured) {
    jobs.push_back(MakeJob(*task, p.program_id, p.program));
    ++task->outstanding;
  }
  absl::StatusOr<std::vector<Job>> more = TopUp(*task);
  if (!more.ok()) return more.status();
  jobs.insert(jobs.end(), more->begin(), more->end());
  spdlog::info("task {} active: {}/{} trials done, {} programs re-enqueued", t.id(), task->done,
               task->num_trials, unmeasured->size());
  ActiveTask& ref = *task;
  active_[t.id()] = std::move(task);
  MaybeFinish(ref);
  return absl::OkStatus();
}

absl::Status Tuner::Resume() {
  absl::StatusOr<std::vector<tlm::v1::Task>> running =
      store_->ListTasks(std::numeric_limits<int>::max(), {tlm::v1::TASK_STATE_RUNNING});
  if (!running.ok()) return running.status();
  std::vector<Job> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (const tlm::v1::Task& t : *running) {
      absl::Status s = Activate(t, jobs);
      if (absl::IsFailedPrecondition(s)) {
        // A task this server cannot continue must not keep the others from resuming.
        spdlog::error("task {} {}", t.id(), std::string(s.message()));
        s = store_->SetTaskState(t.id(), tlm::v1::TASK_STATE_FAILED, std::string(s.message()),
                                 NowMs());
      }
      if (!s.ok()) return s;
    }
  }
  for (Job& job : jobs) dispatcher_->Enqueue(std::move(job));
  return absl::OkStatus();
}

absl::StatusOr<tlm::v1::Task> Tuner::Extend(int64_t task_id, int32_t more_trials) {
  std::vector<Job> jobs;
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_) return absl::UnavailableError("tlmd is shutting down");
    absl::StatusOr<tlm::v1::Task> stored = store_->GetTask(task_id);
    if (!stored.ok()) return stored.status();
    if (more_trials < 1 || more_trials > kMaxTrials - stored->num_trials()) {
      return Invalid("more_trials",
                     absl::StrCat("must be between 1 and ", kMaxTrials - stored->num_trials(),
                                  " for task ", task_id, " (", stored->num_trials(),
                                  " trials of at most ", kMaxTrials, "), got ", more_trials));
    }
    const int32_t total = stored->num_trials() + more_trials;
    auto it = active_.find(task_id);
    if (it == active_.end() && stored->state() != tlm::v1::TASK_STATE_SUCCEEDED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", task_id, " is ", tlm::v1::TaskState_Name(stored->state()),
          "; only running or succeeded tasks can be extended"));
    }
    if (absl::Status s = store_->SetNumTrials(task_id, total, NowMs()); !s.ok()) return s;
    if (it != active_.end()) {
      it->second->num_trials = total;
      absl::StatusOr<std::vector<Job>> more = TopUp(*it->second);
      if (!more.ok()) return more.status();
      jobs = *std::move(more);
    } else {
      if (absl::Status s = store_->SetTaskState(task_id, tlm::v1::TASK_STATE_RUNNING, "", NowMs());
          !s.ok()) {
        return s;
      }
      stored->set_num_trials(total);
      stored->set_state(tlm::v1::TASK_STATE_RUNNING);
      if (absl::Status s = Activate(*stored, jobs); !s.ok()) {
        // Back to where it was: the results are all there.
        (void)store_->SetTaskState(task_id, tlm::v1::TASK_STATE_SUCCEEDED, "", NowMs());
        return s;
      }
    }
    spdlog::info("task {} extended by {} to {} trials", task_id, more_trials, total);
  }
  for (Job& job : jobs) dispatcher_->Enqueue(std::move(job));
  return store_->GetTask(task_id);
}

absl::Status Tuner::Check(const tlm::v1::SubmitTaskRequest& request) const {
  if (absl::Status s = ValidateSubmitRequest(request); !s.ok()) return s;
  absl::StatusOr<program::Workload> workload = program::WorkloadFromProto(request.workload());
  if (!workload.ok()) return workload.status();
  return samplers_
      .Make(request.sampler(), *workload, request.target().kind(), request.seed(),
            program::LimitsFromProto(request.target().limits()))
      .status();
}

absl::StatusOr<tlm::v1::Task> Tuner::Submit(tlm::v1::SubmitTaskRequest request,
                                            const std::string& key) {
  if (absl::Status s = ValidateSubmitRequest(request); !s.ok()) return s;
  if (request.sampler().empty()) request.set_sampler(samplers_.names().front());
  if (request.seed() == 0) {
    request.set_seed(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) | 1);
  }
  if (request.target().kind() == "cuda") {
    *request.mutable_target()->mutable_limits() = LimitsFor(request.target());
  }
  absl::StatusOr<program::Workload> workload = program::WorkloadFromProto(request.workload());
  if (!workload.ok()) return workload.status();
  const program::TargetLimits limits = program::LimitsFromProto(request.target().limits());
  absl::StatusOr<std::unique_ptr<Sampler>> sampler = samplers_.Make(
      request.sampler(), *workload, request.target().kind(), request.seed(), limits);
  if (!sampler.ok()) return sampler.status();

  std::vector<Job> jobs;
  absl::StatusOr<tlm::v1::Task> created;
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_) return absl::UnavailableError("tlmd is shutting down; submit again later");
    if (!key.empty()) {
      absl::StatusOr<std::optional<tlm::v1::Task>> existing = store_->FindTask(key);
      if (!existing.ok()) return existing.status();
      if (existing->has_value()) return **existing;
    }
    created = store_->CreateTask(request, NowMs(), key);
    if (!created.ok()) return created.status();
    std::unique_ptr<ActiveTask> task = MakeActiveTask(*created, std::move(*sampler));
    absl::StatusOr<std::vector<Job>> first = TopUp(*task);
    if (!first.ok()) {
      (void)store_->SetTaskState(task->id, tlm::v1::TASK_STATE_FAILED,
                                 std::string(first.status().message()), NowMs());
      return first.status();
    }
    jobs = std::move(*first);
    spdlog::info("task {} submitted: {} on {}{}, {} trials, sampler {}", task->id,
                 program::WorkloadSummary(*workload), request.target().kind(),
                 request.target().has_limits()
                     ? absl::StrCat(" (", program::LimitsSummary(limits), ")")
                     : std::string(),
                 request.num_trials(), request.sampler());
    ActiveTask& ref = *task;
    active_[task->id] = std::move(task);
    MaybeFinish(ref);
  }
  for (Job& job : jobs) dispatcher_->Enqueue(std::move(job));
  return created;
}

tlm::v1::TargetLimits Tuner::LimitsFor(const tlm::v1::Target& target) const {
  if (target.has_limits()) {
    return program::LimitsToProto(program::LimitsFromProto(target.limits()));
  }
  return dispatcher_->TightestLimits(target).value_or(program::LimitsToProto({}));
}

absl::StatusOr<std::vector<Job>> Tuner::TopUp(ActiveTask& task) {
  std::vector<Job> jobs;
  if (!accepting_ || task.exhausted) return jobs;
  const int want = std::min(options_.window_per_task - task.outstanding,
                            task.num_trials - task.done - task.outstanding);
  if (want <= 0) return jobs;
  std::vector<program::Program> programs = task.sampler->Propose(want, task.hashes);
  if (static_cast<int>(programs.size()) < want) task.exhausted = true;
  for (const program::Program& p : programs) {
    tlm::v1::Program proto = program::ProgramToProto(p);
    absl::StatusOr<AddedProgram> added = store_->AddProgram(task.id, proto);
    if (!added.ok()) return added.status();
    task.hashes.insert(proto.hash());
    if (!added->inserted) continue;  // stored by an earlier run; its result is already counted
    jobs.push_back(MakeJob(task, added->program_id, proto));
    ++task.outstanding;
  }
  return jobs;
}

void Tuner::MaybeFinish(ActiveTask& task) {
  if (task.outstanding > 0) return;
  if (task.done < task.num_trials && !task.exhausted) return;
  absl::StatusOr<tlm::v1::Task> snapshot = store_->GetTask(task.id);
  if (!snapshot.ok()) {
    spdlog::error("task {}: cannot read its results: {}", task.id, snapshot.status().ToString());
    return;
  }
  if (snapshot->trials_done() > 0 && snapshot->trials_failed() == snapshot->trials_done()) {
    Finish(task.id, tlm::v1::TASK_STATE_FAILED,
           absl::StrCat("all ", snapshot->trials_done(), " trials failed"));
    return;
  }
  std::string message;
  if (task.done < task.num_trials) {
    message = absl::StrCat("search space exhausted after ", task.done, " distinct programs");
  }
  Finish(task.id, tlm::v1::TASK_STATE_SUCCEEDED, message);
}

void Tuner::Finish(int64_t task_id, tlm::v1::TaskState state, const std::string& message) {
  auto it = active_.find(task_id);
  if (it == active_.end()) return;
  if (absl::Status s = store_->SetTaskState(task_id, state, message, NowMs()); !s.ok()) {
    spdlog::error("task {}: cannot store its end: {}", task_id, s.ToString());
  }
  absl::StatusOr<tlm::v1::Task> snapshot = store_->GetTask(task_id);
  if (snapshot.ok()) {
    Notify(*it->second, *snapshot, nullptr, /*last=*/true);
    spdlog::info("task {} {}: {}/{} trials, {} failed, best {:.3f} ms{}{}", task_id,
                 tlm::v1::TaskState_Name(state), snapshot->trials_done(), snapshot->num_trials(),
                 snapshot->trials_failed(), snapshot->best_seconds() * 1e3,
                 message.empty() ? "" : "; ", message);
  }
  active_.erase(it);
  if (options_.on_ended) options_.on_ended(task_id);
}

void Tuner::Notify(ActiveTask& task, const tlm::v1::Task& snapshot, const tlm::v1::Trial* trial,
                   bool last) {
  tlm::v1::TaskEvent event;
  *event.mutable_task() = snapshot;
  if (trial != nullptr) *event.mutable_trial() = *trial;
  auto& watchers = task.watchers;
  watchers.erase(std::remove_if(watchers.begin(), watchers.end(),
                                [&](const std::weak_ptr<TaskWatch>& w) {
                                  std::shared_ptr<TaskWatch> watch = w.lock();
                                  if (watch == nullptr) return true;
                                  watch->Push(event, last);
                                  return false;
                                }),
                 watchers.end());
}

void Tuner::OnOutcome(const JobOutcome& outcome) {
  MeasurementRecord record;
  record.program_id = outcome.job.job_id;
  record.worker_id = outcome.worker_id;
  record.attempt = outcome.attempt;
  record.result = outcome.result;
  record.measured_unix_ms = absl::ToUnixMillis(outcome.completed_at);

  std::vector<Job> jobs;
  {
    absl::MutexLock lock(&mu_);
    absl::Status stored = store_->RecordMeasurement(record);
    if (absl::IsAlreadyExists(stored)) {
      spdlog::info("program {} already has a stored result; ignoring the one from {}",
                   record.program_id, record.worker_id);
      return;
    }
    if (!stored.ok()) {
      // The program stays unmeasured in the store and is re-enqueued by Resume.
      spdlog::error("cannot store the result of program {}: {}", record.program_id,
                    stored.ToString());
      return;
    }
    if (options_.on_stored) options_.on_stored(record.result);
    const double worker_ms = (outcome.result.build_seconds() + outcome.result.run_seconds()) * 1e3;
    const absl::Time stored_at = options_.clock();
    if (!outcome.worker_id.empty()) {
      dispatch_ms_.push_back(
          std::max(0.0, absl::ToDoubleMilliseconds(stored_at - outcome.leased_at) - worker_ms));
    }
    enqueue_to_stored_ms_.push_back(
        std::max(0.0, absl::ToDoubleMilliseconds(stored_at - outcome.enqueued_at) - worker_ms));

    auto it = active_.find(outcome.job.task_id);
    if (it == active_.end()) return;  // cancelled or ended: the result is kept, nothing moves
    ActiveTask& task = *it->second;
    --task.outstanding;
    ++task.done;
    Observe(*task.sampler, outcome.job.program, outcome.result);
    absl::StatusOr<std::vector<Job>> more = TopUp(task);
    if (more.ok()) {
      jobs = std::move(*more);
    } else {
      spdlog::error("task {}: cannot store new programs: {}", task.id, more.status().ToString());
    }
    tlm::v1::Trial trial;
    trial.set_program_id(record.program_id);
    *trial.mutable_program() = outcome.job.program;
    *trial.mutable_result() = outcome.result;
    trial.set_worker_id(record.worker_id);
    trial.set_measured_unix_ms(record.measured_unix_ms);
    if (absl::StatusOr<tlm::v1::Task> snapshot = store_->GetTask(task.id); snapshot.ok()) {
      Notify(task, *snapshot, &trial, /*last=*/false);
    }
    MaybeFinish(task);
  }
  for (Job& job : jobs) dispatcher_->Enqueue(std::move(job));
}

absl::StatusOr<tlm::v1::Task> Tuner::Get(int64_t task_id) { return store_->GetTask(task_id); }

absl::StatusOr<std::vector<tlm::v1::Task>> Tuner::List(
    int limit, const std::vector<tlm::v1::TaskState>& states) {
  return store_->ListTasks(limit, states);
}

absl::StatusOr<tlm::v1::Trial> Tuner::Best(int64_t task_id) { return store_->GetBest(task_id); }

absl::StatusOr<tlm::v1::Task> Tuner::Cancel(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<tlm::v1::Task> task = store_->GetTask(task_id);
  if (!task.ok() || Ended(task->state())) return task;
  const int dropped = dispatcher_->CancelTask(task_id);
  spdlog::info("task {} cancelled; {} queued programs dropped", task_id, dropped);
  Finish(task_id, tlm::v1::TASK_STATE_CANCELLED, "cancelled by a client");
  return store_->GetTask(task_id);
}

absl::StatusOr<std::shared_ptr<TaskWatch>> Tuner::Watch(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<tlm::v1::Task> task = store_->GetTask(task_id);
  if (!task.ok()) return task.status();
  auto watch = std::make_shared<TaskWatch>();
  tlm::v1::TaskEvent first;
  *first.mutable_task() = *task;
  auto it = active_.find(task_id);
  watch->Push(std::move(first), /*last=*/it == active_.end());
  if (it != active_.end()) it->second->watchers.push_back(watch);
  return watch;
}

void Tuner::StopAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
  int dropped = 0;
  for (auto& [id, task] : active_) {
    const int n = dispatcher_->CancelTask(id);
    task->outstanding -= n;
    dropped += n;
  }
  spdlog::info("no longer accepting tasks; {} queued programs left for the next start", dropped);
}

OverheadStats Tuner::Overhead() const {
  absl::MutexLock lock(&mu_);
  return {Summarize(dispatch_ms_), Summarize(enqueue_to_stored_ms_)};
}

}  // namespace tlm::server

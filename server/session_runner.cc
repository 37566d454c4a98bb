#include "server/session_runner.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "program/networks.h"
#include "program/workload.h"
#include "server/task_scheduler.h"
#include "spdlog/spdlog.h"

namespace tlm::server {
namespace {

constexpr int kMaxBudget = 1000000;
constexpr int kMaxTrialsPerRound = 10000;
constexpr int kMaxTasksPerRound = 1000;
constexpr int kMaxTrialsPerTask = 100000;  // a task's trial limit
constexpr int64_t kMaxWeight = 1000000;
constexpr int kDefaultTrialsPerRound = 16;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return Invalid(field, absl::StrCat("must be between ", min, " and ", max, ", got ", value));
  }
  return absl::OkStatus();
}

bool Ended(tlm::v1::SessionState state) { return state != tlm::v1::SESSION_STATE_RUNNING; }

// Fills in the defaults and a network's workloads; checks everything but
// the workloads against the target (the tuner does that).
absl::Status Normalize(tlm::v1::StartSessionRequest& r) {
  if (r.name().size() > 200) return Invalid("name", "longer than 200 characters");
  if (!r.network().empty() && r.workloads_size() > 0) {
    return Invalid("network", "give a network or workloads, not both");
  }
  if (r.network().empty() && r.workloads_size() == 0) {
    return Invalid("workloads", "missing (give workloads or a network)");
  }
  if (r.dtype() != tlm::v1::DTYPE_UNSPECIFIED && r.network().empty()) {
    return Invalid("dtype", "applies to a network's workloads; give each workload its own");
  }
  if (!r.network().empty()) {
    absl::StatusOr<std::vector<program::NetworkTask>> tasks = program::NetworkTasks(r.network());
    if (!tasks.ok()) return Invalid("network", tasks.status().message());
    for (const program::NetworkTask& t : *tasks) {
      tlm::v1::SessionWorkload* w = r.add_workloads();
      w->set_name(t.name);
      *w->mutable_workload() = program::WorkloadToProto(t.workload);
      if (r.dtype() != tlm::v1::DTYPE_UNSPECIFIED) w->mutable_workload()->set_dtype(r.dtype());
      w->set_weight(t.weight);
    }
  }
  if (r.name().empty()) r.set_name(r.network().empty() ? "session" : r.network());
  if (r.trials_per_round() == 0) r.set_trials_per_round(kDefaultTrialsPerRound);
  if (r.tasks_per_round() == 0) r.set_tasks_per_round(1);
  for (absl::Status s : {
           CheckRange("budget", r.budget(), 1, kMaxBudget),
           CheckRange("trials_per_round", r.trials_per_round(), 1, kMaxTrialsPerRound),
           CheckRange("tasks_per_round", r.tasks_per_round(), 1, kMaxTasksPerRound),
           CheckRange("max_trials_per_task", r.max_trials_per_task(), 0, kMaxTrialsPerTask),
       }) {
    if (!s.ok()) return s;
  }
  if (r.max_trials_per_task() == 0) {
    r.set_max_trials_per_task(r.workloads_size() > 1
                                  ? std::max(r.trials_per_round(), r.budget() / 2)
                                  : std::min(r.budget(), kMaxTrialsPerTask));
  }
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < r.workloads_size(); ++i) {
    const tlm::v1::SessionWorkload& w = r.workloads(i);
    const std::string field = absl::StrCat("workloads[", i, "]");
    if (w.name().empty() || w.name().size() > 64) {
      return Invalid(field + ".name", "must be 1 to 64 characters");
    }
    if (!names.insert(w.name()).second) {
      return Invalid(field + ".name", absl::StrCat("\"", w.name(), "\" appears twice"));
    }
    if (absl::Status s = CheckRange(field + ".weight", w.weight(), 1, kMaxWeight); !s.ok()) {
      return s;
    }
  }
  if (r.seed() == 0) r.set_seed(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) | 1);
  return absl::OkStatus();
}

// The key of the session's task for workload `index`: "tuned" or
// "untuned" (Tuner::Submit). A session that restarts after submitting a
// task but before storing its id finds it again by this key.
std::string TaskKey(const tlm::v1::Session& session, int index, absl::string_view role) {
  return absl::StrCat("session/", session.id(), "/", index, "/", role);
}

// The request of the task that tunes workload `index` (or, with sampler
// "default" and one trial, measures its untuned schedule).
tlm::v1::SubmitTaskRequest TaskRequest(const tlm::v1::Session& session, int index,
                                       const std::string& sampler, int32_t trials) {
  const tlm::v1::StartSessionRequest& r = session.request();
  tlm::v1::SubmitTaskRequest t;
  t.set_name(absl::StrCat(r.name(), "/", r.workloads(index).name()));
  *t.mutable_workload() = r.workloads(index).workload();
  *t.mutable_target() = r.target();
  t.set_num_trials(trials);
  t.set_sampler(sampler);
  t.set_seed((r.seed() ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(index + 1))) | 1);
  *t.mutable_measure() = r.measure();
  return t;
}

// Best latency after each measurement, in the order stored (0 before the
// first success).
std::vector<double> BestAfter(const std::vector<tlm::v1::Trial>& trials) {
  std::vector<double> curve;
  double best = 0;
  for (const tlm::v1::Trial& t : trials) {
    const tlm::v1::MeasureResult& r = t.result();
    if (r.error_kind() == tlm::v1::ERROR_KIND_NONE && r.median_seconds() > 0 &&
        (best == 0 || r.median_seconds() < best)) {
      best = r.median_seconds();
    }
    curve.push_back(best);
  }
  return curve;
}

// A task that cannot take more measurements: it failed or was cancelled, or
// it ended before its trial count (its space holds nothing new).
bool CannotGoOn(const tlm::v1::Task& task) {
  return task.state() == tlm::v1::TASK_STATE_FAILED ||
         task.state() == tlm::v1::TASK_STATE_CANCELLED ||
         (task.state() == tlm::v1::TASK_STATE_SUCCEEDED && task.trials_done() < task.num_trials());
}

// Sets the session's measured count and estimated latencies from its
// tuned and untuned tasks (absent tasks are default instances).
void Summarize(tlm::v1::Session& session, const std::vector<tlm::v1::Task>& tasks,
               const std::vector<tlm::v1::Task>& untuned) {
  int measured = 0, tasks_measured = 0, untuned_measured = 0;
  double estimated = 0, untuned_seconds = 0;
  for (int i = 0; i < session.tasks_size(); ++i) {
    const double weight = static_cast<double>(session.tasks(i).weight());
    measured += tasks[i].trials_done();
    if (tasks[i].best_seconds() > 0) {
      estimated += weight * tasks[i].best_seconds();
      ++tasks_measured;
    }
    if (untuned[i].best_seconds() > 0) {
      untuned_seconds += weight * untuned[i].best_seconds();
      ++untuned_measured;
    }
  }
  session.set_measured(measured);
  session.set_estimated_seconds(estimated);
  session.set_tasks_measured(tasks_measured);
  session.set_untuned_seconds(untuned_measured == session.tasks_size() ? untuned_seconds : 0);
}

}  // namespace

SessionRunner::SessionRunner(Store* store, Tuner* tuner, Options options)
    : store_(store), tuner_(tuner), options_(std::move(options)) {}

SessionRunner::~SessionRunner() { Stop(); }

int64_t SessionRunner::NowMs() const { return absl::ToUnixMillis(options_.clock()); }

void SessionRunner::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void SessionRunner::Stop() {
  {
    absl::MutexLock lock(&wake_mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SessionRunner::TaskEnded(int64_t) {
  absl::MutexLock lock(&wake_mu_);
  wake_ = true;
}

void SessionRunner::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&wake_mu_);
      wake_mu_.AwaitWithTimeout(
          absl::Condition(
              +[](SessionRunner* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->wake_mu_) {
                return r->wake_ || r->stop_;
              },
              this),
          options_.poll);
      if (stop_) return;
      wake_ = false;
    }
    absl::MutexLock lock(&mu_);
    absl::StatusOr<std::vector<tlm::v1::Session>> running =
        store_->ListSessions(0, {tlm::v1::SESSION_STATE_RUNNING});
    if (!running.ok()) {
      spdlog::error("cannot read the running sessions: {}", running.status().ToString());
      continue;
    }
    for (tlm::v1::Session& session : *running) {
      if (absl::Status s = Advance(session); !s.ok()) {
        spdlog::error("session {}: {}", session.id(), s.ToString());
      }
    }
  }
}

absl::StatusOr<tlm::v1::Session> SessionRunner::StartSession(tlm::v1::StartSessionRequest request) {
  if (absl::Status s = Normalize(request); !s.ok()) return s;
  tlm::v1::Session session;
  *session.mutable_request() = std::move(request);
  for (int i = 0; i < session.request().workloads_size(); ++i) {
    const tlm::v1::SessionWorkload& w = session.request().workloads(i);
    if (absl::Status s = tuner_->Check(TaskRequest(session, i, session.request().sampler(), 1));
        !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("workloads[", i, "] (", w.name(), "): ",
                                                 s.message()));
    }
    tlm::v1::SessionTask* task = session.add_tasks();
    task->set_name(w.name());
    *task->mutable_workload() = w.workload();
    task->set_weight(w.weight());
  }
  session.set_state(tlm::v1::SESSION_STATE_RUNNING);
  session.set_created_unix_ms(NowMs());
  session.set_updated_unix_ms(session.created_unix_ms());

  absl::MutexLock lock(&mu_);
  absl::StatusOr<int64_t> id = store_->CreateSession(session);
  if (!id.ok()) return id.status();
  session.set_id(*id);
  spdlog::info("session {} started: {}, {} workloads on {}, budget {} in rounds of {} per task",
               session.id(), session.request().name(), session.tasks_size(),
               session.request().target().kind(), session.request().budget(),
               session.request().trials_per_round());
  // The first round now, so the answer shows it; a failure here (tlmd
  // shutting down) leaves the session to the next start.
  if (absl::Status s = Advance(session); !s.ok()) {
    spdlog::warn("session {}: first round not started: {}", session.id(), s.ToString());
  }
  return session;
}

absl::StatusOr<tlm::v1::Session> SessionRunner::Get(int64_t session_id) {
  return store_->GetSession(session_id);
}

absl::StatusOr<std::vector<tlm::v1::Session>> SessionRunner::List(int limit) {
  return store_->ListSessions(limit, {});
}

absl::StatusOr<tlm::v1::Session> SessionRunner::Cancel(int64_t session_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<tlm::v1::Session> session = store_->GetSession(session_id);
  if (!session.ok() || Ended(session->state())) return session;
  if (absl::Status s = End(*session, tlm::v1::SESSION_STATE_CANCELLED, "cancelled by a client");
      !s.ok()) {
    return s;
  }
  session->set_updated_unix_ms(NowMs());
  if (absl::Status s = store_->UpdateSession(*session); !s.ok()) return s;
  return session;
}

absl::Status SessionRunner::Advance(tlm::v1::Session& session) {
  const tlm::v1::Session before = session;
  std::optional<tlm::v1::SessionRound> ended;
  // What changed is stored even after an error, so no task started for the
  // session is forgotten.
  const absl::Status advanced = Step(session, ended);
  session.set_updated_unix_ms(before.updated_unix_ms());
  if (session.SerializeAsString() == before.SerializeAsString()) return advanced;
  session.set_updated_unix_ms(NowMs());
  if (absl::Status s = store_->UpdateSession(session); !s.ok()) return s;
  if (ended.has_value() && options_.on_round_end) options_.on_round_end(session.id(), *ended);
  return advanced;
}

absl::Status SessionRunner::Step(tlm::v1::Session& session,
                                 std::optional<tlm::v1::SessionRound>& ended) {
  const tlm::v1::StartSessionRequest& r = session.request();

  // Untuned schedules first (also those a restart interrupted).
  if (r.measure_untuned()) {
    for (int i = 0; i < session.tasks_size(); ++i) {
      if (session.tasks(i).untuned_task_id() != 0) continue;
      absl::StatusOr<tlm::v1::Task> untuned =
          tuner_->Submit(TaskRequest(session, i, "default", 1), TaskKey(session, i, "untuned"));
      if (!untuned.ok()) return untuned.status();
      session.mutable_tasks(i)->set_untuned_task_id(untuned->id());
    }
  }

  std::vector<tlm::v1::Task> tasks(session.tasks_size());
  std::vector<tlm::v1::Task> untuned(session.tasks_size());
  bool untuned_running = false;
  for (int i = 0; i < session.tasks_size(); ++i) {
    const tlm::v1::SessionTask& t = session.tasks(i);
    const std::pair<int64_t, tlm::v1::Task*> lookups[] = {{t.task_id(), &tasks[i]},
                                                          {t.untuned_task_id(), &untuned[i]}};
    for (auto [id, out] : lookups) {
      if (id == 0) continue;
      absl::StatusOr<tlm::v1::Task> got = tuner_->Get(id);
      if (!got.ok()) return got.status();
      *out = *std::move(got);
    }
    untuned_running |= untuned[i].state() == tlm::v1::TASK_STATE_RUNNING;
  }

  Summarize(session, tasks, untuned);
  const int measured = session.measured();

  // Any tuning task still running, not only the last round's: one extended
  // just before a restart that kept the round from being stored must end
  // before the next round, or its measurements would be given twice.
  bool round_running = false;
  for (const tlm::v1::Task& t : tasks) round_running |= t.state() == tlm::v1::TASK_STATE_RUNNING;
  if (session.rounds_size() > 0 && session.rounds().rbegin()->ended_unix_ms() == 0) {
    tlm::v1::SessionRound& round = *session.mutable_rounds()->rbegin();
    if (!round_running) {
      round.set_ended_unix_ms(NowMs());
      ended = round;
      spdlog::info("session {} round {} done: {}/{} measurements, estimated latency {:.4f} ms",
                   session.id(), round.index(), measured, r.budget(),
                   session.estimated_seconds() * 1e3);
    }
  }

  if (!round_running) {
    absl::StatusOr<bool> started = false;
    if (measured < r.budget()) started = StartRound(session, tasks);
    if (!started.ok()) return started.status();
    if (!*started && !untuned_running) {
      const bool succeeded = session.tasks_measured() > 0;
      const std::string why =
          !succeeded ? "no task has a successful measurement"
          : measured >= r.budget()
              ? absl::StrCat("budget spent: ", measured, " measurements")
              : absl::StrCat("every task is at its cap or exhausted after ", measured,
                             " measurements");
      return End(session,
                 succeeded ? tlm::v1::SESSION_STATE_SUCCEEDED : tlm::v1::SESSION_STATE_FAILED,
                 why);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SessionRunner::StartRound(tlm::v1::Session& session,
                                               const std::vector<tlm::v1::Task>& tasks) {
  const tlm::v1::StartSessionRequest& r = session.request();
  std::vector<int> picks;
  std::vector<std::string> whys;
  for (int i = 0; i < session.tasks_size(); ++i) {
    if (session.tasks(i).task_id() != 0) continue;
    picks.push_back(i);
    whys.push_back(absl::StrCat(session.tasks(i).name(), ": not measured yet"));
  }
  if (picks.empty()) {
    std::vector<ScheduledTask> state(session.tasks_size());
    for (int i = 0; i < session.tasks_size(); ++i) {
      absl::StatusOr<std::vector<tlm::v1::Trial>> trials =
          store_->ListTrials(session.tasks(i).task_id());
      if (!trials.ok()) return trials.status();
      state[i] = {session.tasks(i).name(), session.tasks(i).weight(), BestAfter(*trials),
                  CannotGoOn(tasks[i])};
    }
    SchedulerOptions options;
    options.window = r.trials_per_round();
    options.cap = r.max_trials_per_task();
    for (int n = 0; n < r.tasks_per_round(); ++n) {
      const Choice choice = ChooseTask(state, options);
      if (choice.index < 0) break;
      picks.push_back(choice.index);
      whys.push_back(choice.why);
      state[choice.index].exhausted = true;  // once per round
    }
  }

  tlm::v1::SessionRound round;
  round.set_index(session.rounds_size() + 1);
  round.set_measured_before(session.measured());
  round.set_started_unix_ms(NowMs());
  int remaining = r.budget() - session.measured();
  for (size_t p = 0; p < picks.size() && remaining > 0; ++p) {
    tlm::v1::SessionTask& t = *session.mutable_tasks(picks[p]);
    const int done = tasks[picks[p]].trials_done();
    const int trials = std::min({r.trials_per_round(), remaining, r.max_trials_per_task() - done});
    if (trials <= 0) continue;
    if (t.task_id() == 0) {
      absl::StatusOr<tlm::v1::Task> created = tuner_->Submit(
          TaskRequest(session, picks[p], r.sampler(), trials), TaskKey(session, picks[p], "tuned"));
      if (!created.ok()) return created.status();
      t.set_task_id(created->id());
    } else {
      absl::StatusOr<tlm::v1::Task> extended = tuner_->Extend(t.task_id(), trials);
      if (!extended.ok()) return extended.status();
    }
    remaining -= trials;
    round.add_tasks(picks[p]);
    round.add_trials(trials);
    round.add_why(whys[p]);
    spdlog::info("session {} round {}: {} measurements for task {} ({})", session.id(),
                 round.index(), trials, t.task_id(), whys[p]);
  }
  if (round.tasks().empty()) return false;
  *session.add_rounds() = std::move(round);
  return true;
}

absl::Status SessionRunner::End(tlm::v1::Session& session, tlm::v1::SessionState state,
                                const std::string& message) {
  for (const tlm::v1::SessionTask& t : session.tasks()) {
    for (int64_t id : {t.task_id(), t.untuned_task_id()}) {
      if (id == 0) continue;
      if (absl::Status s = tuner_->Cancel(id).status(); !s.ok()) return s;
    }
  }
  if (session.rounds_size() > 0 && session.rounds().rbegin()->ended_unix_ms() == 0) {
    session.mutable_rounds()->rbegin()->set_ended_unix_ms(NowMs());
  }
  session.set_state(state);
  session.set_message(message);
  spdlog::info("session {} {}: {}; estimated latency {:.4f} ms over {} of {} tasks", session.id(),
               tlm::v1::SessionState_Name(state), message, session.estimated_seconds() * 1e3,
               session.tasks_measured(), session.tasks_size());
  return absl::OkStatus();
}

}  // namespace tlm::server

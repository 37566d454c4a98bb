// Sessions on a real SQLite file, dispatcher and tuner, with the worker
// played by the test.
#include "server/session_runner.h"

#include <catch2/catch.hpp>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "program/program.h"
#include "program/workload.h"
#include "tests/server/sim_core.h"

namespace tlm::server {
namespace {

using testing::Core;
using testing::TempDbPath;

tlm::v1::SessionWorkload Dense(const std::string& name, int64_t size, int64_t weight) {
  tlm::v1::SessionWorkload w;
  w.set_name(name);
  *w.mutable_workload() = program::WorkloadToProto(program::DenseWorkload(size, size, size));
  w.set_weight(weight);
  return w;
}

// big (weight 10, about 4 ms), mid (weight 2, about 1 ms), small (weight 1,
// about 0.1 ms).
tlm::v1::StartSessionRequest ThreeDense(int budget, int per_round) {
  tlm::v1::StartSessionRequest r;
  *r.add_workloads() = Dense("big", 64, 10);
  *r.add_workloads() = Dense("mid", 32, 2);
  *r.add_workloads() = Dense("small", 16, 1);
  r.mutable_target()->set_kind("cpu");
  r.set_budget(budget);
  r.set_trials_per_round(per_round);
  r.set_seed(7);
  return r;
}

// A latency that depends on the workload and, a little, on the program.
double Latency(const std::string& text) {
  const double base = absl::StartsWith(text, "dense M 64 ")   ? 4e-3
                      : absl::StartsWith(text, "dense M 32 ") ? 1e-3
                                                              : 1e-4;
  const double noise =
      static_cast<double>(std::stoull(program::HashText(text).substr(0, 4), nullptr, 16)) / 65536;
  return base * (1 + noise);
}

// A session runner over `core`, woken by its tasks' ends, polling often.
struct Runner {
  explicit Runner(Core& core) {
    SessionRunner::Options options;
    options.poll = absl::Milliseconds(5);
    options.on_round_end = [this](int64_t, const tlm::v1::SessionRound& round) {
      absl::MutexLock lock(&mu);
      ended_rounds.push_back(round.index());
    };
    runner = std::make_unique<SessionRunner>(core.store.get(), core.tuner.get(), options);
    core.on_ended = [this](int64_t id) { runner->TaskEnded(id); };
  }

  // on_round_end's rounds, in order, once there are `count` of them (it is
  // called just after the session is stored).
  std::vector<int> EndedRounds(size_t count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      {
        absl::MutexLock lock(&mu);
        if (ended_rounds.size() >= count || absl::Now() > deadline) return ended_rounds;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  absl::Mutex mu;
  std::vector<int> ended_rounds ABSL_GUARDED_BY(mu);
  std::unique_ptr<SessionRunner> runner;
};

// Measures what the session's tasks ask for until the session ends.
tlm::v1::Session RunToEnd(Core& core, SessionRunner& runner, WorkerSession& worker, int64_t id) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    core.Answer(worker, Latency);
    tlm::v1::Session s = runner.Get(id).value();
    if (s.state() != tlm::v1::SESSION_STATE_RUNNING) return s;
    REQUIRE(absl::Now() < deadline);
    absl::SleepFor(absl::Milliseconds(1));
  }
}

// A core restarted on `path` as tlmd starts: the tuner resumes its tasks,
// then the session runner starts.
struct Restarted {
  explicit Restarted(const std::string& path) : core(path) {
    REQUIRE(core.tuner->Resume().ok());
    runner = std::make_unique<Runner>(core);
    runner->runner->Start();
  }

  // Connects a worker and measures for session `id` until it ends.
  tlm::v1::Session RunToEnd(int64_t id) {
    std::shared_ptr<WorkerSession> worker = core.ConnectWorker(2);
    return tlm::server::RunToEnd(core, *runner->runner, *worker, id);
  }

  Core core;
  std::unique_ptr<Runner> runner;  // stopped before `core` goes
};

TEST_CASE("a session measures every task first, then spends its budget where the network gains") {
  Core core(TempDbPath());
  Runner r(core);
  r.runner->Start();
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(4);
  tlm::v1::StartSessionRequest request = ThreeDense(/*budget=*/36, /*per_round=*/4);
  request.set_measure_untuned(true);
  const tlm::v1::Session started = r.runner->StartSession(request).value();
  // The answer already holds the first round: every task, never measured.
  REQUIRE(started.rounds_size() == 1);
  CHECK(std::vector<int>(started.rounds(0).tasks().begin(), started.rounds(0).tasks().end()) ==
        std::vector<int>{0, 1, 2});
  CHECK(started.rounds(0).why(2) == "small: not measured yet");
  CHECK(started.request().max_trials_per_task() == 18);  // half the budget
  for (const tlm::v1::SessionTask& t : started.tasks()) {
    CHECK(t.task_id() > 0);
    CHECK(t.untuned_task_id() > 0);
  }

  const tlm::v1::Session done = RunToEnd(core, *r.runner, *worker, started.id());
  INFO(done.DebugString());
  REQUIRE(done.state() == tlm::v1::SESSION_STATE_SUCCEEDED);
  CHECK(done.message() == "budget spent: 36 measurements");
  CHECK(done.measured() == 36);
  std::map<int, int> measured;  // by task index
  int before = 0;
  for (int i = 0; i < done.rounds_size(); ++i) {
    const tlm::v1::SessionRound& round = done.rounds(i);
    CHECK(round.index() == i + 1);
    CHECK(round.measured_before() == before);
    CHECK(round.ended_unix_ms() >= round.started_unix_ms());
    REQUIRE(round.trials_size() == round.tasks_size());
    CHECK(round.why_size() == round.tasks_size());
    if (i > 0) {
      // Once every task is measured, one task a round (tasks_per_round 1).
      REQUIRE(round.tasks_size() == 1);
      CHECK_THAT(round.why(0), Catch::Contains("expected gain"));
    }
    for (int t = 0; t < round.tasks_size(); ++t) {
      measured[round.tasks(t)] += round.trials(t);
      before += round.trials(t);
    }
  }
  CHECK(before == 36);
  // The heavy, slow task saves the network the most per measurement: it
  // gets measurements up to its cap (half the budget), the last round's
  // cut to fit.
  CHECK(measured[0] == 18);
  CHECK(measured[0] > measured[1]);
  CHECK(measured[1] >= measured[2]);
  // Every round's end was announced, once, in order.
  std::vector<int> all_rounds(done.rounds_size());
  std::iota(all_rounds.begin(), all_rounds.end(), 1);
  CHECK(r.EndedRounds(all_rounds.size()) == all_rounds);

  // The estimate is what the store says.
  double estimated = 0, untuned = 0;
  for (int i = 0; i < done.tasks_size(); ++i) {
    const tlm::v1::SessionTask& t = done.tasks(i);
    const tlm::v1::Task tuned = core.tuner->Get(t.task_id()).value();
    CHECK(tuned.state() == tlm::v1::TASK_STATE_SUCCEEDED);
    CHECK(tuned.trials_done() == measured[i]);
    estimated += static_cast<double>(t.weight()) * tuned.best_seconds();
    untuned += static_cast<double>(t.weight()) * core.tuner->Get(t.untuned_task_id())->best_seconds();
  }
  CHECK(done.estimated_seconds() == Approx(estimated));
  CHECK(done.untuned_seconds() == Approx(untuned));
  CHECK(done.tasks_measured() == 3);
  CHECK(core.store->Counts()->measurements == 36 + 3);
}

TEST_CASE("tasks at their cap end a session before its budget") {
  Core core(TempDbPath());
  Runner r(core);
  r.runner->Start();
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(4);
  tlm::v1::StartSessionRequest request = ThreeDense(/*budget=*/1000, /*per_round=*/4);
  request.set_max_trials_per_task(6);
  request.set_tasks_per_round(3);
  const int64_t id = r.runner->StartSession(request).value().id();
  const tlm::v1::Session done = RunToEnd(core, *r.runner, *worker, id);
  REQUIRE(done.state() == tlm::v1::SESSION_STATE_SUCCEEDED);
  CHECK(done.message() == "every task is at its cap or exhausted after 18 measurements");
  // Round 1: 4 each; round 2: the 2 left under the cap, all three at once.
  REQUIRE(done.rounds_size() == 2);
  CHECK(done.rounds(1).tasks_size() == 3);
  CHECK(core.store->Counts()->measurements == 18);
}

TEST_CASE("a session whose every measurement fails ends as failed") {
  Core core(TempDbPath());
  Runner r(core);
  r.runner->Start();
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(2);
  tlm::v1::StartSessionRequest request;
  *request.add_workloads() = Dense("only", 8, 1);
  request.mutable_target()->set_kind("cpu");
  request.set_budget(10);
  request.set_trials_per_round(2);
  const int64_t id = r.runner->StartSession(request).value().id();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  tlm::v1::Session s;
  do {
    REQUIRE(absl::Now() < deadline);
    while (std::optional<tlm::v1::MeasureJob> job = worker->NextJob(absl::Milliseconds(1))) {
      tlm::v1::JobResult result;
      result.set_job_id(job->job_id());
      result.set_lease_id(job->lease_id());
      result.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_WRONG_ANSWER);
      REQUIRE(core.dispatcher->Complete(worker->worker_id(), result));
      core.dispatcher->Grant(worker->worker_id(), 1);
    }
    s = r.runner->Get(id).value();
  } while (s.state() == tlm::v1::SESSION_STATE_RUNNING);
  CHECK(s.state() == tlm::v1::SESSION_STATE_FAILED);
  CHECK(s.message() == "no task has a successful measurement");
  CHECK(s.measured() == 2);  // its task failed whole in round 1 and was not chosen again
}

TEST_CASE("cancelling a session cancels its running tasks; an ended session stays as it is") {
  Core core(TempDbPath());
  Runner r(core);
  r.runner->Start();
  const tlm::v1::Session started = r.runner->StartSession(ThreeDense(100, 8)).value();
  const tlm::v1::Session cancelled = r.runner->Cancel(started.id()).value();
  CHECK(cancelled.state() == tlm::v1::SESSION_STATE_CANCELLED);
  CHECK(cancelled.message() == "cancelled by a client");
  for (const tlm::v1::SessionTask& t : cancelled.tasks()) {
    CHECK(core.tuner->Get(t.task_id())->state() == tlm::v1::TASK_STATE_CANCELLED);
  }
  CHECK(r.runner->Cancel(started.id())->updated_unix_ms() == cancelled.updated_unix_ms());
  CHECK(r.runner->Get(started.id())->state() == tlm::v1::SESSION_STATE_CANCELLED);
  CHECK(absl::IsNotFound(r.runner->Cancel(99).status()));
}

TEST_CASE("a restarted core resumes a session mid-round from the store") {
  const std::string path = TempDbPath();
  int64_t id = 0;
  {
    Core core(path);
    Runner r(core);
    r.runner->Start();
    std::shared_ptr<WorkerSession> worker = core.ConnectWorker(1);
    id = r.runner->StartSession(ThreeDense(/*budget=*/20, /*per_round=*/4)).value().id();
    REQUIRE(core.Answer(*worker, Latency, 5) == 5);
    // Shut down as tlmd does: sessions first, then the tuner.
    r.runner->Stop();
    core.tuner->StopAccepting();
  }
  Restarted restarted(path);
  Core& core = restarted.core;
  const tlm::v1::Session done = restarted.RunToEnd(id);
  REQUIRE(done.state() == tlm::v1::SESSION_STATE_SUCCEEDED);
  CHECK(done.measured() == 20);
  // 12; then big gets 4 and 2 (its cap: half the budget); then mid 2.
  CHECK(done.rounds_size() == 4);
  CHECK(core.store->Counts()->measurements == 20);
  CHECK(core.store->Counts()->programs == 20);
  CHECK(core.store->Counts()->tasks == 3);
}

TEST_CASE("a session restarted after starting tasks but before storing them takes them over") {
  const std::string path = TempDbPath();
  int64_t id = 0;
  std::vector<int64_t> task_ids;
  {
    Core core(path);
    Runner r(core);
    tlm::v1::StartSessionRequest request = ThreeDense(/*budget=*/20, /*per_round=*/4);
    request.set_measure_untuned(true);
    const tlm::v1::Session started = r.runner->StartSession(request).value();
    id = started.id();
    for (const tlm::v1::SessionTask& t : started.tasks()) {
      REQUIRE(t.task_id() != 0);
      REQUIRE(t.untuned_task_id() != 0);
      task_ids.push_back(t.task_id());
      task_ids.push_back(t.untuned_task_id());
    }
    // What the store holds when tlmd dies after submitting the first round's
    // tasks and before storing the session that names them.
    tlm::v1::Session lost = started;
    for (tlm::v1::SessionTask& t : *lost.mutable_tasks()) {
      t.set_task_id(0);
      t.set_untuned_task_id(0);
    }
    lost.clear_rounds();
    REQUIRE(core.store->UpdateSession(lost).ok());
    core.tuner->StopAccepting();
  }
  Restarted restarted(path);
  Core& core = restarted.core;
  const tlm::v1::Session done = restarted.RunToEnd(id);
  REQUIRE(done.state() == tlm::v1::SESSION_STATE_SUCCEEDED);
  std::vector<int64_t> after;
  for (const tlm::v1::SessionTask& t : done.tasks()) {
    after.push_back(t.task_id());
    after.push_back(t.untuned_task_id());
  }
  CHECK(after == task_ids);
  CHECK(core.store->Counts()->tasks == 6);
  CHECK(done.measured() == 20);
  CHECK(core.store->Counts()->measurements == 20 + 3);  // and one untuned each
}

TEST_CASE("a session restarted after extending a task but before storing the round stays in budget") {
  const std::string path = TempDbPath();
  int64_t id = 0;
  {
    Core core(path);
    Runner r(core);
    r.runner->Start();
    std::shared_ptr<WorkerSession> worker = core.ConnectWorker(4);
    id = r.runner->StartSession(ThreeDense(/*budget=*/16, /*per_round=*/4)).value().id();
    int answered = 0;
    while (answered < 12) answered += core.Answer(*worker, Latency, 12 - answered);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (r.runner->Get(id)->rounds_size() < 2) {
      REQUIRE(absl::Now() < deadline);
      absl::SleepFor(absl::Milliseconds(1));
    }
    r.runner->Stop();
    core.tuner->StopAccepting();
    // What the store holds when tlmd dies after extending round 2's task and
    // before storing the round.
    tlm::v1::Session lost = r.runner->Get(id).value();
    lost.mutable_rounds()->RemoveLast();
    REQUIRE(core.store->UpdateSession(lost).ok());
  }
  Restarted restarted(path);
  Core& core = restarted.core;
  // The runner looks at the session (every 5 ms) while the extended task
  // still has all its measurements to go.
  absl::SleepFor(absl::Milliseconds(100));
  const tlm::v1::Session done = restarted.RunToEnd(id);
  REQUIRE(done.state() == tlm::v1::SESSION_STATE_SUCCEEDED);
  CHECK(done.measured() == 16);
  CHECK(core.store->Counts()->measurements == 16);
}

TEST_CASE("invalid sessions name the field and store nothing") {
  Core core(TempDbPath());
  Runner r(core);
  auto error = [&](const tlm::v1::StartSessionRequest& request) {
    absl::StatusOr<tlm::v1::Session> s = r.runner->StartSession(request);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(s.status().message());
  };
  tlm::v1::StartSessionRequest both = ThreeDense(10, 2);
  both.set_network("bert_tiny");
  CHECK(error(both) == "network: give a network or workloads, not both");
  tlm::v1::StartSessionRequest none = ThreeDense(10, 2);
  none.clear_workloads();
  CHECK(error(none) == "workloads: missing (give workloads or a network)");
  none.set_network("alexnet");
  CHECK_THAT(error(none), Catch::StartsWith("network: unknown network \"alexnet\""));
  tlm::v1::StartSessionRequest budget = ThreeDense(0, 2);
  CHECK(error(budget) == "budget: must be between 1 and 1000000, got 0");
  tlm::v1::StartSessionRequest twice = ThreeDense(10, 2);
  twice.mutable_workloads(2)->set_name("big");
  CHECK(error(twice) == "workloads[2].name: \"big\" appears twice");
  tlm::v1::StartSessionRequest weight = ThreeDense(10, 2);
  weight.mutable_workloads(1)->set_weight(0);
  CHECK(error(weight) == "workloads[1].weight: must be between 1 and 1000000, got 0");
  tlm::v1::StartSessionRequest half = ThreeDense(10, 2);
  half.mutable_workloads(1)->mutable_workload()->set_dtype(tlm::v1::DTYPE_FLOAT16);
  CHECK_THAT(error(half), Catch::StartsWith("workloads[1] (mid): workload.dtype: float16"));
  tlm::v1::StartSessionRequest sampler = ThreeDense(10, 2);
  sampler.set_sampler("magic");
  CHECK_THAT(error(sampler), Catch::StartsWith("workloads[0] (big): sampler: unknown"));
  tlm::v1::StartSessionRequest target = ThreeDense(10, 2);
  target.mutable_target()->set_kind("tpu");
  CHECK_THAT(error(target), Catch::StartsWith("workloads[0] (big): target.kind: unknown"));
  tlm::v1::StartSessionRequest dtype = ThreeDense(10, 2);
  dtype.set_dtype(tlm::v1::DTYPE_FLOAT16);
  CHECK(error(dtype) == "dtype: applies to a network's workloads; give each workload its own");
  tlm::v1::StartSessionRequest half_network;
  half_network.set_network("bert_tiny");
  half_network.set_dtype(tlm::v1::DTYPE_FLOAT16);
  half_network.mutable_target()->set_kind("cpu");
  half_network.set_budget(8);
  CHECK_THAT(error(half_network),
             Catch::StartsWith("workloads[0] (qkv): workload.dtype: float16 is not supported on "
                               "target cpu"));
  CHECK(r.runner->List(0)->empty());
  CHECK(core.store->Counts()->tasks == 0);

  // A known network lists its workloads in the stored request.
  tlm::v1::StartSessionRequest network;
  network.set_network("bert_tiny");
  network.mutable_target()->set_kind("cpu");
  network.set_budget(8);
  const tlm::v1::Session s = r.runner->StartSession(network).value();
  CHECK(s.request().name() == "bert_tiny");
  CHECK(s.request().workloads_size() == 8);
  CHECK(s.request().trials_per_round() == 16);
  CHECK(s.request().tasks_per_round() == 1);
  CHECK(s.tasks(0).name() == "qkv");
  CHECK(s.tasks(0).workload().dtype() == tlm::v1::DTYPE_FLOAT32);

  // A network in float16 on cuda: every workload, and so every task, in float16.
  network.set_dtype(tlm::v1::DTYPE_FLOAT16);
  network.mutable_target()->set_kind("cuda");
  const tlm::v1::Session on_gpu = r.runner->StartSession(network).value();
  REQUIRE(on_gpu.tasks_size() == 8);
  REQUIRE(on_gpu.tasks(0).task_id() != 0);  // the budget of 8 goes to the first task
  CHECK(core.tuner->Get(on_gpu.tasks(0).task_id())->workload().dtype() == tlm::v1::DTYPE_FLOAT16);
  for (const tlm::v1::SessionTask& t : on_gpu.tasks()) {
    CHECK(t.workload().dtype() == tlm::v1::DTYPE_FLOAT16);
  }
}

}  // namespace
}  // namespace tlm::server

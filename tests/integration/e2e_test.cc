// tlmd + tlm-workers + tlmctl as real processes on 127.0.0.1.
#include <grpcpp/generic/generic_stub.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/integration/cluster.h"

namespace tlm::testing {
namespace {

tlm::v1::SubmitTaskRequest DenseTask(int64_t m, int64_t n, int64_t k, int trials) {
  tlm::v1::SubmitTaskRequest request;
  request.set_name("e2e");
  *request.mutable_workload() = Dense(m, n, k);
  request.mutable_workload()->add_epilogue("bias");
  request.mutable_workload()->add_epilogue("relu");
  request.mutable_target()->set_kind("cpu");
  request.set_num_trials(trials);
  request.set_seed(42);
  return request;
}

tlm::v1::Task Submit(Cluster& cluster, const tlm::v1::SubmitTaskRequest& request) {
  grpc::ClientContext context;
  tlm::v1::Task task;
  grpc::Status status = cluster.tuning().SubmitTask(&context, request, &task);
  INFO(status.error_message());
  REQUIRE(status.ok());
  REQUIRE(task.id() > 0);
  return task;
}

std::string ForTask(int64_t task_id) {
  return absl::StrCat(
      " FROM measurements m JOIN programs p ON p.id = m.program_id WHERE p.task_id = ", task_id);
}

// Results a task has stored, counted straight from the database file.
int64_t StoredResults(const Cluster& cluster, int64_t task_id) {
  return QueryInt(cluster.db_path(), "SELECT COUNT(*)" + ForTask(task_id));
}

void WaitForResults(const Cluster& cluster, int64_t task_id, int64_t count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (StoredResults(cluster, task_id) < count && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  REQUIRE(StoredResults(cluster, task_id) >= count);
}

TEST_CASE("two workers measure 32 trials; best is the minimum; tlmctl prints it") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w1");
  cluster.StartWorker("w2");
  REQUIRE(cluster.WaitForWorkers(2));

  const tlm::v1::Task submitted = Submit(cluster, DenseTask(64, 48, 32, 32));
  int events = 0;
  const tlm::v1::Task done = cluster.WatchToEnd(submitted.id(), &events);
  INFO(cluster.Logs());
  REQUIRE(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == 32);
  CHECK(done.trials_failed() == 0);
  CHECK(events == 34);  // the first snapshot, one per trial, the end

  const std::string from = ForTask(submitted.id());
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*)" + from) == 32);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(DISTINCT m.program_id)" + from) == 32);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(DISTINCT p.hash)" + from) == 32);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(DISTINCT m.worker_id)" + from) == 2);
  CHECK(QueryInt(cluster.db_path(),
                 "SELECT COUNT(*) FROM measurement_repeats r JOIN measurements m ON "
                 "m.id = r.measurement_id JOIN programs p ON p.id = m.program_id WHERE "
                 "p.task_id = " +
                     std::to_string(submitted.id())) >= 32 * 3);

  grpc::ClientContext context;
  tlm::v1::GetBestRequest best_request;
  best_request.set_task_id(submitted.id());
  tlm::v1::BestProgram best;
  REQUIRE(cluster.tuning().GetBest(&context, best_request, &best).ok());
  // Nanoseconds, so the comparison does not depend on float formatting.
  const int64_t min_ns = QueryInt(
      cluster.db_path(), "SELECT CAST(ROUND(MIN(m.median_seconds) * 1e9) AS INTEGER)" + from);
  CHECK(static_cast<int64_t>(std::llround(best.trial().result().median_seconds() * 1e9)) == min_ns);
  CHECK(best.trial().result().median_seconds() == Approx(done.best_seconds()));
  CHECK(best.trial().program().text().rfind("dense M 64 N 48 K 32 epilogue bias relu dtype float32 target cpu stage dense SSRSRS", 0) ==
        0);

  const CommandResult ctl =
      RunCommand({RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "best",
                  std::to_string(submitted.id())});
  INFO(ctl.out << ctl.err);
  CHECK(ctl.exit_code == 0);
  CHECK(ctl.out.find(best.trial().program().text()) != std::string::npos);
  CHECK(ctl.out.find(best.trial().program().hash()) != std::string::npos);
}

TEST_CASE("tlmctl tune tunes every workload of a network on LLVM workers") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w1", {"--backend=cpu"});
  cluster.StartWorker("w2", {"--backend=cpu"});
  REQUIRE(cluster.WaitForWorkers(2));
  const CommandResult ctl =
      RunCommand({RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "tune",
                  "--network=bert_tiny", "--trials=2", "--repeat=1", "--min-repeat-ms=1",
                  "--seed=5"});
  INFO(ctl.out << ctl.err << cluster.Logs());
  CHECK(ctl.exit_code == 0);
  CHECK_THAT(ctl.out, Catch::Contains("session 1: network bert_tiny, 8 tasks on cpu, budget 16 "
                                      "measurements in rounds of 2 per task"));
  CHECK_THAT(ctl.out, Catch::Contains("round 1 (0/16 measurements): 8 tasks not measured yet"));
  CHECK_THAT(ctl.out, Catch::Contains("session 1 succeeded: budget spent: 16 measurements"));
  for (const char* task : {"qkv", "attention_scores", "softmax", "attention_context",
                           "attention_output", "layer_norm", "ffn_up", "ffn_down"}) {
    CHECK_THAT(ctl.out, Catch::Contains(task));
  }
  CHECK_THAT(ctl.out, Catch::Contains("estimated latency of bert_tiny:"));
  CHECK_THAT(ctl.out, Catch::Contains("over 8 of 8 tasks, 16 measurements"));
  CHECK_THAT(ctl.out, Catch::Contains("untuned schedules: "));
  // Eight tuned tasks and eight one-trial baselines (the untuned schedule).
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks") == 16);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks WHERE sampler = 'default'") == 8);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM measurements WHERE error_kind = 1") ==
        24);

  // A single workload of any operator.
  const CommandResult one = RunCommand(
      {RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "tune", "conv2d_nchw",
       "N=1", "C=8", "H=14", "W=14", "F=16", "KH=3", "KW=3", "P=1", "--epilogue=bias,relu",
       "--trials=3", "--repeat=1", "--min-repeat-ms=1"});
  INFO(one.out << one.err);
  CHECK(one.exit_code == 0);
  CHECK_THAT(one.out, Catch::Contains("3/3 trials"));

  const CommandResult unknown = RunCommand({RunfilePath("client/tlmctl"),
                                            "--server=" + cluster.address(), "tune",
                                            "--network=alexnet"});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("unknown network \"alexnet\""));
}

TEST_CASE("tlmd pretrains a model, tunes with it, fine-tunes on the results and reloads it") {
  Cluster cluster;
  const std::string tlmd = RunfilePath("server/tlmd");
  const std::string model = cluster.dir() + "/model.tlm";
  const std::vector<std::string> tiny = {"--d_model=32", "--n_layer=1", "--n_head=2",
                                         "--d_ff=64", "--per_task=16", "--steps=30"};
  std::vector<std::string> pretrain = {tlmd, "pretrain", "--out=" + model,
                                       "--networks=bert_tiny", "--eval_networks=gpt2_decode"};
  pretrain.insert(pretrain.end(), tiny.begin(), tiny.end());
  const CommandResult trained = RunCommand(pretrain);
  INFO(trained.out << trained.err);
  REQUIRE(trained.exit_code == 0);
  CHECK_THAT(trained.out, Catch::Contains("held-out (gpt2_decode): loss"));

  const CommandResult inspect = RunCommand({tlmd, "inspect", model});
  CHECK(inspect.exit_code == 0);
  CHECK_THAT(inspect.out, Catch::Contains("d_model 32, 1 layers"));
  CHECK_THAT(inspect.out, Catch::Contains("pretrain: 128 programs, 30 steps"));
  CHECK_THAT(inspect.out, Catch::Contains("held_out_perplexity:"));

  const CommandResult generated = RunCommand({tlmd, "generate", "--model=" + model, "--count=5",
                                              "dense", "M=64", "N=64", "K=64",
                                              "--epilogue=bias,relu"});
  INFO(generated.err);
  CHECK(generated.exit_code == 0);
  CHECK(std::count(generated.out.begin(), generated.out.end(), '\n') == 5);
  CHECK_THAT(generated.out, Catch::Contains("epilogue bias relu dtype float32 target cpu"));

  std::ofstream(cluster.dir() + "/garbage.tlm") << "garbage";
  const CommandResult garbage = RunCommand({tlmd, "inspect", cluster.dir() + "/garbage.tlm"});
  CHECK(garbage.exit_code == 1);
  CHECK_THAT(garbage.err, Catch::Contains("not a usable tlmd checkpoint: wrong magic"));

  // Without --model the tlm sampler is refused, naming the flag.
  REQUIRE(cluster.StartServer());
  const std::vector<std::string> tune = {RunfilePath("client/tlmctl"), "--server=", "tune",
                                         "dense", "M=64", "N=64", "K=64", "--sampler=tlm",
                                         "--trials=6", "--repeat=1", "--min-repeat-ms=1"};
  auto run_tune = [&] {
    std::vector<std::string> argv = tune;
    argv[1] += cluster.address();
    return RunCommand(argv);
  };
  const CommandResult refused = run_tune();
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.err, Catch::Contains("--model"));
  REQUIRE(cluster.StopServer() == 0);

  REQUIRE(cluster.StartServer({"--model=" + model, "--model_poll_s=0.1", "--finetune_every=6",
                               "--finetune_steps=5"}));
  cluster.StartWorker("w1", {"--backend=cpu"});
  REQUIRE(cluster.WaitForWorkers(1));
  const CommandResult tuned = run_tune();
  INFO(tuned.out << tuned.err << cluster.Logs());
  CHECK(tuned.exit_code == 0);
  CHECK_THAT(tuned.out, Catch::Contains("6/6 trials"));
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks WHERE sampler = 'tlm'") == 1);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM measurements WHERE error_kind = 1") ==
        6);
  auto wait_for_log = [&](const std::string& line) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (cluster.Logs().find(line) == std::string::npos && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    CHECK_THAT(cluster.Logs(), Catch::Contains(line));
  };
  // Six successful results make one online fine-tuning round, which writes
  // over --model; tlmd then serves the new checkpoint.
  wait_for_log("fine-tuning round 1: 1 best programs, 5 steps");
  wait_for_log("model version 2 in use");
  CHECK_THAT(RunCommand({tlmd, "inspect", model}).out,
             Catch::Contains("online_sft: round 1: 1 programs, 5 steps"));

  // Fine-tune by hand on the dataset and publish over the served checkpoint.
  const CommandResult sft =
      RunCommand({tlmd, "sft", "--model=" + model, "--db=" + cluster.db_path(),
                  "--out=" + model, "--steps=5"});
  INFO(sft.err);
  CHECK(sft.exit_code == 0);
  CHECK_THAT(RunCommand({tlmd, "inspect", model}).out, Catch::Contains("sft: 1 programs, 5 steps"));
  wait_for_log("model version 3 in use");
  const CommandResult again = run_tune();
  CHECK(again.exit_code == 0);

  // The evolutionary baseline: random until 8 results, then evolved programs.
  std::vector<std::string> evolve = tune;
  evolve[1] += cluster.address();
  evolve[7] = "--sampler=evolutionary";
  evolve[8] = "--trials=14";
  const CommandResult evolved = RunCommand(evolve);
  INFO(evolved.out << evolved.err);
  CHECK(evolved.exit_code == 0);
  CHECK_THAT(evolved.out, Catch::Contains("14/14 trials"));

  // One chart for the workload, one curve per task: tlm twice, evolutionary once.
  const std::string report = cluster.dir() + "/report.html";
  const CommandResult reported = RunCommand({RunfilePath("client/tlmctl"),
                                             "--server=" + cluster.address(), "report",
                                             "--out=" + report});
  INFO(reported.err);
  CHECK(reported.exit_code == 0);
  CHECK_THAT(reported.out, Catch::Contains("report of 3 tasks and 26 measurements"));
  std::ifstream in(report);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_THAT(html, Catch::Contains("<title>tlm (task 1)</title>"));
  CHECK_THAT(html, Catch::Contains("<title>tlm (task 2)</title>"));
  CHECK_THAT(html, Catch::Contains("<title>evolutionary (task 3)</title>"));

  // A session on the tiny network with the tiny model: each round's end
  // starts a fine-tuning round in the background while the next round
  // generates with the model in use.
  REQUIRE(cluster.StopServer() == 0);
  REQUIRE(cluster.StartServer({"--model=" + model, "--model_poll_s=0.1",
                               "--finetune_each_round", "--finetune_steps=5"}));
  cluster.StartWorker("w2", {"--backend=cpu"});
  const CommandResult session = RunCommand(
      {RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "tune",
       "--network=bert_tiny", "--sampler=tlm", "--budget=20", "--round=2", "--no-baseline",
       "--repeat=1", "--min-repeat-ms=1", "--seed=4"});
  INFO(session.out << session.err);
  CHECK(session.exit_code == 0);
  CHECK_THAT(session.out, Catch::Contains("round 1 (0/20 measurements): 8 tasks not measured yet"));
  CHECK_THAT(session.out, Catch::Contains("session 1 succeeded: budget spent: 20 measurements"));
  // Round 1 leaves a best program for each of bert_tiny's 8 workloads, plus
  // the one of the dense task above.
  wait_for_log("fine-tuning round 1: 9 best programs, 5 steps");
  CHECK_THAT(RunCommand({tlmd, "inspect", model}).out, Catch::Contains(": 9 programs, 5 steps"));
}

TEST_CASE("a session spends a network budget in rounds on tlmd; tasks extend") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w1", {"--backend=cpu"});
  cluster.StartWorker("w2", {"--backend=cpu"});
  REQUIRE(cluster.WaitForWorkers(2));
  const CommandResult ctl = RunCommand(
      {RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "tune",
       "--network=bert_tiny", "--budget=44", "--round=4", "--no-baseline", "--repeat=1",
       "--min-repeat-ms=1", "--seed=3"});
  INFO(ctl.out << ctl.err << cluster.Logs());
  CHECK(ctl.exit_code == 0);
  CHECK_THAT(ctl.out, Catch::Contains("round 1 (0/44 measurements): 8 tasks not measured yet"));
  CHECK_THAT(ctl.out, Catch::Contains("round 2 (32/44 measurements): "));
  CHECK_THAT(ctl.out, Catch::Contains("round 4 (40/44 measurements): "));
  CHECK_THAT(ctl.out, Catch::Contains("expected gain"));
  CHECK_THAT(ctl.out, Catch::Contains("session 1 succeeded: budget spent: 44 measurements"));
  CHECK_THAT(ctl.out, Catch::Contains("estimated latency of bert_tiny:"));
  CHECK_THAT(ctl.out, Catch::Contains("rounds: 4, wall time median "));
  CHECK_THAT(ctl.out, Catch::Contains("% of it measuring (build "));
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks") == 8);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM measurements") == 44);
  CHECK(QueryInt(cluster.db_path(), "SELECT MAX(num_trials) FROM tasks") >= 8);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM sessions WHERE state = 2") == 1);

  // The session can be followed again later, from its first round.
  const CommandResult again = RunCommand(
      {RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "session", "1"});
  INFO(again.out << again.err);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("round 1 (0/44 measurements): 8 tasks not measured yet"));
  CHECK_THAT(again.out, Catch::Contains("session 1 succeeded: budget spent: 44 measurements"));
  const CommandResult missing = RunCommand(
      {RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "session", "7"});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Catch::Contains("session 7 not found"));

  // Extending: a succeeded task runs again; a cancelled one cannot.
  grpc::ClientContext extend_context;
  tlm::v1::ExtendTaskRequest extend;
  extend.set_task_id(1);
  extend.set_more_trials(3);
  tlm::v1::Task extended;
  REQUIRE(cluster.tuning().ExtendTask(&extend_context, extend, &extended).ok());
  const tlm::v1::Task done = cluster.WatchToEnd(1);
  CHECK(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == done.num_trials());
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM measurements") == 47);

  tlm::v1::SubmitTaskRequest request = DenseTask(64, 64, 64, 1000);
  request.mutable_measure()->set_min_repeat_ms(50);
  const tlm::v1::Task submitted = Submit(cluster, request);
  grpc::ClientContext cancel_context;
  tlm::v1::CancelTaskRequest cancel;
  cancel.set_task_id(submitted.id());
  tlm::v1::Task cancelled;
  REQUIRE(cluster.tuning().CancelTask(&cancel_context, cancel, &cancelled).ok());
  grpc::ClientContext refused_context;
  extend.set_task_id(submitted.id());
  const grpc::Status refused = cluster.tuning().ExtendTask(&refused_context, extend, &extended);
  CHECK(refused.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(refused.error_message(), Catch::Contains("TASK_STATE_CANCELLED"));
  grpc::ClientContext bad_context;
  extend.set_task_id(1);
  extend.set_more_trials(0);
  const grpc::Status bad = cluster.tuning().ExtendTask(&bad_context, extend, &extended);
  CHECK(bad.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(bad.error_message(), Catch::StartsWith("more_trials: must be between 1 and"));
}

TEST_CASE("a worker killed mid-task loses no job and stores none twice") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  const size_t victim = cluster.StartWorker("w1");
  cluster.StartWorker("w2");
  REQUIRE(cluster.WaitForWorkers(2));

  tlm::v1::SubmitTaskRequest request = DenseTask(64, 64, 64, 40);
  request.mutable_measure()->set_min_repeat_ms(40);
  const tlm::v1::Task submitted = Submit(cluster, request);
  WaitForResults(cluster, submitted.id(), 6);
  // Kill the victim while it holds a job, so that job must be measured again.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool holding = false;
  while (!holding && absl::Now() < deadline) {
    grpc::ClientContext context;
    tlm::v1::ListWorkersResponse workers;
    REQUIRE(cluster.admin().ListWorkers(&context, {}, &workers).ok());
    for (const tlm::v1::WorkerInfo& w : workers.workers())
      holding |= w.name() == "w1" && w.in_flight() > 0;
  }
  REQUIRE(holding);
  cluster.worker(victim).Signal(SIGKILL);
  REQUIRE(cluster.worker(victim).Wait(absl::Seconds(10)).has_value());

  const tlm::v1::Task done = cluster.WatchToEnd(submitted.id());
  INFO(cluster.Logs());
  REQUIRE(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == 40);
  CHECK(done.trials_failed() == 0);
  const std::string from = ForTask(submitted.id());
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*)" + from) == 40);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(DISTINCT m.program_id)" + from) == 40);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM programs WHERE task_id = " +
                                        std::to_string(submitted.id())) == 40);
  // The job the victim held was measured again by the survivor.
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*)" + from + " AND m.attempt >= 2") >= 1);
}

// Starts tlmd, one worker and a 30-trial task; returns the task once
// `results` of its results are stored.
tlm::v1::Task StartTask(Cluster& cluster, int64_t results) {
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w1");
  REQUIRE(cluster.WaitForWorkers(1));
  tlm::v1::SubmitTaskRequest request = DenseTask(32, 32, 32, 30);
  request.mutable_measure()->set_min_repeat_ms(30);
  const tlm::v1::Task submitted = Submit(cluster, request);
  WaitForResults(cluster, submitted.id(), results);
  return submitted;
}

// Starts tlmd again on the same database with a fresh worker (the new server
// has a new port) and checks that the task ends with 30 distinct results.
void RestartAndFinish(Cluster& cluster, int64_t task_id) {
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w2");
  const tlm::v1::Task done = cluster.WatchToEnd(task_id);
  REQUIRE(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == 30);
  const std::string from = ForTask(task_id);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*)" + from) == 30);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(DISTINCT m.program_id)" + from) == 30);
}

TEST_CASE("SIGTERM drains, and a restarted tlmd resumes the task from the database") {
  Cluster cluster;
  const tlm::v1::Task submitted = StartTask(cluster, 3);
  REQUIRE(cluster.StopServer() == 0);
  const int64_t stored = StoredResults(cluster, submitted.id());
  INFO(cluster.Logs());
  REQUIRE(stored >= 3);
  REQUIRE(stored < 30);
  RestartAndFinish(cluster, submitted.id());
}

TEST_CASE("SIGKILL of tlmd mid-task loses no stored result, and the task resumes") {
  Cluster cluster;
  const tlm::v1::Task submitted = StartTask(cluster, 4);
  cluster.server().Signal(SIGKILL);
  REQUIRE(cluster.server().Wait(absl::Seconds(10)) == 128 + SIGKILL);
  const int64_t stored = StoredResults(cluster, submitted.id());
  // Every stored result, identified by its program and its timing.
  const std::string fingerprint =
      "SELECT SUM(m.program_id * 7 + CAST(m.median_seconds * 1e9 AS INTEGER))" +
      ForTask(submitted.id());
  const int64_t before = QueryInt(cluster.db_path(), fingerprint);
  INFO(cluster.Logs());
  REQUIRE(stored >= 4);
  REQUIRE(stored < 30);
  RestartAndFinish(cluster, submitted.id());
  // The results stored before the kill are still there, unchanged.
  CHECK(QueryInt(cluster.db_path(), fingerprint + " AND m.id <= " + std::to_string(stored)) ==
        before);
}

TEST_CASE("SIGKILL of tlmd mid-session loses no stored result, and the session resumes") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w1");
  REQUIRE(cluster.WaitForWorkers(1));
  tlm::v1::StartSessionRequest request;
  for (auto [name, size] : {std::pair{"a", 32}, std::pair{"b", 48}}) {
    tlm::v1::SessionWorkload* w = request.add_workloads();
    w->set_name(name);
    *w->mutable_workload() = Dense(size, size, size);
    w->set_weight(2);
  }
  request.mutable_target()->set_kind("cpu");
  request.set_budget(24);
  request.set_trials_per_round(4);
  request.set_seed(9);
  request.mutable_measure()->set_min_repeat_ms(30);
  tlm::v1::Session started;
  {
    grpc::ClientContext context;
    REQUIRE(cluster.tuning().StartSession(&context, request, &started).ok());
  }
  const std::string count = "SELECT COUNT(*) FROM measurements";
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (QueryInt(cluster.db_path(), count) < 10 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  cluster.server().Signal(SIGKILL);
  REQUIRE(cluster.server().Wait(absl::Seconds(10)) == 128 + SIGKILL);
  const int64_t stored = QueryInt(cluster.db_path(), count);
  const std::string fingerprint =
      "SELECT SUM(program_id * 7 + CAST(median_seconds * 1e9 AS INTEGER)) FROM measurements";
  const int64_t before = QueryInt(cluster.db_path(), fingerprint);
  INFO(cluster.Logs());
  REQUIRE(stored >= 10);
  REQUIRE(stored < 24);

  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w2");
  tlm::v1::Session session;
  const absl::Time end = absl::Now() + absl::Seconds(120);
  do {
    absl::SleepFor(absl::Milliseconds(50));
    grpc::ClientContext context;
    tlm::v1::GetSessionRequest get;
    get.set_session_id(started.id());
    REQUIRE(cluster.tuning().GetSession(&context, get, &session).ok());
  } while (session.state() == tlm::v1::SESSION_STATE_RUNNING && absl::Now() < end);
  INFO(session.DebugString());
  REQUIRE(session.state() == tlm::v1::SESSION_STATE_SUCCEEDED);
  CHECK(session.measured() == 24);
  CHECK(QueryInt(cluster.db_path(), count) == 24);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(DISTINCT program_id) FROM measurements") == 24);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks") == 2);
  CHECK(QueryInt(cluster.db_path(), fingerprint + " WHERE id <= " + std::to_string(stored)) ==
        before);
}

TEST_CASE("bad input is rejected naming the field and changes nothing") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  Submit(cluster, DenseTask(8, 8, 8, 1));  // something already stored
  const int64_t tasks_before = QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks");
  const int64_t programs_before = QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM programs");
  REQUIRE(tasks_before == 1);

  struct Case {
    const char* what;
    std::function<void(tlm::v1::SubmitTaskRequest&)> mutate;
    const char* message_prefix;
  };
  const std::vector<Case> cases = {
      {"K=0", [](auto& r) { r.mutable_workload()->mutable_params(2)->set_value(0); },
       "workload.params: K must be at least 1, got 0"},
      {"negative M", [](auto& r) { r.mutable_workload()->mutable_params(0)->set_value(-5); },
       "workload.params: M must be at least 1, got -5"},
      {"unknown op", [](auto& r) { r.mutable_workload()->set_op("conv9d"); },
       "workload.op: unknown operator \"conv9d\""},
      {"no workload", [](auto& r) { r.clear_workload(); }, "workload.op: missing"},
      {"unknown target", [](auto& r) { r.mutable_target()->set_kind("tpu"); },
       "target.kind: unknown target kind \"tpu\""},
      {"no target", [](auto& r) { r.clear_target(); }, "target.kind: missing"},
      {"zero trials", [](auto& r) { r.set_num_trials(0); }, "num_trials: must be between 1"},
      {"unknown sampler", [](auto& r) { r.set_sampler("oracle"); },
       "sampler: unknown sampler \"oracle\""},
      {"negative repeat", [](auto& r) { r.mutable_measure()->set_repeat(-1); },
       "measure.repeat: must be between 0"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    tlm::v1::SubmitTaskRequest request = DenseTask(8, 8, 8, 4);
    c.mutate(request);
    grpc::ClientContext context;
    tlm::v1::Task task;
    grpc::Status status = cluster.tuning().SubmitTask(&context, request, &task);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(status.error_message(), Catch::StartsWith(c.message_prefix));
  }

  // Bytes that are not a SubmitTaskRequest at all.
  grpc::GenericStub generic(
      grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials()));
  const char garbage[] = "\xff\xff\xff\xff\x0f\x12\x34 not a protobuf";
  grpc::Slice slice(garbage, sizeof(garbage) - 1);
  grpc::ByteBuffer request_bytes(&slice, 1);
  grpc::ByteBuffer response_bytes;
  grpc::ClientContext generic_context;
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  grpc::Status generic_status;
  generic.UnaryCall(&generic_context, "/tlm.v1.Tuning/SubmitTask", {}, &request_bytes,
                    &response_bytes, [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      generic_status = s;
                      finished = true;
                      cv.notify_all();
                    });
  {
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return finished; }));
  }
  CHECK_FALSE(generic_status.ok());

  // tlmctl reports the server's message and exits 1.
  const CommandResult ctl =
      RunCommand({RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "submit", "dense",
                  "M=4", "N=4", "K=0"});
  CHECK(ctl.exit_code == 1);
  CHECK_THAT(ctl.err, Catch::Contains("K must be at least 1"));
  // A network's dtype reaches tlmd, which refuses float16 on cpu.
  const CommandResult half =
      RunCommand({RunfilePath("client/tlmctl"), "--server=" + cluster.address(), "tune",
                  "--network=bert_tiny", "--dtype=float16", "--target=cpu"});
  CHECK(half.exit_code == 1);
  CHECK_THAT(half.err, Catch::Contains("workload.dtype: float16 is not supported on target cpu"));

  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM tasks") == tasks_before);
  CHECK(QueryInt(cluster.db_path(), "SELECT COUNT(*) FROM programs") == programs_before);

  // The server is still healthy.
  grpc::ClientContext status_context;
  tlm::v1::ServerStatus server_status;
  REQUIRE(cluster.admin().GetStatus(&status_context, {}, &server_status).ok());
  CHECK(server_status.num_tasks() == 1);
  CHECK(server_status.schema_version() == 3);
}

TEST_CASE("tlmctl drives a task from submit to cancel against a real tlmd") {
  Cluster cluster;
  REQUIRE(cluster.StartServer());
  cluster.StartWorker("w1");
  REQUIRE(cluster.WaitForWorkers(1));
  const std::string ctl = RunfilePath("client/tlmctl");
  const std::string server = "--server=" + cluster.address();

  // submit prints the id alone; watch prints one line per trial and exits 0.
  CommandResult submit = RunCommand({ctl, server, "submit", "dense", "M=16", "N=16", "K=16",
                                     "--epilogue=relu", "--trials=5", "--seed=3", "--name=ctl"});
  INFO(submit.err);
  REQUIRE(submit.exit_code == 0);
  const std::string id = submit.out.substr(0, submit.out.find('\n'));
  REQUIRE(submit.out == id + "\n");
  CommandResult watch = RunCommand({ctl, server, "watch", id});
  CHECK(watch.exit_code == 0);
  CHECK_THAT(watch.out, Catch::Contains("task " + id + ": 5/5 "));
  CHECK_THAT(watch.out, Catch::Contains("task " + id + " succeeded: 5/5 trials, 0 failed"));

  // A long task is cancelled while it runs; watching it then exits 1.
  CommandResult big = RunCommand({ctl, server, "submit", "dense", "M=64", "N=64", "K=64",
                                  "--trials=500", "--min-repeat-ms=20", "--name=big"});
  REQUIRE(big.exit_code == 0);
  const std::string big_id = big.out.substr(0, big.out.find('\n'));
  CommandResult cancel = RunCommand({ctl, server, "cancel", big_id});
  CHECK(cancel.exit_code == 0);
  CHECK_THAT(cancel.out, Catch::Contains("task " + big_id + " cancelled"));
  CHECK(RunCommand({ctl, server, "watch", big_id}).exit_code == 1);

  CommandResult list = RunCommand({ctl, server, "list"});
  CHECK(list.exit_code == 0);
  CHECK_THAT(list.out, Catch::Contains("dense 16x16x16+relu"));
  CHECK_THAT(list.out, Catch::Contains("succeeded"));
  CHECK_THAT(list.out, Catch::Contains("cancelled"));
  CommandResult running = RunCommand({ctl, server, "list", "--state=running"});
  CHECK(running.out.find("ctl") == std::string::npos);

  CommandResult status = RunCommand({ctl, server, "status"});
  CHECK(status.exit_code == 0);
  CHECK_THAT(status.out, Catch::Contains("schema v3"));
  CHECK_THAT(status.out, Catch::Contains("tasks         2"));  // before the import below
  CommandResult workers = RunCommand({ctl, server, "workers"});
  CHECK_THAT(workers.out, Catch::Contains("w1"));
  CHECK_THAT(workers.out, Catch::Contains("cpu-ref"));

  // Records round-trip through JSON lines into a new task with the same best program.
  CommandResult exported = RunCommand({ctl, server, "export", id});
  REQUIRE(exported.exit_code == 0);
  CHECK(std::count(exported.out.begin(), exported.out.end(), '\n') == 5);
  CHECK_THAT(exported.out, Catch::Contains("\"format_version\":1"));
  const std::string records = cluster.dir() + "/records.jsonl";
  std::ofstream(records) << exported.out;
  CommandResult imported = RunCommand({ctl, server, "import", records});
  INFO(imported.err);
  REQUIRE(imported.exit_code == 0);
  CHECK_THAT(imported.out,
             Catch::StartsWith("imported 5 records (0 duplicates skipped) into tasks "));
  const std::string copy_id = imported.out.substr(
      imported.out.rfind(' ') + 1, imported.out.size() - imported.out.rfind(' ') - 2);
  const std::string original_best = RunCommand({ctl, server, "best", id}).out;
  const std::string copy_best = RunCommand({ctl, server, "best", copy_id}).out;
  auto program_line = [](const std::string& text) {
    const size_t at = text.find("program   ");
    return text.substr(at, text.find('\n', at) - at);
  };
  CHECK(program_line(copy_best) == program_line(original_best));
  const std::string broken = cluster.dir() + "/broken.jsonl";
  std::ofstream(broken) << exported.out << "{\"format_version\": \"x\"\n";
  CommandResult rejected = RunCommand({ctl, server, "import", broken});
  CHECK(rejected.exit_code == 1);
  CHECK_THAT(rejected.err, Catch::Contains("broken.jsonl:6: not a record"));

  CommandResult missing = RunCommand({ctl, server, "best", "999"});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Catch::Contains("task 999 not found"));
}

TEST_CASE("tlmd refuses bad flags, and a non-loopback address without TLS and a token") {
  const std::string dir = MakeTempDir("flags");
  CommandResult r =
      RunCommand({RunfilePath("server/tlmd"), "--listen=0.0.0.0:0", "--db=" + dir + "/x.db"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("not a loopback address: serving it needs --tls_cert"));
  r = RunCommand({RunfilePath("server/tlmd"), "--max_attempts=0", "--db=" + dir + "/x.db"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--max_attempts must be at least 1"));
  r = RunCommand(
      {RunfilePath("server/tlmd"), "--auth_token_file=" + dir + "/none", "--db=" + dir + "/x.db"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("only accepted over TLS"));
  r = RunCommand({RunfilePath("server/tlmd"), "--tls_cert=" + dir + "/missing.pem",
                  "--tls_key=" + dir + "/missing.key", "--db=" + dir + "/x.db"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--tls_cert: cannot read"));
  r = RunCommand({RunfilePath("server/tlmd"), "--finetune_every=8", "--db=" + dir + "/x.db"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--finetune_every needs --model"));
  r = RunCommand({RunfilePath("server/tlmd"), "--model=" + dir + "/missing.tlm",
                  "--db=" + dir + "/x.db", "--listen=127.0.0.1:0"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out + r.err, Catch::Contains("cannot load --model"));
  r = RunCommand({RunfilePath("server/tlmd"), "bake"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown command \"bake\""));
}

TEST_CASE("over TLS with a token, workers and tlmctl work and strangers are refused") {
  Cluster cluster;
  const std::string cert = cluster.dir() + "/cert.pem";
  const std::string key = cluster.dir() + "/key.pem";
  const std::string token = cluster.dir() + "/token";
  const std::string wrong = cluster.dir() + "/wrong";
  REQUIRE(MakeSelfSignedCertificate(cert, key));
  std::ofstream(token) << "s3cret-token\n";
  std::ofstream(wrong) << "guess\n";
  cluster.UseTls(cert, token);
  REQUIRE(cluster.StartServer(
      {"--tls_cert=" + cert, "--tls_key=" + key, "--auth_token_file=" + token}));
  cluster.StartWorker("w1");
  INFO(cluster.Logs());
  REQUIRE(cluster.WaitForWorkers(1));
  const tlm::v1::Task task = Submit(cluster, DenseTask(16, 16, 16, 6));
  CHECK(cluster.WatchToEnd(task.id()).state() == tlm::v1::TASK_STATE_SUCCEEDED);

  const std::string ctl = RunfilePath("client/tlmctl");
  const std::string server = "--server=" + cluster.address();
  CommandResult ok = RunCommand({ctl, server, "--tls_ca=" + cert, "--token_file=" + token, "list"});
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Contains("succeeded"));
  CommandResult bad_token =
      RunCommand({ctl, server, "--tls_ca=" + cert, "--token_file=" + wrong, "list"});
  CHECK(bad_token.exit_code == 1);
  CHECK_THAT(bad_token.err, Catch::Contains("wrong bearer token"));
  CommandResult no_token = RunCommand({ctl, server, "list", "--tls_ca", cert});
  CHECK(no_token.exit_code == 1);
  CHECK_THAT(no_token.err, Catch::Contains("missing bearer token"));
  CommandResult plaintext = RunCommand({ctl, server, "list"});
  CHECK(plaintext.exit_code == 3);
  CommandResult token_without_tls = RunCommand({ctl, server, "--token_file=" + token, "list"});
  CHECK(token_without_tls.exit_code == 1);
  CHECK_THAT(token_without_tls.err, Catch::Contains("only sent over TLS"));
}

}  // namespace
}  // namespace tlm::testing

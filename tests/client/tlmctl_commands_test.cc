// tlmctl's commands end to end against an in-process fake of tlmd's Tuning
// and Admin services: the requests sent, the output printed, the exit codes.
#include <catch2/catch.hpp>

#include "client/tlmctl_lib.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/client/fake_tlmd.h"
#include "tests/client/tlmctl_runner.h"

namespace tlm::client {
namespace {

using tlm::testing::FakeScript;
using tlm::testing::FakeTlmd;
using tlm::testing::TlmctlOptions;
using tlm::testing::TlmctlRun;

TlmctlRun Tlmctl(const FakeTlmd& fake, const std::vector<std::string>& args, bool tty = false,
                 const std::string& stdin_text = "") {
  TlmctlOptions options;
  options.server = fake.address();
  options.tty = tty;
  options.stdin_text = stdin_text;
  return tlm::testing::RunTlmctlForTest(args, options);
}

tlm::v1::Workload Dense(int m, int n, int k) {
  tlm::v1::Workload w;
  w.set_op("dense");
  for (auto [name, value] : {std::pair{"M", m}, {"N", n}, {"K", k}}) {
    tlm::v1::WorkloadParam* p = w.add_params();
    p->set_name(name);
    p->set_value(value);
  }
  return w;
}

tlm::v1::Task Task(int64_t id, tlm::v1::TaskState state, int done, int total) {
  tlm::v1::Task t;
  t.set_id(id);
  t.set_state(state);
  t.set_trials_done(done);
  t.set_num_trials(total);
  *t.mutable_workload() = Dense(100, 100, 100);  // 2 MFLOP: 1 ms is 2 GFLOP/s
  t.mutable_target()->set_kind("cpu");
  return t;
}

tlm::v1::TaskEvent Progress(tlm::v1::Task task) {
  tlm::v1::TaskEvent e;
  *e.mutable_task() = std::move(task);
  return e;
}

tlm::v1::TaskEvent Trial(tlm::v1::Task task, double seconds) {
  tlm::v1::TaskEvent e = Progress(std::move(task));
  e.mutable_trial()->mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_NONE);
  e.mutable_trial()->mutable_result()->set_median_seconds(seconds);
  return e;
}

tlm::v1::TaskEvent FailedTrial(tlm::v1::Task task) {
  tlm::v1::TaskEvent e = Progress(std::move(task));
  tlm::v1::MeasureResult* r = e.mutable_trial()->mutable_result();
  r->set_error_kind(tlm::v1::ERROR_KIND_RUN_TIMEOUT);
  r->set_error_stage("run");
  r->set_error_message("killed after 60 s");
  return e;
}

// A three-trial task that ends in `final_state`: one success at 1 ms, one
// timeout, one success at 2 ms.
std::vector<tlm::v1::TaskEvent> ThreeTrials(int64_t id, tlm::v1::TaskState final_state) {
  tlm::v1::Task t = Task(id, tlm::v1::TASK_STATE_RUNNING, 0, 3);
  std::vector<tlm::v1::TaskEvent> events = {Progress(t)};
  t.set_trials_done(1);
  t.set_best_seconds(1e-3);
  events.push_back(Trial(t, 1e-3));
  t.set_trials_done(2);
  t.set_trials_failed(1);
  events.push_back(FailedTrial(t));
  t.set_trials_done(3);
  events.push_back(Trial(t, 2e-3));
  t.set_state(final_state);
  events.push_back(Progress(t));
  return events;
}

TEST_CASE("submit sends exactly the request its flags describe and prints the id alone") {
  FakeTlmd fake;
  fake.Script(
      [](FakeScript& s) { s.submit_response = Task(41, tlm::v1::TASK_STATE_RUNNING, 0, 8); });
  TlmctlRun r = Tlmctl(fake, {"submit", "dense", "M=128", "N=768", "K=3072", "--epilogue=bias,relu",
                              "--target", "cpu", "--device=Xeon 8480", "--trials=8",
                              "--sampler=random", "--seed=18446744073709551615", "--name=bert-ffn",
                              "--repeat=5", "--min-repeat-ms=2.5", "--dtype=float16"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out == "41\n");
  CHECK(r.err.empty());

  tlm::v1::SubmitTaskRequest expected;
  expected.set_name("bert-ffn");
  *expected.mutable_workload() = Dense(128, 768, 3072);
  expected.mutable_workload()->add_epilogue("bias");
  expected.mutable_workload()->add_epilogue("relu");
  expected.mutable_workload()->set_dtype(tlm::v1::DTYPE_FLOAT16);
  expected.mutable_target()->set_kind("cpu");
  expected.mutable_target()->set_device("Xeon 8480");
  expected.set_num_trials(8);
  expected.set_sampler("random");
  expected.set_seed(UINT64_MAX);
  expected.mutable_measure()->set_repeat(5);
  expected.mutable_measure()->set_min_repeat_ms(2.5);
  const tlm::testing::FakeRequests received = fake.Requests();
  REQUIRE(received.submits.size() == 1);
  INFO(received.submits[0].DebugString());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(received.submits[0], expected));
  CHECK(received.methods == std::vector<std::string>{"SubmitTask"});
}

TEST_CASE("submit without flags uses the documented defaults") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) { s.submit_response.set_id(7); });
  TlmctlRun r = Tlmctl(fake, {"submit", "dense", "M=4", "N=4", "K=4"});
  CHECK(r.code == 0);
  CHECK(r.out == "7\n");
  tlm::v1::SubmitTaskRequest expected;
  *expected.mutable_workload() = Dense(4, 4, 4);
  expected.mutable_target()->set_kind("cpu");
  expected.set_num_trials(32);
  expected.mutable_measure();
  REQUIRE(fake.Requests().submits.size() == 1);
  CHECK(google::protobuf::util::MessageDifferencer::Equals(fake.Requests().submits[0], expected));
}

TEST_CASE("--server is accepted before and after the command") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) { s.submit_response.set_id(9); });
  TlmctlOptions unreachable_default;
  unreachable_default.server = tlm::testing::ClosedAddress();
  TlmctlRun before = tlm::testing::RunTlmctlForTest(
      {"--server=" + fake.address(), "submit", "dense", "M=4"}, unreachable_default);
  CHECK(before.code == 0);
  CHECK(before.out == "9\n");
  TlmctlRun after = tlm::testing::RunTlmctlForTest(
      {"submit", "dense", "--server", fake.address(), "M=4"}, unreachable_default);
  CHECK(after.code == 0);
  CHECK(after.out == "9\n");
  CHECK(fake.Requests().submits.size() == 2);
}

TEST_CASE("the server's rejection is printed on stderr and exits 1") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.errors["SubmitTask"] = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                          "workload.params: K must be at least 1, got 0");
  });
  // K=0 and an unknown operator are the server's to judge: tlmctl sends them.
  TlmctlRun r = Tlmctl(fake, {"submit", "dense", "M=4", "N=4", "K=0"});
  CHECK(r.code == kExitFailed);
  CHECK(r.err == "tlmctl: workload.params: K must be at least 1, got 0\n");
  CHECK(r.out.empty());
  TlmctlRun unknown = Tlmctl(fake, {"submit", "conv9d", "X=1"});
  CHECK(unknown.code == kExitFailed);
  const tlm::testing::FakeRequests received = fake.Requests();
  REQUIRE(received.submits.size() == 2);
  CHECK(received.submits[0].workload().params(2).value() == 0);
  CHECK(received.submits[1].workload().op() == "conv9d");
}

TEST_CASE("watch prints one line per event and exits 0 when the task succeeded") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) { s.events = ThreeTrials(12, tlm::v1::TASK_STATE_SUCCEEDED); });
  TlmctlRun r = Tlmctl(fake, {"watch", "12"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out ==
        "task 12: 0/3 running, 0 failed, best -\n"
        "task 12: 1/3 1.000 ms, best 1.000 ms (2.00 GFLOP/s)\n"
        "task 12: 2/3 failed (run_timeout in run: killed after 60 s), best 1.000 ms (2.00 "
        "GFLOP/s)\n"
        "task 12: 3/3 2.000 ms, best 1.000 ms (2.00 GFLOP/s)\n"
        "task 12 succeeded: 3/3 trials, 1 failed, best 1.000 ms (2.00 GFLOP/s)\n");
  CHECK(r.err.empty());
  CHECK(fake.Requests().task_ids == std::vector<int64_t>{12});
}

TEST_CASE("watch exits 1 when the task failed or was cancelled") {
  for (tlm::v1::TaskState state : {tlm::v1::TASK_STATE_FAILED, tlm::v1::TASK_STATE_CANCELLED}) {
    FakeTlmd fake;
    fake.Script([&](FakeScript& s) {
      s.events = ThreeTrials(12, state);
      s.events.back().mutable_task()->set_message("stopped");
    });
    TlmctlRun r = Tlmctl(fake, {"watch", "12"});
    CHECK(r.code == kExitFailed);
    CHECK_THAT(r.out, Catch::EndsWith(": 3/3 trials, 1 failed, best 1.000 ms (2.00 GFLOP/s); "
                                      "stopped\n"));
    CHECK_THAT(r.out, Catch::Contains(state == tlm::v1::TASK_STATE_FAILED ? "task 12 failed"
                                                                          : "task 12 cancelled"));
  }
}

TEST_CASE("on a terminal watch redraws one progress line") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) { s.events = ThreeTrials(12, tlm::v1::TASK_STATE_SUCCEEDED); });
  TlmctlRun r = Tlmctl(fake, {"watch", "12"}, /*tty=*/true);
  CHECK(r.code == 0);
  CHECK(r.out ==
        "\r[------------------------------] 0/3  failed 0  best -\x1b[K"
        "\r[##########--------------------] 1/3  failed 0  best 1.000 ms (2.00 GFLOP/s)\x1b[K"
        "\r[####################----------] 2/3  failed 1  best 1.000 ms (2.00 GFLOP/s)\x1b[K"
        "\r[##############################] 3/3  failed 1  best 1.000 ms (2.00 GFLOP/s)\x1b[K"
        "\r[##############################] 3/3  failed 1  best 1.000 ms (2.00 GFLOP/s)\x1b[K\n"
        "task 12 succeeded: 3/3 trials, 1 failed, best 1.000 ms (2.00 GFLOP/s)\n");
}

TEST_CASE("watch reports a stream that ends early or fails") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.events = ThreeTrials(12, tlm::v1::TASK_STATE_SUCCEEDED);
    s.events.pop_back();  // the server went away cleanly before the end
  });
  TlmctlRun early = Tlmctl(fake, {"watch", "12"});
  CHECK(early.code == kExitFailed);
  CHECK(early.err == "tlmctl: the server closed the watch of task 12 before the task ended\n");

  fake.Script([](FakeScript& s) {
    s.errors["WatchTask"] = grpc::Status(grpc::StatusCode::NOT_FOUND, "task 99 not found");
  });
  TlmctlRun missing = Tlmctl(fake, {"watch", "99"});
  CHECK(missing.code == kExitFailed);
  CHECK(missing.err == "tlmctl: task 99 not found\n");
  CHECK(missing.out.empty());
}

TEST_CASE("submit --watch submits, then follows the new task") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.submit_response = Task(12, tlm::v1::TASK_STATE_RUNNING, 0, 3);
    s.events = ThreeTrials(12, tlm::v1::TASK_STATE_CANCELLED);
  });
  TlmctlRun r = Tlmctl(fake, {"submit", "dense", "M=100", "N=100", "K=100", "--watch"});
  CHECK(r.code == kExitFailed);
  CHECK_THAT(r.out, Catch::StartsWith("task 12 submitted: dense 100x100x100 on cpu, 3 trials\n"
                                      "task 12: 0/3 running"));
  CHECK_THAT(r.out, Catch::EndsWith("task 12 cancelled: 3/3 trials, 1 failed, best 1.000 ms "
                                    "(2.00 GFLOP/s)\n"));
  CHECK(fake.Requests().methods == std::vector<std::string>{"SubmitTask", "WatchTask"});
  CHECK(fake.Requests().task_ids == std::vector<int64_t>{12});
}

TEST_CASE("best prints the latency, every repeat, GFLOP/s, the worker and the program") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.task = Task(5, tlm::v1::TASK_STATE_SUCCEEDED, 3, 3);
    s.task.mutable_workload()->add_epilogue("relu");
    s.best.set_task_id(5);
    tlm::v1::Trial* trial = s.best.mutable_trial();
    trial->set_worker_id("w-2");
    trial->mutable_program()->set_text("dense M=100 N=100 K=100 epilogue=relu | tile 4 25");
    trial->mutable_program()->set_hash("0123456789abcdef");
    tlm::v1::MeasureResult* r = trial->mutable_result();
    r->set_error_kind(tlm::v1::ERROR_KIND_NONE);
    for (double s : {1.1e-3, 1e-3, 0.9e-3}) r->add_repeat_seconds(s);
    r->set_median_seconds(1e-3);
    r->set_number(12);
    r->set_max_abs_error(2.5e-6);
    r->set_source("for m in 0..100:\n  ...");
  });
  TlmctlRun r = Tlmctl(fake, {"best", "5"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out ==
        "task      5: dense 100x100x100+relu on cpu (succeeded, 3/3 trials)\n"
        "latency   1.000 ms median of 3 repeats [1.100 ms, 1.000 ms, 900.0 us], 12 calls each\n"
        "speed     2.00 GFLOP/s\n"
        "checked   max abs error 2.5e-06\n"
        "worker    w-2\n"
        "program   dense M=100 N=100 K=100 epilogue=relu | tile 4 25\n"
        "hash      0123456789abcdef\n");
  CHECK(fake.Requests().task_ids == std::vector<int64_t>{5, 5});

  TlmctlRun with_source = Tlmctl(fake, {"best", "--source", "5"});
  CHECK(with_source.code == 0);
  CHECK(with_source.out == r.out + "source\nfor m in 0..100:\n  ...\n");
}

TEST_CASE("best of a task without a result is the server's NOT_FOUND, exit 1") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.errors["GetBest"] =
        grpc::Status(grpc::StatusCode::NOT_FOUND, "task 5 has no successful measurement yet");
  });
  TlmctlRun r = Tlmctl(fake, {"best", "5"});
  CHECK(r.code == kExitFailed);
  CHECK(r.err == "tlmctl: task 5 has no successful measurement yet\n");
  CHECK(r.out.empty());
}

TEST_CASE("list prints one row per task and passes --limit and --state") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    tlm::v1::Task a = Task(2, tlm::v1::TASK_STATE_RUNNING, 1, 32);
    a.set_name("bert-ffn");
    a.mutable_workload()->add_epilogue("bias");
    a.mutable_target()->set_device("sm_90");
    tlm::v1::Task b = Task(1, tlm::v1::TASK_STATE_FAILED, 3, 3);
    b.set_trials_failed(3);
    b.set_best_seconds(0);
    tlm::v1::Task c = Task(3, tlm::v1::TASK_STATE_SUCCEEDED, 8, 8);
    c.set_best_seconds(5e-4);
    s.tasks = {a, b, c};
  });
  TlmctlRun r = Tlmctl(fake, {"list", "--limit=3", "--state=running,failed,succeeded"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out ==
        "ID  NAME      WORKLOAD                TARGET     STATE      DONE  FAILED  BEST\n"
        "2   bert-ffn  dense 100x100x100+bias  cpu/sm_90  running    1/32  0       -\n"
        "1   -         dense 100x100x100       cpu        failed     3/3   3       -\n"
        "3   -         dense 100x100x100       cpu        succeeded  8/8   0       500.0 us (4.00 "
        "GFLOP/s)\n");
  const tlm::testing::FakeRequests received = fake.Requests();
  REQUIRE(received.lists.size() == 1);
  CHECK(received.lists[0].limit() == 3);
  REQUIRE(received.lists[0].states_size() == 3);
  CHECK(received.lists[0].states(0) == tlm::v1::TASK_STATE_RUNNING);
  CHECK(received.lists[0].states(1) == tlm::v1::TASK_STATE_FAILED);
  CHECK(received.lists[0].states(2) == tlm::v1::TASK_STATE_SUCCEEDED);

  // No flags: the server's defaults (limit 0 = default, every state).
  CHECK(Tlmctl(fake, {"list"}).code == 0);
  REQUIRE(fake.Requests().lists.size() == 2);
  CHECK(fake.Requests().lists[1].limit() == 0);
  CHECK(fake.Requests().lists[1].states_size() == 0);

  // A limit the server refuses is its to report.
  fake.Script([](FakeScript& s) {
    s.errors["ListTasks"] =
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: must not be negative, got -1");
  });
  TlmctlRun negative = Tlmctl(fake, {"list", "--limit=-1"});
  CHECK(negative.code == kExitFailed);
  CHECK(negative.err == "tlmctl: limit: must not be negative, got -1\n");
}

TEST_CASE("cancel sends the id and prints the task's summary") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) { s.task = Task(8, tlm::v1::TASK_STATE_CANCELLED, 4, 50); });
  TlmctlRun r = Tlmctl(fake, {"cancel", "8"});
  CHECK(r.code == 0);
  CHECK(r.out == "task 8 cancelled: 4/50 trials, 0 failed, best -\n");
  CHECK(fake.Requests().methods == std::vector<std::string>{"CancelTask"});
  CHECK(fake.Requests().task_ids == std::vector<int64_t>{8});
}

TEST_CASE("status shows the server, the dataset, the counts and the queues") {
  FakeTlmd fake;
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  fake.Script([&](FakeScript& s) {
    s.status.set_version("0.3.0");
    s.status.set_started_unix_ms(absl::ToUnixMillis(now - absl::Hours(2) - absl::Minutes(5)));
    s.status.set_database_path("/var/lib/tlmd/tlm.db");
    s.status.set_schema_version(1);
    s.status.set_num_tasks(12);
    s.status.set_num_measurements(3456);
    s.status.set_num_workers(2);
    tlm::v1::QueueStatus* q = s.status.add_queues();
    q->set_target_kind("cpu");
    q->set_queued(7);
    q->set_leased(2);
  });
  TlmctlOptions options;
  options.server = fake.address();
  options.now = now;
  TlmctlRun r = tlm::testing::RunTlmctlForTest({"status"}, options);
  CHECK(r.code == 0);
  CHECK(r.out == "server        " + fake.address() +
                     " (tlmd 0.3.0, up 2h 05m)\n"
                     "dataset       /var/lib/tlmd/tlm.db (schema v1)\n"
                     "tasks         12\n"
                     "measurements  3456\n"
                     "workers       2\n"
                     "queue cpu     7 queued, 2 with workers\n");
}

TEST_CASE("workers prints one row per worker") {
  FakeTlmd fake;
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  fake.Script([&](FakeScript& s) {
    tlm::v1::WorkerInfo w;
    w.set_worker_id("w-1");
    w.set_name("host1:cpu-ref");
    w.mutable_capabilities()->mutable_target()->set_kind("cpu");
    w.mutable_capabilities()->set_backend("cpu-ref");
    w.mutable_capabilities()->set_device_name("AMD EPYC 9654");
    w.mutable_capabilities()->set_max_in_flight(2);
    w.set_in_flight(1);
    w.set_credits(1);
    w.set_results(340);
    w.set_run_seconds(185.25);
    w.set_build_seconds(40);
    w.set_connected_unix_ms(absl::ToUnixMillis(now - absl::Minutes(4) - absl::Seconds(7)));
    w.set_last_heartbeat_unix_ms(absl::ToUnixMillis(now - absl::Seconds(3)));
    s.workers = {w};
  });
  TlmctlOptions options;
  options.server = fake.address();
  options.now = now;
  TlmctlRun r = tlm::testing::RunTlmctlForTest({"workers"}, options);
  CHECK(r.code == 0);
  CHECK(r.out ==
        "ID   NAME           TARGET  BACKEND  IN-FLIGHT  CREDITS  RESULTS  PER-S  BUSY  UP      "
        "HEARTBEAT  DEVICE\n"
        "w-1  host1:cpu-ref  cpu     cpu-ref  1/2        1        340      1.38   75%   4m 07s  "
        "3s ago     AMD EPYC 9654\n");
}

TEST_CASE("export writes JSON lines and import reads them back from stdin") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.records.resize(2);
    s.records[0].set_format_version(1);
    s.records[0].set_task_id(3);
    s.records[0].mutable_program()->set_hash("00000000000000aa");
    s.records[1].set_format_version(1);
    s.records[1].set_task_id(4);
    s.import_response.set_imported(2);
    s.import_response.add_task_ids(10);
  });
  TlmctlRun exported = Tlmctl(fake, {"export", "3", "4"});
  CHECK(exported.code == 0);
  CHECK(exported.out ==
        "{\"format_version\":1,\"program\":{\"hash\":\"00000000000000aa\"},\"task_id\":\"3\"}\n"
        "{\"format_version\":1,\"task_id\":\"4\"}\n");
  CHECK(exported.err == "tlmctl: exported 2 records\n");
  REQUIRE(fake.Requests().exports.size() == 1);
  CHECK(fake.Requests().exports[0].task_ids_size() == 2);

  TlmctlRun imported = Tlmctl(fake, {"import", "-"}, false, exported.out + "\n");
  CHECK(imported.code == 0);
  CHECK(imported.out == "imported 2 records (0 duplicates skipped) into tasks 10\n");
  REQUIRE(fake.Requests().imported.size() == 2);
  CHECK(fake.Requests().imported[0].program().hash() == "00000000000000aa");

  TlmctlRun broken = Tlmctl(fake, {"import", "-"}, false, exported.out + "{\"task_id\": [}\n");
  CHECK(broken.code == kExitFailed);
  CHECK_THAT(broken.err, Catch::StartsWith("tlmctl: -:3: not a record"));
  CHECK(fake.Requests().imported.size() == 2);  // nothing sent
}

TEST_CASE("an unreachable server exits 3 naming the address, for every command") {
  const std::string address = tlm::testing::ClosedAddress();
  TlmctlOptions options;
  options.server = address;
  options.connect_timeout = absl::Milliseconds(300);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"submit", "dense", "M=1"},
                                             {"watch", "1"},
                                             {"best", "1"},
                                             {"list"},
                                             {"cancel", "1"},
                                             {"status"},
                                             {"workers"},
                                             {"export"}}) {
    INFO(args[0]);
    TlmctlRun r = tlm::testing::RunTlmctlForTest(args, options);
    CHECK(r.code == kExitUnreachable);
    CHECK_THAT(r.err, Catch::StartsWith("tlmctl: the server at " + address + " is not reachable"));
    CHECK(r.out.empty());
  }
}

TEST_CASE("a server that stops answering mid-call exits 3") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.errors["ListWorkers"] = grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  });
  TlmctlRun r = Tlmctl(fake, {"workers"});
  CHECK(r.code == kExitUnreachable);
  CHECK(r.err == "tlmctl: the server at " + fake.address() + " is not reachable: shutting down\n");
}

}  // namespace
}  // namespace tlm::client

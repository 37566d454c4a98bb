// The client library against an in-process fake of tlmd's services.
#include "client/client.h"

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "tests/client/fake_tlmd.h"

namespace tlm::client {
namespace {

using tlm::testing::FakeScript;
using tlm::testing::FakeTlmd;

std::unique_ptr<Client> ConnectTo(const FakeTlmd& fake) {
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect(fake.address(), absl::Seconds(10));
  REQUIRE(client.ok());
  return *std::move(client);
}

tlm::v1::TaskEvent Event(int64_t id, int done, tlm::v1::TaskState state) {
  tlm::v1::TaskEvent event;
  event.mutable_task()->set_id(id);
  event.mutable_task()->set_trials_done(done);
  event.mutable_task()->set_state(state);
  return event;
}

TEST_CASE("connecting to a closed port is UNAVAILABLE and names the address") {
  const std::string address = tlm::testing::ClosedAddress();
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect(address, absl::Milliseconds(300));
  REQUIRE_FALSE(client.ok());
  CHECK(client.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(client.status().message()),
             Catch::StartsWith("the server at " + address + " is not reachable"));
}

TEST_CASE("unary calls send the request and return the answer") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.submit_response.set_id(41);
    s.task.set_id(42);
    s.best.mutable_trial()->mutable_program()->set_text("dense M=1 N=1 K=1 | tile");
    s.tasks.resize(2);
    s.tasks[1].set_id(3);
    s.status.set_version("9.9");
    s.workers.resize(1);
    s.workers[0].set_name("w1");
  });
  std::unique_ptr<Client> client = ConnectTo(fake);
  CHECK(client->address() == fake.address());
  CHECK(client->call_timeout() == absl::Seconds(30));

  tlm::v1::SubmitTaskRequest request;
  request.set_name("x");
  request.set_num_trials(5);
  absl::StatusOr<tlm::v1::Task> submitted = client->SubmitTask(request);
  REQUIRE(submitted.ok());
  CHECK(submitted->id() == 41);
  CHECK(client->GetTask(42)->id() == 42);
  CHECK(client->CancelTask(43)->id() == 42);
  CHECK(client->GetBest(44)->trial().program().text() == "dense M=1 N=1 K=1 | tile");
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks =
      client->ListTasks(7, {tlm::v1::TASK_STATE_FAILED, tlm::v1::TASK_STATE_RUNNING});
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 2);
  CHECK((*tasks)[1].id() == 3);
  CHECK(client->GetStatus()->version() == "9.9");
  REQUIRE(client->ListWorkers()->size() == 1);
  CHECK(client->ListWorkers()->at(0).name() == "w1");

  const tlm::testing::FakeRequests received = fake.Requests();
  REQUIRE(received.submits.size() == 1);
  CHECK(received.submits[0].SerializeAsString() == request.SerializeAsString());
  CHECK(received.task_ids == std::vector<int64_t>{42, 43, 44});
  REQUIRE(received.lists.size() == 1);
  CHECK(received.lists[0].limit() == 7);
  REQUIRE(received.lists[0].states_size() == 2);
  CHECK(received.lists[0].states(0) == tlm::v1::TASK_STATE_FAILED);
  CHECK(received.lists[0].states(1) == tlm::v1::TASK_STATE_RUNNING);
}

TEST_CASE("server errors keep their code and message") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.errors["SubmitTask"] = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                          "workload.params: K must be at least 1, got 0");
    s.errors["GetBest"] = grpc::Status(grpc::StatusCode::NOT_FOUND, "task 9 has no result yet");
    s.errors["ListWorkers"] = grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  });
  std::unique_ptr<Client> client = ConnectTo(fake);
  absl::StatusOr<tlm::v1::Task> task = client->SubmitTask({});
  CHECK(task.status() ==
        absl::InvalidArgumentError("workload.params: K must be at least 1, got 0"));
  CHECK(client->GetBest(9).status() == absl::NotFoundError("task 9 has no result yet"));
  absl::Status unavailable = client->ListWorkers().status();
  CHECK(unavailable.code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(unavailable.message()) ==
        "the server at " + fake.address() + " is not reachable: shutting down");
}

TEST_CASE("unary calls give up at their deadline") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) { s.status_hangs = true; });
  std::unique_ptr<Client> client = ConnectTo(fake);
  client->set_call_timeout(absl::Milliseconds(200));
  absl::Status status = client->GetStatus().status();
  CHECK(status.code() == absl::StatusCode::kDeadlineExceeded);
  CHECK_THAT(std::string(status.message()),
             Catch::StartsWith("the server at " + fake.address() + " did not answer in time"));
}

TEST_CASE("WatchTask delivers every event and returns the stream's end") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.events = {Event(5, 0, tlm::v1::TASK_STATE_RUNNING), Event(5, 1, tlm::v1::TASK_STATE_RUNNING),
                Event(5, 2, tlm::v1::TASK_STATE_SUCCEEDED)};
  });
  std::unique_ptr<Client> client = ConnectTo(fake);
  std::vector<int> done;
  absl::Status status = client->WatchTask(5, [&](const tlm::v1::TaskEvent& e) {
    done.push_back(e.task().trials_done());
    return true;
  });
  CHECK(status.ok());
  CHECK(done == std::vector<int>{0, 1, 2});
  CHECK(fake.Requests().task_ids == std::vector<int64_t>{5});

  fake.Script([](FakeScript& s) {
    s.watch_end = grpc::Status(grpc::StatusCode::NOT_FOUND, "task 6 not found");
    s.events.clear();
  });
  CHECK(client->WatchTask(6, [](const tlm::v1::TaskEvent&) { return true; }) ==
        absl::NotFoundError("task 6 not found"));
}

TEST_CASE("WatchTask stops and cancels the stream when the callback says so") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.events = {Event(5, 0, tlm::v1::TASK_STATE_RUNNING), Event(5, 1, tlm::v1::TASK_STATE_RUNNING),
                Event(5, 2, tlm::v1::TASK_STATE_RUNNING)};
    s.watch_hold_open = true;
  });
  std::unique_ptr<Client> client = ConnectTo(fake);
  int calls = 0;
  absl::Status status = client->WatchTask(5, [&](const tlm::v1::TaskEvent&) {
    ++calls;
    return false;
  });
  CHECK(status.ok());
  CHECK(calls == 1);
  // The fake holds the stream open until it sees the cancellation.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!fake.Requests().saw_cancel && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  CHECK(fake.Requests().saw_cancel);
}

TEST_CASE("records stream out and in") {
  FakeTlmd fake;
  fake.Script([](FakeScript& s) {
    s.records.resize(3);
    for (int i = 0; i < 3; ++i) s.records[i].set_task_id(i + 1);
    s.import_response.set_imported(2);
  });
  std::unique_ptr<Client> client = ConnectTo(fake);
  std::vector<tlm::v1::Record> records;
  REQUIRE(
      client->ExportRecords({1, 2}, [&](const tlm::v1::Record& r) { records.push_back(r); }).ok());
  REQUIRE(records.size() == 3);
  CHECK(records[2].task_id() == 3);
  REQUIRE(fake.Requests().exports.size() == 1);
  CHECK(fake.Requests().exports[0].task_ids_size() == 2);

  absl::StatusOr<tlm::v1::ImportRecordsResponse> imported = client->ImportRecords(records);
  REQUIRE(imported.ok());
  CHECK(imported->imported() == 2);
  REQUIRE(fake.Requests().imported.size() == 3);
  CHECK(fake.Requests().imported[1].task_id() == 2);
}

}  // namespace
}  // namespace tlm::client

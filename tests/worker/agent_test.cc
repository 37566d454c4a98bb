// The agent against a scripted Fleet server on 127.0.0.1 (the server is the
// fake here: the agent is the layer under test) and a fake backend.
#include "worker/agent.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <deque>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tlm/v1/fleet.grpc.pb.h"

namespace tlm::worker {
namespace {

// Measures nothing: answers with the job's program text length as latency.
class FakeBackend : public Backend {
 public:
  std::string name() const override { return "fake"; }
  tlm::v1::WorkerCapabilities Capabilities() const override {
    tlm::v1::WorkerCapabilities caps;
    caps.mutable_target()->set_kind("cpu");
    caps.set_backend("fake");
    caps.set_device_name("test device");
    return caps;
  }
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions&) override {
    ++measured;
    tlm::v1::MeasureResult r;
    r.set_error_kind(tlm::v1::ERROR_KIND_NONE);
    r.set_median_seconds(static_cast<double>(program.text().size()));
    return r;
  }
  std::atomic<int> measured{0};
};

// Sends one job per credit from a fixed list and records what comes back.
class ScriptedFleet final : public tlm::v1::Fleet::Service {
 public:
  explicit ScriptedFleet(int jobs) {
    for (int i = 1; i <= jobs; ++i) pending_.push_back(i);
  }

  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<tlm::v1::ServerMessage, tlm::v1::WorkerMessage>* stream) override {
    tlm::v1::WorkerMessage message;
    if (!stream->Read(&message) || !message.has_register_()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "register first");
    }
    {
      absl::MutexLock lock(&mu_);
      registrations_.push_back(message.register_());
    }
    tlm::v1::ServerMessage reply;
    reply.mutable_registered()->set_worker_id("w-test");
    reply.mutable_registered()->set_heartbeat_interval_ms(20);
    stream->Write(reply);
    while (stream->Read(&message)) {
      absl::MutexLock lock(&mu_);
      if (message.has_credit()) {
        credits_ += message.credit().credits();
        while (credits_ > 0 && !pending_.empty()) {
          const int64_t id = pending_.front();
          pending_.pop_front();
          --credits_;
          tlm::v1::ServerMessage job;
          job.mutable_job()->set_job_id(id);
          job.mutable_job()->set_lease_id(1000 + id);
          job.mutable_job()->mutable_program()->set_text(std::string(id, 'x'));
          stream->Write(job);
        }
      } else if (message.has_result()) {
        results_.push_back(message.result());
      } else if (message.has_heartbeat()) {
        ++heartbeats_;
      }
    }
    return context->IsCancelled() ? grpc::Status::CANCELLED : grpc::Status::OK;
  }

  int registrations() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(registrations_.size());
  }
  tlm::v1::RegisterRequest registration(int i) {
    absl::MutexLock lock(&mu_);
    return registrations_.at(i);
  }
  std::vector<tlm::v1::JobResult> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  int heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  int credits() {
    absl::MutexLock lock(&mu_);
    return credits_;
  }

 private:
  absl::Mutex mu_;
  std::deque<int64_t> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<tlm::v1::RegisterRequest> registrations_ ABSL_GUARDED_BY(mu_);
  std::vector<tlm::v1::JobResult> results_ ABSL_GUARDED_BY(mu_);
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int credits_ ABSL_GUARDED_BY(mu_) = 0;
};

std::unique_ptr<grpc::Server> Serve(ScriptedFleet* service, const std::string& address, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

bool WaitFor(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

TEST_CASE("the agent registers, measures per credit, heartbeats and reconnects") {
  ScriptedFleet first(3);
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&first, "127.0.0.1:0", &port);
  REQUIRE(server != nullptr);
  const std::string address = absl::StrCat("127.0.0.1:", port);

  FakeBackend backend;
  AgentOptions options;
  options.server_address = address;
  options.name = "agent-under-test";
  options.max_in_flight = 2;
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  Agent agent(options, &backend);
  absl::Status run_status;
  std::thread runner([&] { run_status = agent.Run(); });

  REQUIRE(WaitFor([&] { return first.results().size() == 3; }));
  REQUIRE(first.registrations() == 1);
  const tlm::v1::RegisterRequest reg = first.registration(0);
  CHECK(reg.name() == "agent-under-test");
  CHECK(reg.capabilities().max_in_flight() == 2);
  CHECK(reg.capabilities().backend() == "fake");
  CHECK_FALSE(reg.capabilities().hostname().empty());
  for (const tlm::v1::JobResult& r : first.results()) {
    CHECK(r.lease_id() == 1000 + r.job_id());  // ids echoed
    CHECK(r.result().median_seconds() == static_cast<double>(r.job_id()));
  }
  // Two initial credits plus one per result, three of them used by jobs.
  REQUIRE(WaitFor([&] { return first.credits() == 2; }));
  REQUIRE(WaitFor([&] { return first.heartbeats() >= 2; }));

  // The server goes away and comes back on the same port with more work.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  server.reset();
  ScriptedFleet second(2);
  int same_port = 0;
  server = Serve(&second, address, &same_port);
  REQUIRE(server != nullptr);
  REQUIRE(same_port == port);
  REQUIRE(WaitFor([&] { return second.results().size() == 2; }));
  CHECK(second.registrations() == 1);
  CHECK(agent.sessions() == 2);
  CHECK(backend.measured == 5);

  agent.Shutdown();
  runner.join();
  CHECK(run_status.ok());
  CHECK(agent.jobs_done() == 5);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
}

// Records the order of Prefetch and Measure calls; its first Measure waits
// until the test opens the gate.
class RecordingBackend : public FakeBackend {
 public:
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions& options) override {
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(&open));
      calls.push_back("measure " + program.text());
    }
    return FakeBackend::Measure(program, options);
  }
  void Prefetch(const tlm::v1::Program& program, const tlm::v1::MeasureOptions&) override {
    absl::MutexLock lock(&mu);
    calls.push_back("prefetch " + program.text());
  }
  std::vector<std::string> Calls() {
    absl::MutexLock lock(&mu);
    return calls;
  }
  void Open() {
    absl::MutexLock lock(&mu);
    open = true;
  }

  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = false;
  std::vector<std::string> calls ABSL_GUARDED_BY(mu);
};

TEST_CASE("the agent tells the backend of queued jobs before it measures them, once each") {
  ScriptedFleet fleet(6);
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&fleet, "127.0.0.1:0", &port);
  REQUIRE(server != nullptr);
  RecordingBackend backend;
  AgentOptions options;
  options.server_address = absl::StrCat("127.0.0.1:", port);
  options.max_in_flight = 4;
  Agent agent(options, &backend);
  std::thread runner([&] { (void)agent.Run(); });
  // Jobs 1-4 are sent at once; the first measurement holds until they are in.
  absl::SleepFor(absl::Milliseconds(300));
  backend.Open();
  REQUIRE(WaitFor([&] { return fleet.results().size() == 6; }));
  agent.Shutdown();
  runner.join();

  const std::vector<std::string> calls = backend.Calls();
  std::map<std::string, int> prefetched_at, measured_at;
  for (size_t i = 0; i < calls.size(); ++i) {
    const bool prefetch = calls[i].rfind("prefetch ", 0) == 0;
    const std::string text = calls[i].substr(calls[i].find(' ') + 1);
    std::map<std::string, int>& seen = prefetch ? prefetched_at : measured_at;
    CHECK(seen.count(text) == 0);  // once each
    seen[text] = static_cast<int>(i);
  }
  CHECK(measured_at.size() == 6);
  // Jobs 2-4 were queued behind job 1.
  CHECK(prefetched_at.size() >= 3);
  for (const auto& [text, at] : prefetched_at) {
    INFO(text);
    REQUIRE(measured_at.count(text) == 1);
    CHECK(at < measured_at[text]);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
}

TEST_CASE("an agent with no server keeps retrying and still shuts down promptly") {
  FakeBackend backend;
  AgentOptions options;
  options.server_address = "127.0.0.1:1";  // nothing listens on port 1
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  Agent agent(options, &backend);
  std::thread runner([&] { (void)agent.Run(); });
  absl::SleepFor(absl::Milliseconds(300));
  agent.Shutdown();
  runner.join();
  CHECK(agent.sessions() == 0);
  CHECK(backend.measured == 0);
}

}  // namespace
}  // namespace tlm::worker

// A tlmd core without the network for tests: a real SQLite file, dispatcher
// and tuner wired as in tlmd's main, with workers played by the test
// through WorkerSessions.
#ifndef TLMD_TESTS_SERVER_SIM_CORE_H_
#define TLMD_TESTS_SERVER_SIM_CORE_H_

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/dispatcher.h"
#include "server/sqlite_store.h"
#include "server/tuner.h"

namespace tlm::server::testing {

// A fresh database path under the test's temporary directory.
inline std::string TempDbPath() {
  const char* dir = std::getenv("TEST_TMPDIR");
  static int n = 0;
  return std::string(dir != nullptr ? dir : "/tmp") + "/core_" + std::to_string(getpid()) + "_" +
         std::to_string(++n) + ".db";
}

// A server core without the network: store, dispatcher and tuner wired as in
// tlmd's main, plus one simulated worker.
struct Core {
  explicit Core(const std::string& path, int window = 4) {
    store = std::move(SqliteStore::Open(path).value());
    dispatcher = std::make_unique<Dispatcher>(Dispatcher::Options{},
                                              [this](const JobOutcome& o) { tuner->OnOutcome(o); });
    Tuner::Options options;
    options.window_per_task = window;
    options.on_ended = [this](int64_t task_id) {
      if (on_ended) on_ended(task_id);
    };
    tuner = std::make_unique<Tuner>(store.get(), dispatcher.get(), options);
  }

  // A worker of `kind`; a cuda worker reports `gpu` when given.
  std::shared_ptr<WorkerSession> ConnectWorker(
      int credits, const std::string& kind = "cpu",
      const std::optional<tlm::v1::GpuProperties>& gpu = std::nullopt) {
    tlm::v1::RegisterRequest reg;
    reg.set_name("sim");
    reg.mutable_capabilities()->mutable_target()->set_kind(kind);
    if (gpu.has_value()) *reg.mutable_capabilities()->mutable_gpu() = *gpu;
    reg.mutable_capabilities()->set_max_in_flight(credits);
    std::shared_ptr<WorkerSession> session = dispatcher->Connect(reg).value();
    dispatcher->Grant(session->worker_id(), credits);
    return session;
  }

  // Answers every job the session holds with latency f(program text).
  int Answer(WorkerSession& session, const std::function<double(const std::string&)>& latency,
             int max_jobs = 1 << 30) {
    int answered = 0;
    while (answered < max_jobs) {
      std::optional<tlm::v1::MeasureJob> job = session.NextJob(absl::Milliseconds(1));
      if (!job.has_value()) break;
      tlm::v1::JobResult result;
      result.set_job_id(job->job_id());
      result.set_lease_id(job->lease_id());
      result.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_NONE);
      const double s = latency(job->program().text());
      result.mutable_result()->add_repeat_seconds(s);
      result.mutable_result()->set_median_seconds(s);
      REQUIRE(dispatcher->Complete(session.worker_id(), result));
      dispatcher->Grant(session.worker_id(), 1);
      ++answered;
    }
    return answered;
  }

  // Called with every task that ends (under the tuner's lock).
  std::function<void(int64_t)> on_ended;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<Tuner> tuner;
  std::unique_ptr<Dispatcher> dispatcher;
};

}  // namespace tlm::server::testing

#endif  // TLMD_TESTS_SERVER_SIM_CORE_H_

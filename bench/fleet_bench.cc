// End-to-end throughput of tlmd + N cpu workers (LLVM, one thread each) on
// this machine, and the server's overhead per job as tlmd reports it at
// shutdown: lease to stored result minus the worker's build and run time
// (with one job in flight per worker this is the dispatch path alone; with
// two it includes the wait on the worker), and enqueue to stored result
// minus worker time (with queueing).
//
//   bazel run //bench:fleet_bench -- [TRIALS]   (default 200)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "tests/integration/cluster.h"

namespace tlm::testing {
namespace {

struct Scenario {
  const char* label;
  int64_t m, n, k;
  double min_repeat_ms;
  int repeat;
};

void RunScenario(const Scenario& s, int workers, int in_flight, int trials) {
  Cluster cluster;
  if (!cluster.StartServer({"--log_level=info"})) {
    std::fprintf(stderr, "tlmd did not start:\n%s\n", cluster.Logs().c_str());
    std::exit(1);
  }
  for (int w = 1; w <= workers; ++w) {
    cluster.StartWorker("w" + std::to_string(w),
                        {"--log_level=info", "--backend=cpu", "--threads=1",
                         "--max_in_flight=" + std::to_string(in_flight)});
  }
  if (!cluster.WaitForWorkers(workers)) {
    std::fprintf(stderr, "workers did not connect:\n%s\n", cluster.Logs().c_str());
    std::exit(1);
  }
  tlm::v1::SubmitTaskRequest request;
  *request.mutable_workload() = Dense(s.m, s.n, s.k);
  request.mutable_target()->set_kind("cpu");
  request.set_num_trials(trials);
  request.set_seed(7);
  request.mutable_measure()->set_min_repeat_ms(s.min_repeat_ms);
  request.mutable_measure()->set_repeat(s.repeat);

  const absl::Time start = absl::Now();
  grpc::ClientContext context;
  tlm::v1::Task task;
  if (!cluster.tuning().SubmitTask(&context, request, &task).ok()) std::exit(1);
  const tlm::v1::Task done = cluster.WatchToEnd(task.id());
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double worker_s =
      static_cast<double>(QueryInt(
          cluster.db_path(),
          "SELECT CAST(SUM(build_seconds + run_seconds) * 1e6 AS INTEGER) FROM measurements")) /
      1e6;
  cluster.StopServer();

  const std::string log = ReadFile(cluster.dir() + "/tlmd.log");
  auto line = [&log](const char* prefix) {
    const size_t at = log.find(prefix);
    return at == std::string::npos ? std::string("(not reported)")
                                   : log.substr(at, log.find('\n', at) - at);
  };
  std::printf(
      "%-28s workers=%d in-flight=%d trials=%d done=%d  wall %.2f s  %.1f trials/s  "
      "worker busy %.0f%%\n    %s\n    %s\n",
      s.label, workers, in_flight, trials, done.trials_done(), seconds,
      done.trials_done() / seconds, 100.0 * worker_s / (seconds * workers),
      line("dispatch overhead").c_str(), line("queueing and dispatch").c_str());
}

}  // namespace
}  // namespace tlm::testing

int main(int argc, char** argv) {
  if (std::getenv("TEST_SRCDIR") == nullptr) {
    setenv("TEST_SRCDIR", (std::string(argv[0]) + ".runfiles").c_str(), 1);
  }
  if (std::getenv("TEST_TMPDIR") == nullptr) setenv("TEST_TMPDIR", "/tmp", 1);
  int trials = 200;
  if (argc > 1 && !absl::SimpleAtoi(argv[1], &trials)) {
    std::fprintf(stderr, "usage: fleet_bench [TRIALS]\n");
    return 2;
  }
  const tlm::testing::Scenario scenarios[] = {
      {"tiny dense 32x32x32 (1 ms)", 32, 32, 32, 1, 1},
      {"dense 128x768x768 (default)", 128, 768, 768, 0, 0},
  };
  for (const auto& s : scenarios) {
    for (int workers : {1, 2}) {
      for (int in_flight : {1, 2}) tlm::testing::RunScenario(s, workers, in_flight, trials);
    }
  }
  return 0;
}

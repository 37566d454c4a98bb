#include "client/format.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "client/workload_spec.h"

namespace tlm::client {
namespace {

tlm::v1::Workload Dense(int64_t m, int64_t n, int64_t k, const std::string& epilogue = "") {
  absl::StatusOr<tlm::v1::Workload> w = ParseWorkloadSpec(
      {"dense", "M=" + std::to_string(m), "N=" + std::to_string(n), "K=" + std::to_string(k)},
      epilogue);
  REQUIRE(w.ok());
  return *w;
}

TEST_CASE("latencies are printed in the unit that suits them") {
  CHECK(FormatSeconds(0) == "-");
  CHECK(FormatSeconds(-1) == "-");
  CHECK(FormatSeconds(5e-7) == "0.5 us");
  CHECK(FormatSeconds(812e-6) == "812.0 us");
  CHECK(FormatSeconds(1.2344e-3) == "1.234 ms");
  CHECK(FormatSeconds(0.25) == "250.000 ms");
  CHECK(FormatSeconds(2.5) == "2.500 s");
}

TEST_CASE("GFLOP/s come from 2*M*N*K for dense and are absent otherwise") {
  CHECK(WorkloadFlops(Dense(128, 768, 3072)) == 2.0 * 128 * 768 * 3072);
  CHECK(WorkloadFlops(Dense(0, 768, 3072)) == 0);
  tlm::v1::Workload other = Dense(4, 4, 4);
  other.set_op("conv2d");
  CHECK(WorkloadFlops(other) == 0);
  tlm::v1::Workload partial = Dense(4, 4, 4);
  partial.mutable_params()->RemoveLast();
  CHECK(WorkloadFlops(partial) == 0);

  CHECK(FormatGflops(2e9, 1) == "2.00 GFLOP/s");
  CHECK(FormatGflops(2e9, 0.1) == "20.0 GFLOP/s");
  CHECK(FormatGflops(2e9, 0.01) == "200 GFLOP/s");
  CHECK(FormatGflops(0, 1).empty());
  CHECK(FormatGflops(1e9, 0).empty());
}

TEST_CASE("workload summaries") {
  CHECK(WorkloadSummary(Dense(128, 768, 3072, "bias,relu")) == "dense 128x768x3072+bias+relu");
  absl::StatusOr<tlm::v1::Workload> conv = ParseWorkloadSpec({"conv2d", "N=1", "C=64"}, "relu");
  CHECK(WorkloadSummary(*conv) == "conv2d N=1 C=64+relu");
  absl::StatusOr<tlm::v1::Workload> odd = ParseWorkloadSpec({"dense", "K=1", "M=2", "N=3"}, "");
  CHECK(WorkloadSummary(*odd) == "dense K=1 M=2 N=3");
}

TEST_CASE("task states, best and summaries") {
  CHECK(StateName(tlm::v1::TASK_STATE_RUNNING) == "running");
  CHECK(StateName(tlm::v1::TASK_STATE_CANCELLED) == "cancelled");
  CHECK(StateName(tlm::v1::TASK_STATE_UNSPECIFIED) == "unknown");
  tlm::v1::Task task;
  task.set_id(7);
  task.set_state(tlm::v1::TASK_STATE_RUNNING);
  task.set_num_trials(32);
  task.set_trials_done(16);
  task.set_trials_failed(1);
  *task.mutable_workload() = Dense(100, 100, 100);
  CHECK_FALSE(IsEnded(task));
  CHECK(BestSummary(task) == "-");
  task.set_best_seconds(1e-3);
  CHECK(BestSummary(task) == "1.000 ms (2.00 GFLOP/s)");
  CHECK(ProgressLine(task) ==
        "[###############---------------] 16/32  failed 1  best 1.000 ms (2.00 GFLOP/s)");
  task.set_state(tlm::v1::TASK_STATE_FAILED);
  task.set_message("no worker for target cpu/x");
  CHECK(IsEnded(task));
  CHECK(TaskSummary(task) ==
        "task 7 failed: 16/32 trials, 1 failed, best 1.000 ms (2.00 GFLOP/s); no worker for "
        "target cpu/x");
}

TEST_CASE("the progress bar stays inside its frame") {
  tlm::v1::Task task;
  task.set_num_trials(3);
  task.set_trials_done(0);
  CHECK_THAT(ProgressLine(task), Catch::StartsWith("[------------------------------] 0/3  "));
  task.set_trials_done(3);
  CHECK_THAT(ProgressLine(task), Catch::StartsWith("[##############################] 3/3  "));
  task.set_trials_done(5);  // more than asked for: still a full bar
  CHECK_THAT(ProgressLine(task), Catch::StartsWith("[##############################] 5/3  "));
  task.set_num_trials(0);
  CHECK_THAT(ProgressLine(task), Catch::StartsWith("[##############################] 5/0  "));
}

TEST_CASE("durations for people") {
  CHECK(HumanDuration(absl::Seconds(-3)) == "0s");
  CHECK(HumanDuration(absl::Seconds(45)) == "45s");
  CHECK(HumanDuration(absl::Seconds(4 * 60 + 7)) == "4m 07s");
  CHECK(HumanDuration(absl::Hours(2) + absl::Minutes(5) + absl::Seconds(9)) == "2h 05m");
  CHECK(HumanDuration(absl::Hours(76)) == "3d 04h");
}

TEST_CASE("tables align columns without trailing spaces") {
  CHECK(FormatTable({{"ID", "NAME", "STATE"}, {"12", "a", "running"}, {"3", "longer-name"}}) ==
        "ID  NAME         STATE\n"
        "12  a            running\n"
        "3   longer-name\n");
  CHECK(FormatTable({}).empty());
}

}  // namespace
}  // namespace tlm::client

TEST_CASE("the best latency improves only with a faster success") {
  tlm::v1::MeasureResult ok;
  ok.set_error_kind(tlm::v1::ERROR_KIND_NONE);
  ok.set_median_seconds(2e-3);
  tlm::v1::MeasureResult failed;
  failed.set_error_kind(tlm::v1::ERROR_KIND_RUN_TIMEOUT);
  failed.set_median_seconds(1e-6);
  CHECK(tlm::client::ImproveBest(0, ok) == 2e-3);
  CHECK(tlm::client::ImproveBest(std::nan(""), ok) == 2e-3);
  CHECK(tlm::client::ImproveBest(1e-3, ok) == 1e-3);
  CHECK(tlm::client::ImproveBest(3e-3, ok) == 2e-3);
  CHECK(tlm::client::ImproveBest(3e-3, failed) == 3e-3);
  CHECK(tlm::client::ImproveBest(0, failed) == 0);
}

// The tuning core on a real SQLite file and a real dispatcher, with a worker
// played by the test through a WorkerSession (no gRPC).
#include "server/tuner.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "program/program.h"
#include "server/dispatcher.h"
#include "server/sampler.h"
#include "server/sqlite_store.h"
#include "tests/server/sim_core.h"

namespace tlm::server {
namespace {

using testing::Core;
using testing::TempDbPath;

tlm::v1::SubmitTaskRequest DenseRequest(int64_t m, int64_t n, int64_t k, int trials) {
  tlm::v1::SubmitTaskRequest request;
  *request.mutable_workload() = program::WorkloadToProto(program::DenseWorkload(m, n, k));
  request.mutable_target()->set_kind("cpu");
  request.set_num_trials(trials);
  request.set_seed(1);
  return request;
}

double ByHash(const std::string& text) {
  return 1e-3 +
         static_cast<double>(std::stoull(program::HashText(text).substr(0, 6), nullptr, 16)) * 1e-9;
}

TEST_CASE("random sampler proposes distinct unseen programs and exhausts small spaces") {
  const program::Sketch sketch = *program::Sketch::Make(program::DenseWorkload(4, 2, 1), "cpu");
  // i: 10 ordered factor triples of 4; j: 4 of 2; k: 1; parallel 3; at 2;
  // local 2; unroll 4.
  const size_t size = 10 * 4 * 1 * 3 * 2 * 2 * 4;
  RandomSampler sampler(sketch, 3);
  absl::flat_hash_set<std::string> seen;
  while (true) {
    std::vector<program::Program> batch = sampler.Propose(10, seen);
    for (const program::Program& p : batch) {
      REQUIRE(program::ValidateProgram(p).ok());
      REQUIRE(seen.insert(program::ProgramHash(p)).second);
    }
    if (batch.size() < 10) break;
  }
  CHECK(seen.size() == size);
  CHECK(sampler.Propose(5, seen).empty());
}

TEST_CASE("unknown sampler names the field") {
  absl::StatusOr<std::unique_ptr<Sampler>> s =
      SamplerRegistry().Make("oracle", program::DenseWorkload(4, 4, 4), "cpu", 1);
  REQUIRE_FALSE(s.ok());
  CHECK(std::string(s.status().message()) == "sampler: unknown sampler \"oracle\" (known: random, evolutionary, default)");
}

TEST_CASE("submit validation names the field") {
  tlm::v1::SubmitTaskRequest r = DenseRequest(8, 8, 8, 4);
  REQUIRE(ValidateSubmitRequest(r).ok());
  r.set_num_trials(100001);
  CHECK_THAT(std::string(ValidateSubmitRequest(r).message()),
             Catch::StartsWith("num_trials: must be between 1 and 100000"));
  r = DenseRequest(8, 8, 8, 4);
  r.mutable_measure()->set_run_timeout_s(-1);
  CHECK_THAT(std::string(ValidateSubmitRequest(r).message()),
             Catch::StartsWith("measure.run_timeout_s"));
  r = DenseRequest(8, 8, 8, 4);
  r.set_name(std::string(201, 'x'));
  CHECK_THAT(std::string(ValidateSubmitRequest(r).message()), Catch::StartsWith("name:"));
}

TEST_CASE("a task keeps its window full, stores every result once and ends with the best") {
  Core core(TempDbPath(), /*window=*/4);
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(2);
  tlm::v1::Task task = core.tuner->Submit(DenseRequest(16, 16, 16, 10)).value();
  std::shared_ptr<TaskWatch> watch = core.tuner->Watch(task.id()).value();

  // Only the window is stored ahead of results.
  CHECK(core.store->Counts()->programs == 4);
  int answered = 0;
  while (answered < 10) {
    const int n = core.Answer(*worker, ByHash);
    REQUIRE(n > 0);
    answered += n;
  }
  CHECK(core.Answer(*worker, ByHash) == 0);  // nothing beyond num_trials

  tlm::v1::Task done = core.tuner->Get(task.id()).value();
  CHECK(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == 10);
  CHECK(core.store->Counts()->programs == 10);

  double min = 1;
  const std::vector<tlm::v1::Trial> trials = core.store->ListTrials(task.id()).value();
  for (const tlm::v1::Trial& t : trials) {
    min = std::min(min, t.result().median_seconds());
  }
  CHECK(core.tuner->Best(task.id())->result().median_seconds() == min);

  // Events: the snapshot, ten trials, the end; then the watch is over.
  int events = 0;
  bool last_succeeded = false;
  while (std::optional<tlm::v1::TaskEvent> e = watch->Next(absl::Milliseconds(10))) {
    ++events;
    last_succeeded = e->task().state() == tlm::v1::TASK_STATE_SUCCEEDED;
  }
  CHECK(events == 12);
  CHECK(last_succeeded);
  CHECK(watch->done());
  CHECK(core.tuner->Overhead().dispatch.jobs == 10);
  CHECK(core.tuner->Overhead().enqueue_to_stored.jobs == 10);
}

TEST_CASE("a task whose space is smaller than its trials ends when it is exhausted") {
  Core core(TempDbPath(), /*window=*/8);
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(4);
  // M=N=K=1: one tiling per axis; parallel 0-2, at 0-1, local 0-1 and four
  // unroll bounds make 48 programs.
  tlm::v1::Task task = core.tuner->Submit(DenseRequest(1, 1, 1, 60)).value();
  int answered = 0;
  for (int n; (n = core.Answer(*worker, ByHash)) > 0;) answered += n;
  CHECK(answered == 48);
  tlm::v1::Task done = core.tuner->Get(task.id()).value();
  CHECK(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == 48);
  CHECK_THAT(done.message(), Catch::Contains("exhausted after 48"));
}

TEST_CASE("a task whose every trial fails ends as failed") {
  Core core(TempDbPath(), /*window=*/2);
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(2);
  tlm::v1::Task task = core.tuner->Submit(DenseRequest(4, 4, 4, 3)).value();
  int answered = 0;
  while (answered < 3) {
    std::optional<tlm::v1::MeasureJob> job = worker->NextJob(absl::Milliseconds(1));
    REQUIRE(job.has_value());
    tlm::v1::JobResult result;
    result.set_job_id(job->job_id());
    result.set_lease_id(job->lease_id());
    result.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_WRONG_ANSWER);
    result.mutable_result()->set_error_stage("check");
    REQUIRE(core.dispatcher->Complete(worker->worker_id(), result));
    core.dispatcher->Grant(worker->worker_id(), 1);
    ++answered;
  }
  tlm::v1::Task done = core.tuner->Get(task.id()).value();
  CHECK(done.state() == tlm::v1::TASK_STATE_FAILED);
  CHECK(done.trials_failed() == 3);
  CHECK(absl::IsNotFound(core.tuner->Best(task.id()).status()));
}

TEST_CASE("cancel drops queued programs but keeps results in flight") {
  Core core(TempDbPath(), /*window=*/6);
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(2);
  tlm::v1::Task task = core.tuner->Submit(DenseRequest(16, 16, 16, 20)).value();
  std::optional<tlm::v1::MeasureJob> leased = worker->NextJob(absl::Milliseconds(1));
  REQUIRE(leased.has_value());

  tlm::v1::Task cancelled = core.tuner->Cancel(task.id()).value();
  CHECK(cancelled.state() == tlm::v1::TASK_STATE_CANCELLED);
  CHECK(core.dispatcher->pending() == 2);  // the two leased jobs; the four queued are gone

  tlm::v1::JobResult result;
  result.set_job_id(leased->job_id());
  result.set_lease_id(leased->lease_id());
  result.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_NONE);
  result.mutable_result()->set_median_seconds(0.5);
  REQUIRE(core.dispatcher->Complete(worker->worker_id(), result));
  tlm::v1::Task after = core.tuner->Get(task.id()).value();
  CHECK(after.state() == tlm::v1::TASK_STATE_CANCELLED);
  CHECK(after.trials_done() == 1);
  // Cancelling again changes nothing.
  CHECK(core.tuner->Cancel(task.id())->state() == tlm::v1::TASK_STATE_CANCELLED);
}

TEST_CASE("a restarted core resumes a task with exactly its unmeasured programs") {
  const std::string path = TempDbPath();
  int64_t task_id = 0;
  {
    Core core(path, /*window=*/5);
    std::shared_ptr<WorkerSession> worker = core.ConnectWorker(1);
    task_id = core.tuner->Submit(DenseRequest(16, 16, 16, 12)).value().id();
    REQUIRE(core.Answer(*worker, ByHash, 3) == 3);
    core.tuner->StopAccepting();
    CHECK(absl::IsUnavailable(core.tuner->Submit(DenseRequest(4, 4, 4, 1)).status()));
    // The core goes away with one job leased and the rest queued.
  }
  Core core(path, /*window=*/5);
  REQUIRE(core.tuner->Resume().ok());
  std::shared_ptr<WorkerSession> worker = core.ConnectWorker(3);
  int answered = 0;
  for (int n; (n = core.Answer(*worker, ByHash)) > 0;) answered += n;
  CHECK(answered == 9);
  tlm::v1::Task done = core.tuner->Get(task_id).value();
  CHECK(done.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(done.trials_done() == 12);
  CHECK(core.store->Counts()->measurements == 12);
  CHECK(core.store->Counts()->programs == 12);
}

TEST_CASE("a float16 task is tuned on cuda workers only, with valid cuda programs") {
  Core core(TempDbPath(), /*window=*/4);
  std::shared_ptr<WorkerSession> cpu = core.ConnectWorker(2, "cpu");
  std::shared_ptr<WorkerSession> gpu = core.ConnectWorker(2, "cuda");
  tlm::v1::SubmitTaskRequest request = DenseRequest(64, 64, 64, 6);
  request.mutable_workload()->set_dtype(tlm::v1::DTYPE_FLOAT16);
  request.mutable_target()->set_kind("cuda");
  const tlm::v1::Task task = core.tuner->Submit(request).value();
  CHECK(core.Answer(*cpu, ByHash) == 0);
  int answered = 0;
  while (answered < 6) {
    const int n = core.Answer(*gpu, ByHash);
    REQUIRE(n > 0);
    answered += n;
  }
  CHECK(core.tuner->Get(task.id())->state() == tlm::v1::TASK_STATE_SUCCEEDED);
  const std::vector<tlm::v1::Trial> trials = core.store->ListTrials(task.id()).value();
  REQUIRE(trials.size() == 6);
  for (const tlm::v1::Trial& t : trials) {
    absl::StatusOr<program::Program> p = program::ProgramFromProto(t.program());
    REQUIRE(p.ok());
    CHECK(p->target == "cuda");
    CHECK(p->workload.dtype == program::DType::kFloat16);
  }

  // The same workload on cpu is refused, naming the dtype, and stores nothing.
  request.mutable_target()->set_kind("cpu");
  const int64_t tasks = core.store->Counts()->tasks;
  absl::StatusOr<tlm::v1::Task> refused = core.tuner->Submit(request);
  REQUIRE(absl::IsInvalidArgument(refused.status()));
  CHECK_THAT(std::string(refused.status().message()),
             Catch::StartsWith("workload.dtype: float16 is not supported on target cpu"));
  CHECK(core.store->Counts()->tasks == tasks);
}

tlm::v1::GpuProperties Gpu(int threads, int64_t optin, int registers) {
  tlm::v1::GpuProperties gpu;
  gpu.set_arch("sm_90");
  gpu.set_max_threads_per_block(threads);
  gpu.set_shared_bytes_per_block(std::min<int64_t>(optin, 48 * 1024));
  gpu.set_shared_bytes_per_block_optin(optin);
  gpu.set_registers_per_block(registers);
  return gpu;
}

tlm::v1::SubmitTaskRequest CudaRequest(int trials) {
  tlm::v1::SubmitTaskRequest request = DenseRequest(256, 256, 256, trials);
  request.mutable_target()->set_kind("cuda");
  return request;
}

// Every stored program of the task is valid within `limits`; returns how
// many there are.
size_t CheckAllWithin(Core& core, int64_t task_id, const tlm::v1::TargetLimits& limits) {
  const std::vector<tlm::v1::Trial> trials = core.store->ListTrials(task_id).value();
  for (const tlm::v1::Trial& t : trials) {
    const program::Program p = program::ProgramFromProto(t.program()).value();
    const absl::Status fits = program::ValidateProgram(p, program::LimitsFromProto(limits));
    INFO(t.program().text());
    CHECK(fits.ok());
  }
  return trials.size();
}

TEST_CASE("a cuda task takes the tightest limits of its GPUs, keeps them over a restart, "
          "and its jobs go only to GPUs that meet them") {
  const std::string path = TempDbPath();
  int64_t task_id = 0;
  tlm::v1::TargetLimits limits;
  {
    Core core(path, /*window=*/4);
    std::shared_ptr<WorkerSession> big = core.ConnectWorker(2, "cuda", Gpu(1024, 227 * 1024, 65536));
    std::shared_ptr<WorkerSession> small = core.ConnectWorker(2, "cuda", Gpu(256, 16 * 1024, 32768));
    const tlm::v1::Task task = core.tuner->Submit(CudaRequest(40)).value();
    task_id = task.id();
    limits = task.target().limits();
    CHECK(limits.max_threads_per_block() == 256);
    CHECK(limits.max_shared_bytes_per_block() == 16 * 1024);
    CHECK(limits.max_registers_per_block() == 32768);
    CHECK(core.tuner->Get(task_id)->target().limits().max_threads_per_block() == 256);
    int answered = 0;
    while (answered < 20) {
      const int n = core.Answer(*big, ByHash, 2) + core.Answer(*small, ByHash, 2);
      REQUIRE(n > 0);
      answered += n;
    }
    core.tuner->StopAccepting();
  }
  // After a restart, with only a large GPU connected, the task keeps its limits.
  Core core(path, /*window=*/4);
  REQUIRE(core.tuner->Resume().ok());
  std::shared_ptr<WorkerSession> big = core.ConnectWorker(4, "cuda", Gpu(1024, 227 * 1024, 65536));
  for (int n; (n = core.Answer(*big, ByHash)) > 0;) {
  }
  CHECK(core.tuner->Get(task_id)->state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(CheckAllWithin(core, task_id, limits) == 40);

  // Limits a request names are kept; a GPU that does not meet them gets no job.
  std::shared_ptr<WorkerSession> small = core.ConnectWorker(4, "cuda", Gpu(256, 16 * 1024, 32768));
  tlm::v1::SubmitTaskRequest wide = CudaRequest(12);
  wide.mutable_target()->mutable_limits()->set_max_shared_bytes_per_block(100 * 1024);
  const tlm::v1::Task wide_task = core.tuner->Submit(wide).value();
  CHECK(wide_task.target().limits().max_threads_per_block() == 1024);
  CHECK(wide_task.target().limits().max_shared_bytes_per_block() == 100 * 1024);
  CHECK(core.Answer(*small, ByHash) == 0);
  for (int n; (n = core.Answer(*big, ByHash)) > 0;) {
  }
  CHECK(core.tuner->Get(wide_task.id())->state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(CheckAllWithin(core, wide_task.id(), wide_task.target().limits()) == 12);
}

TEST_CASE("a cuda task with no GPU connected takes the portable limits; bad limits are named") {
  Core core(TempDbPath());
  const tlm::v1::Task task = core.tuner->Submit(CudaRequest(4)).value();
  CHECK(task.target().limits().max_threads_per_block() == 1024);
  CHECK(task.target().limits().max_shared_bytes_per_block() == 48 * 1024);
  CHECK(task.target().limits().max_registers_per_block() == 65536);

  tlm::v1::SubmitTaskRequest cpu = DenseRequest(8, 8, 8, 4);
  cpu.mutable_target()->mutable_limits()->set_max_threads_per_block(256);
  CHECK(std::string(core.tuner->Submit(cpu).status().message()) ==
        "target.limits: only cuda targets take limits, not cpu");
  tlm::v1::SubmitTaskRequest threads = CudaRequest(4);
  threads.mutable_target()->mutable_limits()->set_max_threads_per_block(4096);
  CHECK(std::string(core.tuner->Submit(threads).status().message()) ==
        "target.limits.max_threads_per_block: must be between 32 and 1024 (or 0 for the "
        "default), got 4096");
  tlm::v1::SubmitTaskRequest shared = CudaRequest(4);
  shared.mutable_target()->mutable_limits()->set_max_shared_bytes_per_block(-1);
  CHECK_THAT(std::string(core.tuner->Submit(shared).status().message()),
             Catch::StartsWith("target.limits.max_shared_bytes_per_block: must be between"));
  CHECK(core.store->Counts()->tasks == 1);
}

TEST_CASE("invalid submissions store nothing") {
  Core core(TempDbPath());
  tlm::v1::SubmitTaskRequest bad = DenseRequest(8, 8, 0, 4);
  absl::StatusOr<tlm::v1::Task> r = core.tuner->Submit(bad);
  REQUIRE(absl::IsInvalidArgument(r.status()));
  CHECK(std::string(r.status().message()) == "workload.params: K must be at least 1, got 0");
  CHECK(core.store->Counts()->tasks == 0);
  CHECK(absl::IsNotFound(core.tuner->Get(99).status()));
  CHECK(absl::IsNotFound(core.tuner->Watch(99).status()));
}

}  // namespace
}  // namespace tlm::server

// Dispatcher logic with a fake clock; workers are played through sessions.
#include "server/dispatcher.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <thread>

namespace tlm::server {
namespace {

// Thread-safe so that concurrent tests can advance it from several threads.
class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1700000000);
};

struct Harness {
  explicit Harness(int max_attempts = 3) {
    Dispatcher::Options options;
    options.max_attempts = max_attempts;
    options.lease_margin = absl::Seconds(10);
    options.heartbeat_interval = absl::Seconds(1);
    options.clock = [this] { return clock.Now(); };
    dispatcher = std::make_unique<Dispatcher>(options, [this](const JobOutcome& o) {
      absl::MutexLock lock(&mu);
      outcomes.push_back(o);
    });
  }

  std::shared_ptr<WorkerSession> Connect(const std::string& kind, int credits,
                                         const std::string& device = "") {
    tlm::v1::RegisterRequest r;
    r.set_name(kind + "-worker");
    r.mutable_capabilities()->mutable_target()->set_kind(kind);
    r.mutable_capabilities()->mutable_target()->set_device(device);
    r.mutable_capabilities()->set_max_in_flight(std::max(1, credits));
    std::shared_ptr<WorkerSession> s = dispatcher->Connect(r).value();
    if (credits > 0) dispatcher->Grant(s->worker_id(), credits);
    return s;
  }

  static Job MakeJob(int64_t id, const std::string& kind = "cpu", int64_t task = 1,
                     const std::string& device = "") {
    Job job;
    job.job_id = id;
    job.task_id = task;
    job.target.set_kind(kind);
    job.target.set_device(device);
    job.program.set_text("program " + std::to_string(id));
    job.options.set_build_timeout_s(5);
    job.options.set_run_timeout_s(5);
    return job;
  }

  static tlm::v1::JobResult Result(const tlm::v1::MeasureJob& job, double seconds = 0.001) {
    tlm::v1::JobResult r;
    r.set_job_id(job.job_id());
    r.set_lease_id(job.lease_id());
    r.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_NONE);
    r.mutable_result()->set_median_seconds(seconds);
    return r;
  }

  std::vector<JobOutcome> Outcomes() {
    absl::MutexLock lock(&mu);
    return outcomes;
  }

  // Waits (bounded) until at least `n` outcomes have arrived; returns how many did.
  size_t WaitForOutcomes(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return outcomes.size() >= n; };
    mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return outcomes.size();
  }

  FakeClock clock;
  absl::Mutex mu;
  std::vector<JobOutcome> outcomes ABSL_GUARDED_BY(mu);
  std::unique_ptr<Dispatcher> dispatcher;
};

std::optional<tlm::v1::MeasureJob> Take(WorkerSession& s) {
  return s.NextJob(absl::ZeroDuration());
}

TEST_CASE("jobs go only to workers of their kind and device, one per credit, in order") {
  Harness h;
  auto cpu = h.Connect("cpu", 2);
  auto gpu = h.Connect("cuda", 5, "sm_90");
  for (int id = 1; id <= 3; ++id) h.dispatcher->Enqueue(Harness::MakeJob(id));
  h.dispatcher->Enqueue(Harness::MakeJob(10, "cuda", 1, "sm_80"));  // no such device
  h.dispatcher->Enqueue(Harness::MakeJob(11, "cuda", 1, "sm_90"));

  auto first = Take(*cpu);
  auto second = Take(*cpu);
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(first->job_id() == 1);
  CHECK(second->job_id() == 2);
  CHECK(first->attempt() == 1);
  CHECK(first->lease_ms() == 20000);    // 5 s build + 5 s run + 10 s margin
  CHECK_FALSE(Take(*cpu).has_value());  // out of credits

  auto g = Take(*gpu);
  REQUIRE(g.has_value());
  CHECK(g->job_id() == 11);
  CHECK_FALSE(Take(*gpu).has_value());  // job 10 waits for an sm_80 worker

  h.dispatcher->Grant(cpu->worker_id(), 1);
  auto third = Take(*cpu);
  REQUIRE(third.has_value());
  CHECK(third->job_id() == 3);

  std::vector<tlm::v1::QueueStatus> queues = h.dispatcher->Queues();
  REQUIRE(queues.size() == 2);
  CHECK(queues[0].target_kind() == "cpu");
  CHECK(queues[0].queued() == 0);
  CHECK(queues[0].leased() == 3);
  CHECK(queues[1].target_kind() == "cuda");
  CHECK(queues[1].queued() == 1);
  CHECK(queues[1].leased() == 1);
}

// A cuda worker whose GPU reports these per-block limits.
std::shared_ptr<WorkerSession> ConnectGpu(Harness& h, int credits, int threads, int64_t optin,
                                          int registers) {
  tlm::v1::RegisterRequest r;
  r.set_name("gpu-worker");
  r.mutable_capabilities()->mutable_target()->set_kind("cuda");
  r.mutable_capabilities()->set_max_in_flight(credits);
  tlm::v1::GpuProperties* gpu = r.mutable_capabilities()->mutable_gpu();
  gpu->set_max_threads_per_block(threads);
  gpu->set_shared_bytes_per_block(48 * 1024);
  gpu->set_shared_bytes_per_block_optin(optin);
  gpu->set_registers_per_block(registers);
  std::shared_ptr<WorkerSession> s = h.dispatcher->Connect(r).value();
  h.dispatcher->Grant(s->worker_id(), credits);
  return s;
}

TEST_CASE("a job with limits goes only to GPUs that meet each of them") {
  Harness h;
  CHECK_FALSE(h.dispatcher->TightestLimits(Harness::MakeJob(1, "cuda").target).has_value());
  auto big = ConnectGpu(h, 10, 1024, 227 * 1024, 65536);
  auto small = ConnectGpu(h, 10, 512, 99 * 1024, 65536);
  h.Connect("cpu", 10);

  const tlm::v1::TargetLimits tightest =
      h.dispatcher->TightestLimits(Harness::MakeJob(1, "cuda").target).value();
  CHECK(tightest.max_threads_per_block() == 512);
  CHECK(tightest.max_shared_bytes_per_block() == 99 * 1024);
  CHECK(tightest.max_registers_per_block() == 65536);
  CHECK_FALSE(h.dispatcher->TightestLimits(Harness::MakeJob(1, "cpu").target).has_value());

  Job wide = Harness::MakeJob(1, "cuda");
  wide.target.mutable_limits()->set_max_shared_bytes_per_block(160 * 1024);
  Job threads = Harness::MakeJob(2, "cuda");
  threads.target.mutable_limits()->set_max_threads_per_block(1024);
  Job fits_both = Harness::MakeJob(3, "cuda");
  *fits_both.target.mutable_limits() = tightest;
  h.dispatcher->Enqueue(wide);
  h.dispatcher->Enqueue(threads);
  h.dispatcher->Enqueue(fits_both);
  h.dispatcher->Enqueue(Harness::MakeJob(4, "cuda"));  // no limits: any cuda worker

  std::set<int64_t> on_small;
  while (auto job = Take(*small)) on_small.insert(job->job_id());
  std::set<int64_t> on_big;
  while (auto job = Take(*big)) on_big.insert(job->job_id());
  CHECK(on_small.count(1) == 0);
  CHECK(on_small.count(2) == 0);
  CHECK(on_big.count(1) == 1);
  CHECK(on_big.count(2) == 1);
  CHECK(on_small.size() + on_big.size() == 4);
}

TEST_CASE("work is spread over workers round-robin") {
  Harness h;
  auto a = h.Connect("cpu", 4);
  auto b = h.Connect("cpu", 4);
  for (int id = 1; id <= 4; ++id) h.dispatcher->Enqueue(Harness::MakeJob(id));
  int to_a = 0;
  int to_b = 0;
  while (Take(*a)) ++to_a;
  while (Take(*b)) ++to_b;
  CHECK(to_a == 2);
  CHECK(to_b == 2);
}

TEST_CASE("an expired lease is requeued and its late result ignored") {
  Harness h;
  auto w = h.Connect("cpu", 2);
  h.dispatcher->Enqueue(Harness::MakeJob(1));
  auto old_lease = Take(*w);
  REQUIRE(old_lease.has_value());

  h.clock.Advance(absl::Seconds(21));
  h.dispatcher->Heartbeat(w->worker_id());
  h.dispatcher->Tick();
  auto new_lease = Take(*w);
  REQUIRE(new_lease.has_value());
  CHECK(new_lease->job_id() == 1);
  CHECK(new_lease->attempt() == 2);
  CHECK(new_lease->lease_id() != old_lease->lease_id());

  CHECK_FALSE(h.dispatcher->Complete(w->worker_id(), Harness::Result(*old_lease)));
  CHECK(h.Outcomes().empty());
  CHECK(h.dispatcher->Complete(w->worker_id(), Harness::Result(*new_lease, 0.5)));
  REQUIRE(h.Outcomes().size() == 1);
  CHECK(h.Outcomes()[0].attempt == 2);
  CHECK(h.Outcomes()[0].result.median_seconds() == 0.5);
  CHECK(h.Outcomes()[0].completed_at - h.Outcomes()[0].enqueued_at == absl::Seconds(21));
  // The same result again is a duplicate.
  CHECK_FALSE(h.dispatcher->Complete(w->worker_id(), Harness::Result(*new_lease)));
  CHECK(h.Outcomes().size() == 1);
  CHECK(h.dispatcher->pending() == 0);
}

TEST_CASE("a disconnected worker's jobs go to another worker") {
  Harness h;
  auto a = h.Connect("cpu", 2);
  h.dispatcher->Enqueue(Harness::MakeJob(1));
  h.dispatcher->Enqueue(Harness::MakeJob(2));
  REQUIRE(Take(*a).has_value());
  REQUIRE(Take(*a).has_value());
  auto b = h.Connect("cpu", 0);
  h.dispatcher->Disconnect(a->worker_id());
  CHECK(a->closed());
  h.dispatcher->Grant(b->worker_id(), 2);
  auto j1 = Take(*b);
  auto j2 = Take(*b);
  REQUIRE(j1.has_value());
  REQUIRE(j2.has_value());
  CHECK(j1->job_id() == 1);  // order kept
  CHECK(j2->job_id() == 2);
  CHECK(j1->attempt() == 2);
  // The gone worker's results no longer count.
  tlm::v1::MeasureJob stale = *j1;
  CHECK_FALSE(h.dispatcher->Complete(a->worker_id(), Harness::Result(stale)));
  CHECK(h.dispatcher->Complete(b->worker_id(), Harness::Result(*j1)));
  CHECK(h.Outcomes().size() == 1);
  h.dispatcher->Disconnect(a->worker_id());  // idempotent
}

TEST_CASE("a result from a worker that does not hold the lease is ignored") {
  Harness h;
  auto a = h.Connect("cpu", 1);
  auto b = h.Connect("cpu", 1);
  h.dispatcher->Enqueue(Harness::MakeJob(1));
  std::optional<tlm::v1::MeasureJob> job = Take(*a);
  std::shared_ptr<WorkerSession> holder = a;
  std::shared_ptr<WorkerSession> other = b;
  if (!job.has_value()) {
    job = Take(*b);
    std::swap(holder, other);
  }
  REQUIRE(job.has_value());
  CHECK_FALSE(h.dispatcher->Complete(other->worker_id(), Harness::Result(*job)));
  CHECK(h.Outcomes().empty());
  CHECK(h.dispatcher->Complete(holder->worker_id(), Harness::Result(*job)));
  CHECK(h.Outcomes().size() == 1);
}

TEST_CASE("a job lost max_attempts times ends as an UNKNOWN error") {
  Harness h(/*max_attempts=*/2);
  h.dispatcher->Enqueue(Harness::MakeJob(7));
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto w = h.Connect("cpu", 1);
    auto job = Take(*w);
    REQUIRE(job.has_value());
    CHECK(job->attempt() == attempt);
    h.dispatcher->Disconnect(w->worker_id());  // the program "killed" the worker
  }
  const std::vector<JobOutcome> outcomes = h.Outcomes();
  REQUIRE(outcomes.size() == 1);
  const JobOutcome& o = outcomes[0];
  CHECK(o.job.job_id == 7);
  CHECK(o.worker_id.empty());
  CHECK(o.attempt == 2);
  CHECK(o.result.error_kind() == tlm::v1::ERROR_KIND_UNKNOWN);
  CHECK(o.result.error_stage() == "dispatch");
  CHECK_THAT(o.result.error_message(), Catch::Contains("no result after 2 attempts"));
  CHECK_THAT(o.result.error_message(), Catch::Contains("disconnected"));
  CHECK(h.dispatcher->pending() == 0);
}

TEST_CASE("a silent worker is dropped after three heartbeat intervals") {
  Harness h;
  auto silent = h.Connect("cpu", 1);
  auto alive = h.Connect("cpu", 0);
  h.dispatcher->Enqueue(Harness::MakeJob(1));
  REQUIRE(Take(*silent).has_value());
  h.clock.Advance(absl::Milliseconds(2500));
  h.dispatcher->Heartbeat(alive->worker_id());
  h.dispatcher->Tick();
  CHECK_FALSE(silent->closed());  // 2.5 intervals
  h.clock.Advance(absl::Milliseconds(1000));
  h.dispatcher->Heartbeat(alive->worker_id());
  h.dispatcher->Tick();
  CHECK(silent->closed());
  CHECK(h.dispatcher->Workers().size() == 1);
  h.dispatcher->Grant(alive->worker_id(), 1);
  auto moved = Take(*alive);
  REQUIRE(moved.has_value());
  CHECK(moved->attempt() == 2);
}

TEST_CASE("cancelling a task drops its queued jobs only") {
  Harness h;
  auto w = h.Connect("cpu", 1);
  h.dispatcher->Enqueue(Harness::MakeJob(1, "cpu", /*task=*/5));
  h.dispatcher->Enqueue(Harness::MakeJob(2, "cpu", 5));
  h.dispatcher->Enqueue(Harness::MakeJob(3, "cpu", 6));
  auto leased = Take(*w);
  REQUIRE(leased.has_value());
  CHECK(h.dispatcher->CancelTask(5) == 1);
  CHECK(h.dispatcher->pending() == 2);
  CHECK(h.dispatcher->Complete(w->worker_id(), Harness::Result(*leased)));
  h.dispatcher->Grant(w->worker_id(), 1);
  auto next = Take(*w);
  REQUIRE(next.has_value());
  CHECK(next->job_id() == 3);
}

TEST_CASE("registration errors name the field") {
  Harness h;
  tlm::v1::RegisterRequest r;
  r.mutable_capabilities()->set_max_in_flight(1);
  auto no_kind = h.dispatcher->Connect(r);
  REQUIRE_FALSE(no_kind.ok());
  CHECK_THAT(std::string(no_kind.status().message()),
             Catch::StartsWith("register.capabilities.target.kind"));
  r.mutable_capabilities()->mutable_target()->set_kind("cpu");
  r.mutable_capabilities()->set_max_in_flight(0);
  auto no_slots = h.dispatcher->Connect(r);
  REQUIRE_FALSE(no_slots.ok());
  CHECK_THAT(std::string(no_slots.status().message()),
             Catch::StartsWith("register.capabilities.max_in_flight"));
  auto ok = h.Connect("cpu", 1);
  CHECK(h.dispatcher->Registration(ok->worker_id()).heartbeat_interval_ms() == 1000);
}

TEST_CASE("NextJob blocks until a job arrives or the session closes") {
  Harness h;
  auto w = h.Connect("cpu", 1);
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    h.dispatcher->Enqueue(Harness::MakeJob(1));
  });
  auto job = w->NextJob(absl::Seconds(30));
  producer.join();
  REQUIRE(job.has_value());
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    h.dispatcher->Disconnect(w->worker_id());
  });
  CHECK_FALSE(w->NextJob(absl::Seconds(30)).has_value());
  closer.join();
  CHECK(w->closed());
}

TEST_CASE("concurrent workers complete every job exactly once") {
  Harness h;
  constexpr int kJobs = 400;
  constexpr int kWorkers = 4;
  std::vector<std::shared_ptr<WorkerSession>> sessions;
  for (int i = 0; i < kWorkers; ++i) sessions.push_back(h.Connect("cpu", 2));
  std::atomic<int> completed{0};
  std::vector<std::thread> threads;
  for (auto& s : sessions) {
    threads.emplace_back([&, s] {
      while (completed < kJobs) {
        std::optional<tlm::v1::MeasureJob> job = s->NextJob(absl::Milliseconds(5));
        if (!job.has_value()) continue;
        if (h.dispatcher->Complete(s->worker_id(), Harness::Result(*job))) ++completed;
        // A duplicate send must never count twice.
        h.dispatcher->Complete(s->worker_id(), Harness::Result(*job));
        h.dispatcher->Grant(s->worker_id(), 1);
      }
    });
  }
  for (int id = 1; id <= kJobs; ++id) h.dispatcher->Enqueue(Harness::MakeJob(id));
  for (std::thread& t : threads) t.join();
  std::vector<JobOutcome> outcomes = h.Outcomes();
  CHECK(outcomes.size() == kJobs);
  std::map<int64_t, int> seen;
  for (const JobOutcome& o : outcomes) ++seen[o.job.job_id];
  CHECK(seen.size() == kJobs);
  CHECK(h.dispatcher->pending() == 0);
}

TEST_CASE("a worker with a device also takes jobs that name no device, oldest first") {
  Harness h;
  h.dispatcher->Enqueue(Harness::MakeJob(1, "cuda", 1));
  h.dispatcher->Enqueue(Harness::MakeJob(2, "cuda", 1, "sm_90"));
  h.dispatcher->Enqueue(Harness::MakeJob(3, "cuda", 1, "sm_80"));
  h.dispatcher->Enqueue(Harness::MakeJob(4, "cuda", 1));
  h.dispatcher->Enqueue(Harness::MakeJob(5, "cpu", 1));
  auto gpu = h.Connect("cuda", 10, "sm_90");
  std::vector<int64_t> got;
  while (auto job = Take(*gpu)) got.push_back(job->job_id());
  CHECK(got == std::vector<int64_t>{1, 2, 4});

  // A worker without a device takes only jobs that name none.
  auto any = h.Connect("cuda", 10);
  CHECK_FALSE(Take(*any).has_value());
  h.dispatcher->Enqueue(Harness::MakeJob(6, "cuda", 1, "sm_90"));
  h.dispatcher->Enqueue(Harness::MakeJob(7, "cuda", 1));
  auto to_any = Take(*any);
  REQUIRE(to_any.has_value());
  CHECK(to_any->job_id() == 7);
  auto to_gpu = Take(*gpu);
  REQUIRE(to_gpu.has_value());
  CHECK(to_gpu->job_id() == 6);
  CHECK(h.dispatcher->pending() == 7);  // 3 and 5 still queued
}

TEST_CASE("neither a result nor an expired lease gives a credit back") {
  Harness h;
  auto w = h.Connect("cpu", 1);
  for (int id = 1; id <= 3; ++id) h.dispatcher->Enqueue(Harness::MakeJob(id));
  auto first = Take(*w);
  REQUIRE(first.has_value());
  CHECK(h.dispatcher->Complete(w->worker_id(), Harness::Result(*first)));
  CHECK_FALSE(Take(*w).has_value());  // the result did not grant a credit
  h.dispatcher->Grant(w->worker_id(), 1);
  auto second = Take(*w);
  REQUIRE(second.has_value());
  CHECK(second->job_id() == 2);

  h.clock.Advance(absl::Seconds(21));
  h.dispatcher->Heartbeat(w->worker_id());
  h.dispatcher->Tick();
  CHECK_FALSE(Take(*w).has_value());  // the worker may still be busy with job 2
  std::vector<tlm::v1::WorkerInfo> workers = h.dispatcher->Workers();
  REQUIRE(workers.size() == 1);
  CHECK(workers[0].credits() == 0);
  CHECK(workers[0].in_flight() == 0);
  CHECK(workers[0].results() == 1);

  // The requeued job goes ahead of the job that waited behind it.
  h.dispatcher->Grant(w->worker_id(), 2);
  auto again = Take(*w);
  auto third = Take(*w);
  REQUIRE(again.has_value());
  REQUIRE(third.has_value());
  CHECK(again->job_id() == 2);
  CHECK(again->attempt() == 2);
  CHECK(third->job_id() == 3);
  CHECK(third->attempt() == 1);
  CHECK(third->lease_id() > again->lease_id());
}

TEST_CASE("a job whose leases keep expiring ends as an UNKNOWN error") {
  Harness h(/*max_attempts=*/3);
  auto w = h.Connect("cpu", 3);
  h.dispatcher->Enqueue(Harness::MakeJob(9));
  int64_t last_lease = 0;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto job = Take(*w);
    REQUIRE(job.has_value());
    CHECK(job->attempt() == attempt);
    CHECK(job->lease_id() > last_lease);
    last_lease = job->lease_id();
    CHECK(h.Outcomes().empty());
    h.clock.Advance(absl::Seconds(20));
    h.dispatcher->Heartbeat(w->worker_id());
    h.dispatcher->Tick();  // exactly at the deadline: still current
    CHECK(h.dispatcher->Queues()[0].leased() == 1);
    h.clock.Advance(absl::Milliseconds(1));
    h.dispatcher->Heartbeat(w->worker_id());
    h.dispatcher->Tick();
  }
  const std::vector<JobOutcome> outcomes = h.Outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].job.job_id == 9);
  CHECK(outcomes[0].worker_id.empty());
  CHECK(outcomes[0].attempt == 3);
  CHECK(outcomes[0].result.error_kind() == tlm::v1::ERROR_KIND_UNKNOWN);
  CHECK_THAT(outcomes[0].result.error_message(), Catch::Contains("no result after 3 attempts"));
  CHECK_THAT(outcomes[0].result.error_message(), Catch::Contains("lease expired"));
  CHECK(outcomes[0].completed_at - outcomes[0].enqueued_at == absl::Milliseconds(60003));
  CHECK(h.dispatcher->pending() == 0);
  CHECK_FALSE(Take(*w).has_value());
}

TEST_CASE("workers are listed in connection order with live counters") {
  Harness h;
  std::vector<std::shared_ptr<WorkerSession>> sessions;
  for (int i = 0; i < 11; ++i) sessions.push_back(h.Connect("cpu", 0));
  h.dispatcher->Grant(sessions[9]->worker_id(), 3);
  h.dispatcher->Enqueue(Harness::MakeJob(1));
  h.clock.Advance(absl::Milliseconds(1500));
  h.dispatcher->Heartbeat(sessions[9]->worker_id());
  std::vector<tlm::v1::WorkerInfo> workers = h.dispatcher->Workers();
  REQUIRE(workers.size() == 11);
  for (int i = 0; i < 11; ++i) CHECK(workers[i].worker_id() == "w-" + std::to_string(i + 1));
  const tlm::v1::WorkerInfo& busy = workers[9];
  CHECK(busy.name() == "cpu-worker");
  CHECK(busy.capabilities().target().kind() == "cpu");
  CHECK(busy.credits() == 2);
  CHECK(busy.in_flight() == 1);
  CHECK(busy.last_heartbeat_unix_ms() - busy.connected_unix_ms() == 1500);
  CHECK(workers[0].in_flight() == 0);

  // Results add up the time the worker spent building and on its device.
  auto job = Take(*sessions[9]);
  REQUIRE(job.has_value());
  tlm::v1::JobResult result = Harness::Result(*job);
  result.mutable_result()->set_build_seconds(0.25);
  result.mutable_result()->set_run_seconds(0.5);
  REQUIRE(h.dispatcher->Complete(sessions[9]->worker_id(), result));
  h.dispatcher->Enqueue(Harness::MakeJob(2));
  job = Take(*sessions[9]);
  REQUIRE(job.has_value());
  result = Harness::Result(*job);
  result.mutable_result()->set_build_seconds(0.5);
  result.mutable_result()->set_run_seconds(1.0);
  REQUIRE(h.dispatcher->Complete(sessions[9]->worker_id(), result));
  const tlm::v1::WorkerInfo after = h.dispatcher->Workers()[9];
  CHECK(after.results() == 2);
  CHECK(after.build_seconds() == 0.75);
  CHECK(after.run_seconds() == 1.5);
}

TEST_CASE("jobs are spread round-robin over three workers") {
  Harness h;
  std::vector<std::shared_ptr<WorkerSession>> sessions;
  for (int i = 0; i < 3; ++i) sessions.push_back(h.Connect("cpu", 10));
  for (int id = 1; id <= 9; ++id) h.dispatcher->Enqueue(Harness::MakeJob(id));
  for (auto& s : sessions) {
    int n = 0;
    while (Take(*s)) ++n;
    CHECK(n == 3);
  }
}

TEST_CASE("a job without a target kind ends at once; a duplicate enqueue is ignored") {
  Harness h;
  auto w = h.Connect("cpu", 2);
  h.dispatcher->Enqueue(Harness::MakeJob(1, ""));
  REQUIRE(h.Outcomes().size() == 1);
  CHECK(h.Outcomes()[0].result.error_kind() == tlm::v1::ERROR_KIND_UNKNOWN);
  CHECK_THAT(h.Outcomes()[0].result.error_message(), Catch::Contains("target kind"));
  CHECK(h.dispatcher->pending() == 0);

  h.dispatcher->Enqueue(Harness::MakeJob(2));
  h.dispatcher->Enqueue(Harness::MakeJob(2));
  CHECK(h.dispatcher->pending() == 1);
  REQUIRE(Take(*w).has_value());
  CHECK_FALSE(Take(*w).has_value());
}

TEST_CASE("the outcome callback may call back into the dispatcher") {
  FakeClock clock;
  Dispatcher* self = nullptr;
  std::vector<int64_t> done;
  Dispatcher::Options options;
  options.clock = [&clock] { return clock.Now(); };
  Dispatcher dispatcher(options, [&](const JobOutcome& o) {
    done.push_back(o.job.job_id);
    if (o.job.job_id < 3) self->Enqueue(Harness::MakeJob(o.job.job_id + 1));
    self->Queues();
  });
  self = &dispatcher;
  tlm::v1::RegisterRequest r;
  r.mutable_capabilities()->mutable_target()->set_kind("cpu");
  r.mutable_capabilities()->set_max_in_flight(1);
  std::shared_ptr<WorkerSession> w = dispatcher.Connect(r).value();
  dispatcher.Enqueue(Harness::MakeJob(1));
  for (int i = 0; i < 3; ++i) {
    dispatcher.Grant(w->worker_id(), 1);
    auto job = Take(*w);
    REQUIRE(job.has_value());
    CHECK(dispatcher.Complete(w->worker_id(), Harness::Result(*job)));
  }
  CHECK(done == std::vector<int64_t>{1, 2, 3});
  CHECK(dispatcher.pending() == 0);
}

TEST_CASE("results racing lease expiry, silence and disconnects end every job exactly once") {
  Harness h;  // leases of 20 s, heartbeats every 1 s
  constexpr int kJobs = 300;
  constexpr int kWorkers = 4;
  for (int id = 1; id <= kJobs; ++id) h.dispatcher->Enqueue(Harness::MakeJob(id));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      std::shared_ptr<WorkerSession> s = h.Connect("cpu", 2);
      int handled = 0;
      while (!stop) {
        if (s->closed()) s = h.Connect("cpu", 2);  // dropped as silent: come back
        h.dispatcher->Heartbeat(s->worker_id());
        std::optional<tlm::v1::MeasureJob> job = s->NextJob(absl::Milliseconds(1));
        if (!job.has_value()) {
          // Idle: let time pass so that unanswered leases expire.
          h.clock.Advance(absl::Milliseconds(100));
          h.dispatcher->Tick();
          continue;
        }
        ++handled;
        h.clock.Advance(absl::Milliseconds(500));
        h.dispatcher->Tick();
        // Odd workers get killed by some programs, even ones hang on some.
        if (t % 2 == 1 && handled % 7 == 0) {
          h.dispatcher->Disconnect(s->worker_id());
          s = h.Connect("cpu", 2);
          continue;
        }
        if (t % 2 == 0 && handled % 5 == 0) {  // never answered: the lease expires
          h.dispatcher->Grant(s->worker_id(), 1);
          continue;
        }
        h.dispatcher->Complete(s->worker_id(), Harness::Result(*job));
        h.dispatcher->Complete(s->worker_id(), Harness::Result(*job));  // duplicate
        h.dispatcher->Grant(s->worker_id(), 1);
      }
    });
  }
  const size_t arrived = h.WaitForOutcomes(kJobs, absl::Seconds(60));
  stop = true;
  for (std::thread& t : threads) t.join();
  CHECK(arrived == kJobs);

  const std::vector<JobOutcome> outcomes = h.Outcomes();
  CHECK(outcomes.size() == kJobs);
  std::map<int64_t, int> seen;
  for (const JobOutcome& o : outcomes) {
    ++seen[o.job.job_id];
    CHECK(o.attempt >= 1);
    CHECK(o.attempt <= 3);
    if (o.worker_id.empty()) {
      CHECK(o.result.error_kind() == tlm::v1::ERROR_KIND_UNKNOWN);
      CHECK(o.attempt == 3);
    } else {
      CHECK(o.result.error_kind() == tlm::v1::ERROR_KIND_NONE);
    }
  }
  CHECK(seen.size() == kJobs);
  for (const auto& [id, n] : seen) CHECK(n == 1);
  CHECK(h.dispatcher->pending() == 0);
}

}  // namespace
}  // namespace tlm::server

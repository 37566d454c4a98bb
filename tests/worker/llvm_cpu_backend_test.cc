// The LLVM backend JIT-compiles real schedules of every operator and matches
// the reference executor.
#include "worker/llvm_cpu_backend.h"

#include <catch2/catch.hpp>
#include <random>

#include "program/loop_nest.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "tests/worker/kernel_check.h"
#include "worker/llvm_codegen.h"

namespace tlm::worker {
namespace {

using program::Epilogue;

TEST_CASE("JIT-compiled random programs of every operator match the reference") {
  ThreadPool pool(3);
  std::mt19937_64 rng(5);
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
    for (int n = 0; n < 6; ++n) {
      const program::Program p = n == 0 ? *program::DefaultProgram(w)
                                        : program::SampleProgram(sketch, rng);
      INFO(program::Print(p));
      const program::LoopNest nest = *program::Lower(p);
      INFO(program::PrintLoopNest(nest));
      absl::StatusOr<std::unique_ptr<CompiledKernel>> kernel = CompileLoopNest(nest);
      REQUIRE(kernel.ok());
      const KernelFn fn = (*kernel)->fn();
      CHECK(testing::WorstRatio(p, [&](float* const* b) { fn(b, &pool); }) <= 1);
    }
  }
}

TEST_CASE("the thread pool partitions a range into one chunk per thread") {
  ThreadPool pool(4);
  for (int64_t extent : {1, 3, 4, 10, 1000}) {
    std::vector<int> hits(extent, 0);
    std::mutex mu;
    int chunks = 0;
    pool.ParallelFor(extent, [&](int64_t begin, int64_t end) {
      std::lock_guard<std::mutex> lock(mu);
      ++chunks;
      CHECK(begin < end);
      for (int64_t i = begin; i < end; ++i) ++hits[i];
    });
    CHECK(chunks == std::min<int64_t>(extent, 4));
    for (int h : hits) CHECK(h == 1);
  }
}

TEST_CASE("the cpu backend measures a compiled program and names the target") {
  LlvmCpuBackend::Options two;
  two.num_threads = 2;
  LlvmCpuBackend backend(two);
  CHECK(backend.name() == "cpu");
  CHECK(backend.Capabilities().target().kind() == "cpu");
  CHECK(backend.Capabilities().num_threads() == 2);
  CHECK_THAT(backend.Capabilities().device_name(), Catch::Contains(" / "));
  program::Program p = *program::DefaultProgram(*program::MakeWorkload(
      "dense", {{"M", 64}, {"N", 64}, {"K", 64}}, {Epilogue::kBias, Epilogue::kGelu}));
  p.decisions = {2, 4, 2, 1, 2, 16, 8, 2, 1, 1, 64};
  tlm::v1::MeasureOptions options;
  options.set_min_repeat_ms(1);
  tlm::v1::MeasureResult r = backend.Measure(program::ProgramToProto(p), options);
  INFO(r.error_message());
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.repeat_seconds_size() == 3);
  CHECK(r.build_seconds() > 0);
  CHECK(r.max_abs_error() < 1e-3);
  CHECK_THAT(r.source(), Catch::Contains("compiled by LLVM 15 (O3)"));
  CHECK_THAT(r.source(), Catch::Contains("parallel for fused.i.j"));

  tlm::v1::Program bad;
  bad.set_text("dense M 64");
  CHECK(backend.Measure(bad, options).error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  // A program for another target cannot be built here.
  r = backend.Measure(program::ProgramToProto(*program::DefaultProgram(p.workload, "cuda")),
                      options);
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "parse");
  CHECK_THAT(r.error_message(), Catch::Equals("the program targets cuda; this backend measures cpu"));
}

}  // namespace
}  // namespace tlm::worker

#include "worker/cpu_ref_backend.h"

#include <catch2/catch.hpp>
#include <random>

#include "program/loop_nest.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "tests/worker/kernel_check.h"

namespace tlm::worker {
namespace {

using program::Epilogue;

program::Program Dense(int64_t m, int64_t n, int64_t k, std::vector<Epilogue> e,
                       std::vector<int64_t> decisions) {
  program::Program p =
      *program::DefaultProgram(*program::MakeWorkload("dense", {{"M", m}, {"N", n}, {"K", k}}, e));
  if (!decisions.empty()) p.decisions = std::move(decisions);
  return p;
}

double InterpretedRatio(const program::Program& p) {
  const program::LoopNest nest = *program::Lower(p);
  return testing::WorstRatio(p, [&nest](float* const* b) { REQUIRE(RunLoopNest(nest, b).ok()); });
}

TEST_CASE("every schedule of a small dense workload computes the reference result") {
  // Exhaustive: any skipped or repeated iteration would change the sums.
  const program::Program p0 = Dense(4, 6, 4, {Epilogue::kBias}, {});
  const program::Sketch sketch = *program::Sketch::Make(p0.workload, "cpu");
  int programs = 0;
  std::function<void(std::vector<int64_t>)> all = [&](std::vector<int64_t> prefix) {
    if (prefix.size() == sketch.slots().size()) {
      program::Program p = p0;
      p.decisions = prefix;
      // Unrolling does not change what the interpreter computes.
      if (p.decisions.back() != 0) return;
      ++programs;
      const double ratio = InterpretedRatio(p);
      if (ratio > 1) FAIL(program::Print(p) << " off by " << ratio << "x the tolerance");
      return;
    }
    for (int64_t v : sketch.Candidates(prefix.size(), prefix)) {
      prefix.push_back(v);
      all(prefix);
      prefix.pop_back();
    }
  };
  all({});
  CHECK(programs > 1000);
}

TEST_CASE("random programs of every operator match the reference") {
  std::mt19937_64 rng(11);
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
    for (int n = 0; n < 15; ++n) {
      const program::Program p = program::SampleProgram(sketch, rng);
      INFO(program::Print(p));
      CHECK(InterpretedRatio(p) <= 1);
    }
  }
}

TEST_CASE("measuring a valid program reports every repeat and the loop nest") {
  CpuRefBackend backend;
  const program::Program p =
      Dense(32, 16, 8, {Epilogue::kBias, Epilogue::kRelu}, {2, 2, 2, 1, 1, 16, 2, 1, 1, 1, 16});
  tlm::v1::MeasureOptions options;
  options.set_repeat(4);
  options.set_min_repeat_ms(1);
  tlm::v1::MeasureResult r = backend.Measure(program::ProgramToProto(p), options);
  INFO(r.error_message());
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.repeat_seconds_size() == 4);
  CHECK(r.median_seconds() > 0);
  CHECK(r.median_seconds() == Median({r.repeat_seconds().begin(), r.repeat_seconds().end()}));
  CHECK(r.number() >= 1);
  CHECK(r.max_abs_error() < 1e-3);
  CHECK(r.run_seconds() > 0);
  CHECK_THAT(r.source(), Catch::Contains("parallel for i.0 in 0..4:"));
  CHECK_THAT(r.source(), Catch::Contains("local float dense.acc["));
  CHECK_THAT(r.source(), Catch::Contains("bias["));
  // The same workload again reuses inputs and still checks out.
  CHECK(backend.Measure(program::ProgramToProto(Dense(32, 16, 8, {Epilogue::kBias, Epilogue::kRelu}, {})),
                        options)
            .error_kind() == tlm::v1::ERROR_KIND_NONE);
}

TEST_CASE("a wrong kernel is caught as WRONG_ANSWER") {
  CpuRefBackend::Options broken;
  broken.corrupt_output_for_testing = true;
  CpuRefBackend backend(broken);
  const tlm::v1::Program p = program::ProgramToProto(Dense(8, 8, 8, {}, {}));
  tlm::v1::MeasureResult r = backend.Measure(p, {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_WRONG_ANSWER);
  CHECK(r.error_stage() == "check");
  CHECK_THAT(r.error_message(), Catch::StartsWith("output[32] = "));
  CHECK(r.max_abs_error() == Approx(0.5).margin(1e-3));
  CHECK(r.repeat_seconds_size() == 0);

  // With checking off, the same kernel is timed: the check is what catches it.
  tlm::v1::MeasureOptions unchecked;
  unchecked.set_skip_check(true);
  unchecked.set_min_repeat_ms(0.1);
  CHECK(backend.Measure(p, unchecked).error_kind() == tlm::v1::ERROR_KIND_NONE);
}

TEST_CASE("unparsable programs are INSTANTIATION errors at the parse stage") {
  CpuRefBackend backend;
  tlm::v1::Program garbage = program::ProgramToProto(Dense(4, 4, 4, {}, {}));
  garbage.set_text(garbage.text().substr(0, garbage.text().size() - 1) + "3");
  garbage.clear_hash();
  tlm::v1::MeasureResult r = backend.Measure(garbage, {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "parse");
  CHECK_THAT(r.error_message(), Catch::Contains("unroll: must be one of"));

  tlm::v1::Program tampered = program::ProgramToProto(Dense(4, 4, 4, {}, {}));
  tampered.set_hash("0123456789abcdef");
  r = backend.Measure(tampered, {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK_THAT(r.error_message(), Catch::Contains("does not match the text"));
}

TEST_CASE("capabilities describe a one-thread cpu backend") {
  CpuRefBackend backend;
  tlm::v1::WorkerCapabilities caps = backend.Capabilities();
  CHECK(caps.target().kind() == "cpu");
  CHECK(caps.backend() == "cpu-ref");
  CHECK(caps.num_threads() == 1);
  CHECK_FALSE(caps.device_name().empty());
}

TEST_CASE("the registry makes registered backends and names the known ones otherwise") {
  BackendRegistry registry;
  registry.Register("cpu-ref", []() -> absl::StatusOr<std::unique_ptr<Backend>> {
    return std::make_unique<CpuRefBackend>();
  });
  absl::StatusOr<std::unique_ptr<Backend>> made = registry.Make("cpu-ref");
  REQUIRE(made.ok());
  CHECK((*made)->name() == "cpu-ref");
  absl::StatusOr<std::unique_ptr<Backend>> unknown = registry.Make("tpu");
  REQUIRE_FALSE(unknown.ok());
  CHECK(std::string(unknown.status().message()) == "unknown backend \"tpu\" (known: cpu-ref)");
}

}  // namespace
}  // namespace tlm::worker

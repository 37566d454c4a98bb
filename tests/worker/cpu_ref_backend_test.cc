#include "worker/cpu_ref_backend.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "program/program.h"
#include "program/sampler.h"
#include "worker/dense_harness.h"

namespace tlm::worker {
namespace {

using program::DenseProgram;
using program::DenseWorkload;
using program::Epilogue;

// Largest error relative to the per-element tolerance (<= 1 means within it).
double WorstRatio(const DenseProgram& p, const DenseData& d) {
  std::vector<float> c(p.workload.m * p.workload.n, -123.0f);
  RunDense(p, d.a.data(), d.b.data(), d.bias.empty() ? nullptr : d.bias.data(), c.data());
  double worst = 0;
  for (size_t n = 0; n < c.size(); ++n) {
    worst = std::max(worst, std::fabs(c[n] - d.expected[n]) / d.tolerance[n]);
  }
  return worst;
}

TEST_CASE("every schedule of a small workload computes the reference result") {
  // Exhaustive: any skipped or repeated iteration would change the sums.
  const DenseWorkload w{4, 6, 4, {Epilogue::kBias}};
  const DenseData d = MakeDenseData(w);
  program::ScheduleSpace space(w);
  REQUIRE(space.size() == 6 * 9 * 6 * 6);
  for (uint64_t i = 0; i < space.size(); ++i) {
    const DenseProgram p = space.At(i);
    const double ratio = WorstRatio(p, d);
    if (ratio > 1) FAIL(program::Print(p) << " off by " << ratio << "x the tolerance");
  }
}

TEST_CASE("random schedules match the reference for every epilogue") {
  const std::vector<std::vector<Epilogue>> epilogues = {{},
                                                        {Epilogue::kBias},
                                                        {Epilogue::kRelu},
                                                        {Epilogue::kBias, Epilogue::kRelu},
                                                        {Epilogue::kRelu, Epilogue::kBias}};
  std::mt19937_64 rng(11);
  for (const auto& shape :
       std::vector<std::array<int64_t, 3>>{{16, 24, 8}, {7, 5, 3}, {32, 64, 48}}) {
    for (const auto& epilogue : epilogues) {
      const DenseWorkload w{shape[0], shape[1], shape[2], epilogue};
      const DenseData d = MakeDenseData(w);
      program::ScheduleSpace space(w);
      for (int n = 0; n < 20; ++n) {
        const DenseProgram p = space.Sample(rng);
        INFO(program::Print(p));
        CHECK(WorstRatio(p, d) <= 1);
      }
    }
  }
}

TEST_CASE("the reference applies the epilogue in order") {
  const DenseData relu_then_bias = MakeDenseData({3, 3, 2, {Epilogue::kRelu, Epilogue::kBias}});
  const DenseData bias_then_relu = MakeDenseData({3, 3, 2, {Epilogue::kBias, Epilogue::kRelu}});
  bool negative_seen = false;
  for (double x : relu_then_bias.expected) negative_seen |= x < 0;
  for (double x : bias_then_relu.expected) CHECK(x >= 0);
  CHECK(negative_seen);  // a negative bias after ReLU shows through
}

tlm::v1::Program Program(const DenseProgram& p) { return program::ProgramToProto(p); }

TEST_CASE("measuring a valid program reports every repeat and the loop nest") {
  CpuRefBackend backend;
  DenseProgram p;
  p.workload = {32, 16, 8, {Epilogue::kBias, Epilogue::kRelu}};
  p.schedule = {{2, 4}, {1, 16}, {2, 2}, "kji"};
  tlm::v1::MeasureOptions options;
  options.set_repeat(4);
  options.set_min_repeat_ms(1);
  tlm::v1::MeasureResult r = backend.Measure(Program(p), options);
  INFO(r.error_message());
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.repeat_seconds_size() == 4);
  CHECK(r.median_seconds() > 0);
  CHECK(r.median_seconds() == Median({r.repeat_seconds().begin(), r.repeat_seconds().end()}));
  CHECK(r.number() >= 1);
  CHECK(r.max_abs_error() < 1e-3);
  CHECK(r.run_seconds() > 0);
  CHECK_THAT(r.source(), Catch::Contains("for k.outer in 0..2:"));
  CHECK_THAT(r.source(), Catch::Contains("for j.inner in 0..16:"));
  CHECK_THAT(r.source(), Catch::Contains("C[i, j] += bias[j]"));
  // The same workload again reuses inputs and still checks out.
  p.schedule = {{1, 1}, {1, 1}, {1, 1}, "ijk"};
  CHECK(backend.Measure(Program(p), options).error_kind() == tlm::v1::ERROR_KIND_NONE);
}

TEST_CASE("a wrong kernel is caught as WRONG_ANSWER") {
  CpuRefBackend::Options broken;
  broken.corrupt_output_for_testing = true;
  CpuRefBackend backend(broken);
  DenseProgram p = program::DefaultProgram({8, 8, 8, {}});
  tlm::v1::MeasureResult r = backend.Measure(Program(p), {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_WRONG_ANSWER);
  CHECK(r.error_stage() == "check");
  CHECK_THAT(r.error_message(), Catch::StartsWith("C[4, 0] = "));
  CHECK(r.max_abs_error() == Approx(0.5).margin(1e-3));
  CHECK(r.repeat_seconds_size() == 0);

  // With checking off, the same kernel is timed: the check is what catches it.
  tlm::v1::MeasureOptions unchecked;
  unchecked.set_skip_check(true);
  unchecked.set_min_repeat_ms(0.1);
  CHECK(backend.Measure(Program(p), unchecked).error_kind() == tlm::v1::ERROR_KIND_NONE);
}

TEST_CASE("unparsable programs are INSTANTIATION errors at the parse stage") {
  CpuRefBackend backend;
  tlm::v1::Program garbage;
  garbage.set_text("dense M=4 N=4 K=4 epilogue=none | tile i=3x1 j=1x1 k=1x1 order=ijk");
  tlm::v1::MeasureResult r = backend.Measure(garbage, {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK(r.error_stage() == "parse");
  CHECK_THAT(r.error_message(), Catch::Contains("does not divide M = 4"));

  tlm::v1::Program tampered = Program(program::DefaultProgram({4, 4, 4, {}}));
  tampered.set_hash("0123456789abcdef");
  r = backend.Measure(tampered, {});
  CHECK(r.error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
  CHECK_THAT(r.error_message(), Catch::Contains("does not match its text"));
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

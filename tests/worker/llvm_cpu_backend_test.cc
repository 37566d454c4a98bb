// The LLVM backend JIT-compiles real schedules and matches the reference.
#include "worker/llvm_cpu_backend.h"

#include <catch2/catch.hpp>
#include <random>

#include "program/program.h"
#include "program/sampler.h"
#include "worker/dense_harness.h"

namespace tlm::worker {
namespace {

using program::DenseProgram;
using program::Epilogue;

double WorstRatio(const CompiledDense& kernel, const DenseProgram& p, const DenseData& d) {
  std::vector<float> c(p.workload.m * p.workload.n, -123.0f);
  kernel.fn()(d.a.data(), d.b.data(), d.bias.empty() ? nullptr : d.bias.data(), c.data());
  double worst = 0;
  for (size_t n = 0; n < c.size(); ++n) {
    worst = std::max(worst, std::fabs(c[n] - d.expected[n]) / d.tolerance[n]);
  }
  return worst;
}

TEST_CASE("JIT-compiled random schedules match the reference for every epilogue") {
  const std::vector<std::vector<Epilogue>> epilogues = {
      {}, {Epilogue::kBias}, {Epilogue::kRelu}, {Epilogue::kBias, Epilogue::kRelu}};
  std::mt19937_64 rng(5);
  for (const auto& shape :
       std::vector<std::array<int64_t, 3>>{{16, 24, 8}, {7, 5, 3}, {64, 96, 32}}) {
    for (const auto& epilogue : epilogues) {
      const program::DenseWorkload w{shape[0], shape[1], shape[2], epilogue};
      const DenseData d = MakeDenseData(w);
      program::ScheduleSpace space(w);
      for (int n = 0; n < 4; ++n) {
        const DenseProgram p = space.Sample(rng);
        INFO(program::Print(p));
        absl::StatusOr<std::unique_ptr<CompiledDense>> kernel = CompileDense(p);
        REQUIRE(kernel.ok());
        CHECK(WorstRatio(**kernel, p, d) <= 1);
      }
    }
  }
}

TEST_CASE("the cpu backend measures a compiled program and names the target") {
  LlvmCpuBackend backend;
  CHECK(backend.name() == "cpu");
  CHECK(backend.Capabilities().target().kind() == "cpu");
  CHECK_THAT(backend.Capabilities().device_name(), Catch::Contains(" / "));
  DenseProgram p;
  p.workload = {64, 64, 64, {Epilogue::kBias, Epilogue::kRelu}};
  p.schedule = {{4, 4}, {2, 32}, {8, 2}, "ikj"};
  tlm::v1::MeasureOptions options;
  options.set_min_repeat_ms(1);
  tlm::v1::MeasureResult r = backend.Measure(program::ProgramToProto(p), options);
  INFO(r.error_message());
  REQUIRE(r.error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(r.repeat_seconds_size() == 3);
  CHECK(r.build_seconds() > 0);
  CHECK(r.max_abs_error() < 1e-3);
  CHECK_THAT(r.source(), Catch::Contains("compiled by LLVM 15 (O3)"));

  tlm::v1::Program bad;
  bad.set_text("dense M=64");
  CHECK(backend.Measure(bad, options).error_kind() == tlm::v1::ERROR_KIND_INSTANTIATION);
}

}  // namespace
}  // namespace tlm::worker

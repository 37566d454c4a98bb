// cuda loop nests, run by the lockstep interpreter: every operator computes
// the reference result under random schedules, shared-memory tiles are
// race-free, and the checks that say so can fail.
#include <catch2/catch.hpp>
#include <functional>
#include <random>

#include "absl/strings/match.h"
#include "program/loop_nest.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "tests/worker/kernel_check.h"
#include "worker/cpu_ref_backend.h"
#include "worker/cuda_codegen.h"

namespace tlm::worker {
namespace {

using program::LoopKind;
using program::LoopNest;
using program::Stmt;
using program::StmtKind;

// Runs the nest on the workload's reference inputs; the ratio of the worst
// error to its tolerance (<= 1: correct), or infinity after an interpreter
// error, which is stored in `*error`.
double Ratio(const program::Program& p, const LoopNest& nest, std::string* error) {
  return testing::WorstRatio(p, [&](float* const* b) {
    const absl::Status s = RunLoopNest(nest, b);
    if (!s.ok()) *error = std::string(s.message());
  });
}

program::Program Dense(int64_t m, int64_t n, int64_t k) {
  return *program::DefaultProgram(*program::MakeWorkload("dense", {{"M", m}, {"N", n}, {"K", k}}),
                                  "cuda");
}

// Visits every statement of the nest, outermost first.
void Visit(std::vector<Stmt>& stmts, const std::function<void(std::vector<Stmt>&, size_t)>& f) {
  for (size_t i = 0; i < stmts.size(); ++i) {
    f(stmts, i);
    if (i < stmts.size()) Visit(stmts[i].body, f);
  }
}

TEST_CASE("random cuda programs of every operator compute the reference result") {
  std::mt19937_64 rng(5);
  int multi_level = 0;
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
    for (int n = 0; n < 12; ++n) {
      const program::Program p = program::SampleProgram(sketch, rng);
      absl::StatusOr<LoopNest> nest = program::Lower(p);
      REQUIRE(nest.ok());
      std::string error;
      const double ratio = Ratio(p, *nest, &error);
      INFO(program::Print(p) << "\n" << program::PrintLoopNest(*nest));
      REQUIRE(error.empty());
      REQUIRE(ratio <= 1.0);
      for (const Stmt& kernel : nest->body) {
        REQUIRE(kernel.kind == StmtKind::kFor);
        REQUIRE(kernel.loop == LoopKind::kBlock);
      }
      REQUIRE(nest->body.size() == sketch.dag().stages.size());
      for (const std::string& pattern : sketch.patterns()) multi_level += pattern.size() > 3;
    }
  }
  CHECK(multi_level > 50);
}

TEST_CASE("a dense kernel's launch shape follows its tiling") {
  // i: 64 = 2 (block) x 2 (vthread) x 4 (thread) x 2 x 2; j: 32 = 4 x 1 x 8 x 1 x 1;
  // k: 16 = 2 (R0) x 4 x 2.
  program::Program p = Dense(64, 32, 16);
  p.decisions = {2, 4, 2, 2, 1, 8, 1, 1, 4, 2, 16};
  REQUIRE(program::ValidateProgram(p).ok());
  const LoopNest nest = *program::Lower(p);
  REQUIRE(nest.body.size() == 1);
  const Stmt& kernel = nest.body[0];
  CHECK(kernel.extent == 2 * 4);
  const Stmt* threads = nullptr;
  int64_t shared = 0;
  for (const Stmt& s : kernel.body) {
    if (s.kind == StmtKind::kFor && s.loop == LoopKind::kThread) threads = &s;
    if (s.kind == StmtKind::kAlloc) shared += nest.buffers[s.buffer].elements;
  }
  REQUIRE(threads != nullptr);
  CHECK(threads->extent == 4 * 8);
  // A tile 32 x 8 of A and 8 x 8 of B per R0 step.
  CHECK(shared == 32 * 8 + 8 * 8);
  std::string error;
  CHECK(Ratio(p, nest, &error) <= 1.0);
  CHECK(error.empty());

  const CudaSource source = *GenerateCuda(nest);
  REQUIRE(source.kernels.size() == 1);
  CHECK(source.kernels[0].grid == 8);
  CHECK(source.kernels[0].block == 32);
  CHECK(source.kernels[0].shared_bytes == 4 * (32 * 8 + 8 * 8));
  CHECK(source.num_buffers == 3);
  CHECK(absl::StrContains(source.code, "__syncthreads();"));
  CHECK(absl::StrContains(source.code, "__shared__ float"));
  CHECK_FALSE(source.half);
}

TEST_CASE("the interpreter reports a missing barrier as a shared-memory race") {
  program::Program p = Dense(64, 32, 16);
  p.decisions = {2, 4, 2, 2, 1, 8, 1, 1, 4, 2, 16};
  for (int drop : {0, 1}) {
    LoopNest nest = *program::Lower(p);
    int seen = 0;
    Visit(nest.body, [&](std::vector<Stmt>& stmts, size_t i) {
      if (stmts[i].kind != StmtKind::kSync) return;
      if (seen++ == drop) stmts.erase(stmts.begin() + i);
    });
    REQUIRE(seen == 2);
    std::string error;
    Ratio(p, nest, &error);
    INFO("without barrier " << drop);
    CHECK(absl::StrContains(error, "data race on dense."));
  }
}

TEST_CASE("the interpreter reports an out-of-bounds shared-memory index") {
  program::Program p = Dense(64, 32, 16);
  p.decisions = {2, 4, 2, 2, 1, 8, 1, 1, 4, 2, 16};
  LoopNest nest = *program::Lower(p);
  bool changed = false;
  Visit(nest.body, [&](std::vector<Stmt>& stmts, size_t i) {
    if (!changed && stmts[i].kind == StmtKind::kStore &&
        nest.buffers[stmts[i].buffer].scope == program::BufferScope::kShared) {
      stmts[i].index.offset += nest.buffers[stmts[i].buffer].elements;
      changed = true;
    }
  });
  REQUIRE(changed);
  std::string error;
  CHECK(Ratio(p, nest, &error) > 1.0);
  CHECK(absl::StrContains(error, "is outside the buffer"));
}

TEST_CASE("cuda code for every operator: one kernel per stage, fp16 through conversions") {
  std::mt19937_64 rng(9);
  for (program::Workload w : testing::SmallWorkloads()) {
    for (program::DType dtype : {program::DType::kFloat32, program::DType::kFloat16}) {
      w.dtype = dtype;
      const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
      const program::Program p = program::SampleProgram(sketch, rng);
      const LoopNest nest = *program::Lower(p);
      absl::StatusOr<CudaSource> source = GenerateCuda(nest);
      REQUIRE(source.ok());
      INFO(source->code);
      CHECK(source->kernels.size() == sketch.dag().stages.size());
      CHECK(source->num_buffers == static_cast<int>(sketch.dag().tensors.size()));
      CHECK(source->half == (dtype == program::DType::kFloat16));
      CHECK(absl::StrContains(source->code, "h2f(") == source->half);
      for (const CudaKernel& k : source->kernels) {
        CHECK(absl::StrContains(source->code, "void __launch_bounds__(" + std::to_string(k.block) +
                                                  ") " + k.name + "("));
        CHECK(k.block <= 1024);
        CHECK(k.shared_bytes <= 48 * 1024);
      }
    }
  }
}

TEST_CASE("code generators refuse nests of the other target") {
  const program::Program cpu = *program::DefaultProgram(
      *program::MakeWorkload("dense", {{"M", 4}, {"N", 4}, {"K", 4}}), "cpu");
  absl::StatusOr<CudaSource> source = GenerateCuda(*program::Lower(cpu));
  REQUIRE(source.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(source.status().message(), "not cpu"));
}

}  // namespace
}  // namespace tlm::worker

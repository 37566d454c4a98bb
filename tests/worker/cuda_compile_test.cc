// Generated CUDA C compiles with NVRTC to cubin for sm_80 and sm_90, for
// every operator under random schedules in fp32 and fp16, for every task
// of two networks, and with the shared memory of the largest GPUs (227 KiB
// opt-in). Needs the CUDA toolkit, not a GPU.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>

#include "program/loop_nest.h"
#include "program/networks.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "worker/cuda_codegen.h"
#include "worker/nvrtc.h"

namespace tlm::worker {
namespace {

// Compiles `source` of `p` for each architecture.
void Compile(const program::Program& p, const CudaSource& source, const std::vector<int>& archs) {
  for (int sm : archs) {
    absl::StatusOr<std::string> cubin = CompileToCubin(source.code, "kernel.cu", sm / 10, sm % 10);
    INFO(program::Print(p) << "\nsm_" << sm << "\n" << source.code);
    REQUIRE(cubin.ok());
    REQUIRE(cubin->size() > 4);
    CHECK(cubin->compare(0, 4, "\x7f" "ELF") == 0);
  }
}

// Compiles one random program of `w` for each architecture.
void CompileRandomProgram(const program::Workload& w, std::mt19937_64& rng,
                          const std::vector<int>& archs) {
  const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
  const program::Program p = program::SampleProgram(sketch, rng);
  absl::StatusOr<CudaSource> source = GenerateCuda(*program::Lower(p));
  REQUIRE(source.ok());
  Compile(p, *source, archs);
}

// The limits of a GPU with 227 KiB of opt-in shared memory per block (the
// largest any supported device grants; sm_90).
program::TargetLimits LargestSharedLimits() {
  program::TargetLimits limits;
  limits.max_shared_bytes = 227 * 1024;
  return limits;
}

// Shared memory of the program's largest kernel.
int64_t MaxSharedBytes(const CudaSource& source) {
  int64_t bytes = 0;
  for (const CudaKernel& k : source.kernels) bytes = std::max(bytes, k.shared_bytes);
  return bytes;
}

TEST_CASE("every operator compiles for sm_80 and sm_90 in fp32 and fp16") {
  std::mt19937_64 rng(17);
  for (program::Workload w : testing::SmallWorkloads()) {
    for (program::DType dtype : {program::DType::kFloat32, program::DType::kFloat16}) {
      w.dtype = dtype;
      CompileRandomProgram(w, rng, {80, 90});
    }
  }
}

TEST_CASE("every task of bert_base and resnet_50 compiles for sm_90") {
  std::mt19937_64 rng(3);
  for (const char* network : {"bert_base", "resnet_50"}) {
    const absl::StatusOr<std::vector<program::NetworkTask>> tasks = program::NetworkTasks(network);
    REQUIRE(tasks.ok());
    for (const program::NetworkTask& task : *tasks) {
      INFO(network << " " << task.name);
      CompileRandomProgram(task.workload, rng, {90});
    }
  }
}

TEST_CASE("every operator compiles for sm_90 when sampled with 227 KiB of shared memory") {
  std::mt19937_64 rng(31);
  const program::TargetLimits limits = LargestSharedLimits();
  for (program::Workload w : testing::SmallWorkloads()) {
    for (program::DType dtype : {program::DType::kFloat32, program::DType::kFloat16}) {
      w.dtype = dtype;
      const program::Sketch sketch = *program::Sketch::Make(w, "cuda", limits);
      const program::Program p = program::SampleProgram(sketch, rng);
      absl::StatusOr<CudaSource> source = GenerateCuda(*program::Lower(p, limits));
      REQUIRE(source.ok());
      CHECK(MaxSharedBytes(*source) <= limits.max_shared_bytes);
      Compile(p, *source, {90});
    }
  }
}

TEST_CASE("kernels with more than 48 KiB of dynamic shared memory compile for sm_90") {
  // Operators that cache tiles in shared memory, large enough for tiles
  // beyond 48 KiB; for each, the first random program that has such a
  // kernel.
  const std::vector<program::Workload> workloads = {
      *program::MakeWorkload("dense", {{"M", 512}, {"N", 512}, {"K", 512}},
                             {program::Epilogue::kBias, program::Epilogue::kGelu}),
      *program::MakeWorkload("dense", {{"M", 256}, {"N", 1024}, {"K", 256}}, {},
                             program::DType::kFloat16),
      *program::MakeWorkload("batch_matmul", {{"B", 4}, {"M", 256}, {"N", 256}, {"K", 256}}),
      *program::MakeWorkload(
          "conv2d_nchw",
          {{"N", 1}, {"C", 64}, {"H", 56}, {"W", 56}, {"F", 128}, {"KH", 3}, {"KW", 3}, {"P", 1}}),
      *program::MakeWorkload(
          "conv2d_nhwc",
          {{"N", 1}, {"C", 64}, {"H", 56}, {"W", 56}, {"F", 128}, {"KH", 3}, {"KW", 3}, {"P", 1}}),
  };
  std::mt19937_64 rng(37);
  const program::TargetLimits limits = LargestSharedLimits();
  for (const program::Workload& w : workloads) {
    INFO(program::WorkloadSummary(w));
    const program::Sketch sketch = *program::Sketch::Make(w, "cuda", limits);
    bool found = false;
    for (int tries = 0; tries < 2000 && !found; ++tries) {
      const program::Program p = program::SampleProgram(sketch, rng);
      absl::StatusOr<CudaSource> source = GenerateCuda(*program::Lower(p, limits));
      REQUIRE(source.ok());
      const int64_t bytes = MaxSharedBytes(*source);
      if (bytes <= 48 * 1024) continue;
      CHECK(bytes <= limits.max_shared_bytes);
      Compile(p, *source, {90});
      found = true;
    }
    CHECK(found);
  }
}

}  // namespace
}  // namespace tlm::worker

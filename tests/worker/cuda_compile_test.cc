// Generated CUDA C compiles with NVRTC to cubin for sm_80 and sm_90, for
// every operator under random schedules in fp32 and fp16 and for every task
// of two networks. Needs the CUDA toolkit, not a GPU.
#include <catch2/catch.hpp>
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

// Compiles one random program of `w` for each architecture.
void CompileRandomProgram(const program::Workload& w, std::mt19937_64& rng,
                          const std::vector<int>& archs) {
  const program::Sketch sketch = *program::Sketch::Make(w, "cuda");
  const program::Program p = program::SampleProgram(sketch, rng);
  absl::StatusOr<CudaSource> source = GenerateCuda(*program::Lower(p));
  REQUIRE(source.ok());
  for (int sm : archs) {
    absl::StatusOr<std::string> cubin = CompileToCubin(source->code, "kernel.cu", sm / 10, sm % 10);
    INFO(program::Print(p) << "\nsm_" << sm << "\n" << source->code);
    REQUIRE(cubin.ok());
    REQUIRE(cubin->size() > 4);
    CHECK(cubin->compare(0, 4, "\x7f" "ELF") == 0);
  }
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

}  // namespace
}  // namespace tlm::worker

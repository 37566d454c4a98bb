#include "program/program.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "program/loop_nest.h"
#include "program/sampler.h"
#include "program/workload.h"
#include "tests/program/small_workloads.h"

namespace tlm::program {
namespace {

std::string ErrorOf(const absl::Status& s) {
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

Workload Dense(int64_t m, int64_t n, int64_t k, std::vector<Epilogue> e = {}) {
  return *MakeWorkload("dense", {{"M", m}, {"N", n}, {"K", k}}, std::move(e));
}

TEST_CASE("workloads convert to and from protos for every operator") {
  for (const Workload& w : testing::SmallWorkloads()) {
    INFO(WorkloadSummary(w));
    absl::StatusOr<Workload> again = WorkloadFromProto(WorkloadToProto(w));
    REQUIRE(again.ok());
    CHECK(*again == w);
    CHECK(WorkloadFlops(w) > 0);
  }
  CHECK(WorkloadSummary(Dense(128, 768, 3072, {Epilogue::kBias, Epilogue::kGelu})) ==
        "dense M=128 N=768 K=3072 +bias +gelu");
}

TEST_CASE("bad workloads are rejected naming the field") {
  tlm::v1::Workload proto = WorkloadToProto(Dense(4, 4, 4));
  proto.mutable_params(2)->set_value(0);
  CHECK(ErrorOf(WorkloadFromProto(proto).status()) ==
        "workload.params: K must be at least 1, got 0");
  proto = WorkloadToProto(Dense(4, 4, 4));
  proto.set_op("convolution");
  CHECK(absl::StartsWith(ErrorOf(WorkloadFromProto(proto).status()),
                         "workload.op: unknown operator \"convolution\" (known operators: dense,"));
  proto.set_op("");
  CHECK(absl::StartsWith(ErrorOf(WorkloadFromProto(proto).status()), "workload.op: missing"));
  proto = WorkloadToProto(Dense(4, 4, 4));
  proto.add_params()->set_name("Q");
  CHECK(absl::StrContains(ErrorOf(WorkloadFromProto(proto).status()), "unknown parameter \"Q\""));
  proto = WorkloadToProto(Dense(4, 4, 4));
  proto.mutable_params()->RemoveLast();
  CHECK(ErrorOf(WorkloadFromProto(proto).status()) == "workload.params: missing parameter K");
  proto = WorkloadToProto(Dense(4, 4, 4));
  proto.add_epilogue("swish");
  CHECK(absl::StrContains(ErrorOf(WorkloadFromProto(proto).status()), "unknown epilogue \"swish\""));
  // float16 is a valid workload, measured on cuda only.
  proto = WorkloadToProto(Dense(4, 4, 4));
  proto.set_dtype(tlm::v1::DTYPE_FLOAT16);
  const Workload half = *WorkloadFromProto(proto);
  CHECK(half.dtype == DType::kFloat16);
  CHECK(Sketch::Make(half, "cuda").ok());
  CHECK(ErrorOf(Sketch::Make(half, "cpu").status()) ==
        "workload.dtype: float16 is not supported on target cpu (float32 only; cuda takes float16)");
  // Impossible shapes.
  CHECK(absl::StrContains(
      ErrorOf(MakeWorkload("conv2d_nchw", {{"N", 1}, {"C", 3}, {"H", 4}, {"W", 4}, {"F", 8},
                                           {"KH", 7}, {"KW", 7}})
                  .status()),
      "kernel KH spans 7 rows/columns, more than the 4 of the padded input H"));
  CHECK(absl::StrContains(
      ErrorOf(MakeWorkload("max_pool2d", {{"N", 1}, {"C", 3}, {"H", 8}, {"W", 8}, {"KH", 2},
                                          {"KW", 2}, {"P", 2}})
                  .status()),
      "padding P = 2 must be smaller than the kernel's span 2"));
  CHECK(ErrorOf(MakeWorkload("softmax", {{"M", 4}, {"N", 4}}, {Epilogue::kRelu}).status()) ==
        "workload.epilogue: relu cannot follow softmax (it takes no epilogue)");
  CHECK(absl::StrContains(
      ErrorOf(MakeWorkload("dense", {{"M", 65536}, {"N", 65536}, {"K", 1}}).status()),
      "more than the limit"));
}

TEST_CASE("sampled programs of every operator are valid and round-trip exactly") {
  std::mt19937_64 rng(1);
  for (const std::string target : {"cpu", "cuda"}) {
    for (const Workload& w : testing::SmallWorkloads()) {
      INFO(target << " " << WorkloadSummary(w));
      absl::StatusOr<Sketch> sketch = Sketch::Make(w, target);
      REQUIRE(sketch.ok());
      CHECK(absl::EndsWith(sketch->Prompt(), kEndOfPrompt));
      for (int i = 0; i < 40; ++i) {
        const Program p = SampleProgram(*sketch, rng);
        INFO(Print(p));
        REQUIRE(ValidateProgram(p).ok());
        const std::string text = Print(p);
        absl::StatusOr<Program> parsed = Parse(text);
        REQUIRE(parsed.ok());
        CHECK(*parsed == p);
        CHECK(Print(*parsed) == text);
        absl::StatusOr<Program> from_proto = ProgramFromProto(ProgramToProto(p));
        REQUIRE(from_proto.ok());
        CHECK(*from_proto == p);
      }
    }
  }
}

TEST_CASE("the text form of a program is fixed") {
  Program p = *DefaultProgram(Dense(64, 64, 64, {Epilogue::kRelu}));
  p.decisions = {2, 4, 2, 1, 2, 16, 8, 1, 1, 1, 64};
  const std::string text =
      "dense M 64 N 64 K 64 epilogue relu dtype float32 target cpu stage dense SSRSRS i 64 ? ? ? "
      "j 64 ? ? ? k 64 ? parallel ? at ? local ? unroll ? <eop> 2 4 2 1 2 16 8 1 1 1 64";
  CHECK(Print(p) == text);
  REQUIRE(ValidateProgram(p).ok());
  // The hash is part of the stored data: it must never change.
  CHECK(HashText(text) == HashText(std::string(text)));
  CHECK(HashText("") == "cbf29ce484222325");
  CHECK(HashText("a") == "af63dc4c8601ec8c");
}

TEST_CASE("invalid programs are rejected with the reason") {
  Program p = *DefaultProgram(Dense(64, 64, 64));
  p.decisions = {3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
  CHECK(ErrorOf(ValidateProgram(p)) ==
        "stage dense, axis i, level 1: 3 does not divide the remaining extent 64");
  p.decisions = {4, 4, 8, 1, 1, 1, 1, 0, 0, 0, 0};
  CHECK(ErrorOf(ValidateProgram(p)) ==
        "stage dense, axis i, level 3: 8 does not divide the remaining extent 4");
  p.decisions = {1, 1, 1, 1, 1, 64, 1, 0, 0, 0, 0};
  CHECK(ValidateProgram(p).ok());
  Program wide = *DefaultProgram(Dense(4, 128, 4));
  wide.decisions = {1, 1, 1, 1, 1, 128, 1, 0, 0, 0, 0};
  CHECK(ErrorOf(ValidateProgram(wide)) ==
        "stage dense, axis j, level 3: vector length 128 exceeds the limit 64");
  p.decisions = {1, 1, 1, 1, 1, 1, 1, 3, 0, 0, 0};
  CHECK(ErrorOf(ValidateProgram(p)) == "stage dense, parallel: must be in [0, 2], got 3");
  p.decisions = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 7};
  CHECK(ErrorOf(ValidateProgram(p)) ==
        "stage dense, unroll: must be one of 0, 16, 64, 512, got 7");
  p.decisions = {1, 1, 1};
  CHECK(ErrorOf(ValidateProgram(p)) == "the sketch has 11 decisions, got 3");
  Program big = *DefaultProgram(Dense(1024, 1024, 4));
  big.decisions = {1024, 1, 1, 16, 1, 64, 1, 0, 0, 1, 0};
  CHECK(ErrorOf(ValidateProgram(big)) ==
        "stage dense, local: a cache-write buffer of 4194304 B exceeds the limit 262144 B");

  Program gpu = *DefaultProgram(Dense(1024, 1024, 64), "cuda");
  // i: vthread, thread, inner, inner; j: ...; k: ..., unroll.
  gpu.decisions = {1, 64, 1, 1, 1, 32, 1, 1, 1, 1, 0};
  CHECK(ErrorOf(ValidateProgram(gpu)) ==
        "stage dense, axis j, level 2: 2048 threads per block exceed the limit 1024");
  gpu.decisions = {4, 1, 1, 1, 4, 1, 1, 1, 1, 1, 0};
  CHECK(ErrorOf(ValidateProgram(gpu)) ==
        "stage dense, axis j, level 1: 16 virtual threads exceed the limit 8");
  // 16 x 16 threads, k tile 64: (16*64 + 64*16) * 4 B = 8 KiB of shared memory.
  gpu.decisions = {1, 16, 1, 1, 1, 16, 1, 1, 64, 1, 0};
  CHECK(ValidateProgram(gpu).ok());

  p = *DefaultProgram(Dense(64, 64, 64));
  std::string text = Print(p);
  CHECK(absl::StrContains(ErrorOf(Parse(text.substr(0, text.size() - 2)).status()),
                          "the sketch has 11 decisions, got 10"));
  std::string other = text;
  other.replace(other.find("SSRSRS"), 6, "SRS");
  CHECK(absl::StrContains(ErrorOf(Parse(other).status()), "expected \"SSRSRS\""));
  CHECK(absl::StrContains(ErrorOf(Parse(text + " x").status()), "expected a decision"));
  CHECK(absl::StrContains(ErrorOf(Parse("dense M 4 N 4").status()), "ends where"));
  CHECK(absl::StrContains(ErrorOf(Parse("").status()), "workload.op"));
  std::string foreign = text;
  foreign.replace(foreign.find("target cpu"), 10, "target fpga");
  CHECK(absl::StrContains(ErrorOf(Parse(foreign).status()), "unknown kind \"fpga\""));
  tlm::v1::Program proto = ProgramToProto(p);
  proto.set_hash("0000000000000000");
  CHECK(absl::StrContains(ErrorOf(ProgramFromProto(proto).status()), "does not match"));
}

TEST_CASE("cuda tiles are bound by a device's shared memory and registers") {
  Program gpu = *DefaultProgram(Dense(1024, 1024, 1024), "cuda");
  // Block tile 128 x 128 with k tile 128: (128*128 + 128*128) * 4 B = 128 KiB,
  // 16 x 16 threads with 8 x 8 accumulators each.
  gpu.decisions = {1, 16, 8, 1, 1, 16, 8, 1, 128, 1, 0};
  // Valid in the language (it parses), but beyond the portable 48 KiB.
  CHECK(ValidateProgram(gpu).ok());
  CHECK(Parse(Print(gpu)).ok());
  CHECK(ErrorOf(ValidateProgram(gpu, TargetLimits{})) ==
        "stage dense, axis k, level 1: shared memory of 131072 B exceeds the limit 49152 B");
  TargetLimits h100;
  h100.max_shared_bytes = 227 * 1024;
  CHECK(ValidateProgram(gpu, h100).ok());
  // No device has 512 KiB per block.
  gpu.decisions = {1, 16, 8, 1, 1, 16, 8, 1, 512, 1, 0};
  CHECK(ErrorOf(ValidateProgram(gpu)) ==
        "stage dense, axis k, level 1: shared memory of 524288 B exceeds the limit 262144 B");
  CHECK_FALSE(Parse(Print(gpu)).ok());

  // 1024 threads share 65536 registers: 64 each, too few for 64 accumulators.
  gpu.decisions = {1, 32, 8, 1, 1, 32, 8, 1, 1, 1, 0};
  CHECK(ErrorOf(ValidateProgram(gpu)) ==
        "stage dense, axis j, level 3: 64 accumulators per thread need about 80 registers; "
        "1024 threads of a block may use 64 each");
  // No thread holds more than 255 registers.
  gpu.decisions = {1, 16, 16, 1, 1, 16, 16, 1, 1, 1, 0};
  CHECK(ErrorOf(ValidateProgram(gpu)) ==
        "stage dense, axis j, level 3: 256 accumulators per thread need about 272 registers; "
        "256 threads of a block may use 255 each");
  // 512 threads with 64 accumulators fit 65536 registers, not 32768.
  gpu.decisions = {1, 32, 8, 1, 1, 16, 8, 1, 1, 1, 0};
  CHECK(ValidateProgram(gpu).ok());
  TargetLimits half_registers;
  half_registers.max_registers_per_block = 32768;
  CHECK(absl::StrContains(ErrorOf(ValidateProgram(gpu, half_registers)),
                          "512 threads of a block may use 64 each"));
  // A device with 256 threads per block.
  TargetLimits few_threads;
  few_threads.max_threads_per_block = 256;
  CHECK(ErrorOf(ValidateProgram(gpu, few_threads)) ==
        "stage dense, axis j, level 2: 512 threads per block exceed the limit 256");

  // Every program sampled within a device's limits is valid within them.
  std::mt19937_64 rng(7);
  const Sketch sketch = *Sketch::Make(Dense(512, 512, 512), "cuda", few_threads);
  for (int i = 0; i < 200; ++i) {
    const Program p = SampleProgram(sketch, rng);
    INFO(Print(p));
    REQUIRE(ValidateProgram(p, few_threads).ok());
  }
}

TEST_CASE("target limits convert from protos, zero fields taking the defaults") {
  tlm::v1::TargetLimits proto;
  proto.set_max_shared_bytes_per_block(100 * 1024);
  const TargetLimits limits = LimitsFromProto(proto);
  CHECK(limits.max_threads_per_block == 1024);
  CHECK(limits.max_shared_bytes == 100 * 1024);
  CHECK(limits.max_registers_per_block == 65536);
  const tlm::v1::TargetLimits full = LimitsToProto(limits);
  CHECK(full.max_threads_per_block() == 1024);
  CHECK(full.max_shared_bytes_per_block() == 100 * 1024);
  CHECK(full.max_registers_per_block() == 65536);
  CHECK(LimitsSummary(limits) ==
        "1024 threads, 102400 B shared memory, 65536 registers per block");

  CHECK(ValidateLimits(proto).ok());
  proto.set_max_shared_bytes_per_block(512 * 1024);
  CHECK(ErrorOf(ValidateLimits(proto)) ==
        "target.limits.max_shared_bytes_per_block: must be between 1024 and 262144 (or 0 for "
        "the default), got 524288");
  proto = {};
  proto.set_max_threads_per_block(16);
  CHECK(absl::StrContains(ErrorOf(ValidateLimits(proto)), "max_threads_per_block"));
  proto = {};
  proto.set_max_registers_per_block(100);
  CHECK(absl::StrContains(ErrorOf(ValidateLimits(proto)), "max_registers_per_block"));
}

TEST_CASE("tile factors are sampled uniformly over ordered factorizations") {
  CHECK(OrderedFactorizations(1, 4) == 1);
  CHECK(OrderedFactorizations(7, 3) == 3);
  CHECK(OrderedFactorizations(1024, 4) == 286);  // C(13, 3)
  CHECK(OrderedFactorizations(12, 2) == 6);      // 1x12 2x6 3x4 4x3 6x2 12x1
  // dense 8 x 1 x 1: axis i has 4 levels, so 20 ordered factorizations of 8;
  // the innermost factor is 8 in exactly one of them.
  const Sketch sketch = *Sketch::Make(Dense(8, 1, 1), "cpu");
  std::mt19937_64 rng(3);
  int inner_eight = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) inner_eight += SampleProgram(sketch, rng).decisions[2] == 8;
  CHECK(inner_eight == Approx(n / 20.0).epsilon(0.15));
}

TEST_CASE("every operator lowers to a loop nest") {
  std::mt19937_64 rng(2);
  for (const Workload& w : testing::SmallWorkloads()) {
    INFO(WorkloadSummary(w));
    const Sketch sketch = *Sketch::Make(w, "cpu");
    for (int i = 0; i < 20; ++i) {
      const Program p = SampleProgram(sketch, rng);
      absl::StatusOr<LoopNest> nest = Lower(p);
      REQUIRE(nest.ok());
      CHECK_FALSE(PrintLoopNest(*nest).empty());
    }
  }
  const Workload d = Dense(64, 64, 64, {Epilogue::kBias});
  Program p = *DefaultProgram(d);
  p.decisions = {2, 4, 2, 1, 2, 16, 8, 2, 1, 1, 64};
  const std::string nest = PrintLoopNest(*Lower(p));
  INFO(nest);
  CHECK(absl::StrContains(nest, "parallel for fused.i.j in 0..8:"));
  CHECK(absl::StrContains(nest, "local float dense.acc[256]"));
  CHECK(absl::StrContains(nest, "vectorized for j.3 in 0..16:"));
  CHECK(absl::StrContains(nest, "unrolled for"));
  CHECK(absl::StrContains(nest, "bias["));
  // The untuned cuda schedule: a block of one thread per output element.
  const LoopNest cuda = *Lower(*DefaultProgram(d, "cuda"));
  CHECK(cuda.target == "cuda");
  const std::string cuda_text = PrintLoopNest(cuda);
  INFO(cuda_text);
  CHECK(absl::StrContains(cuda_text, "blockIdx for dense.block in 0..4096:"));
  CHECK(absl::StrContains(cuda_text, "threadIdx for dense.thread in 0..1:"));
  CHECK(absl::StrContains(cuda_text, "sync"));
}

}  // namespace
}  // namespace tlm::program

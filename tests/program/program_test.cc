#include "program/program.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <string>

#include "program/sampler.h"
#include "program/workload.h"

namespace tlm::program {
namespace {

tlm::v1::Workload DenseProto(int64_t m, int64_t n, int64_t k) {
  return WorkloadToProto({m, n, k, {}});
}

std::string ErrorOf(const tlm::v1::Workload& w) {
  absl::StatusOr<DenseWorkload> r = WorkloadFromProto(w);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST_CASE("valid dense workload converts both ways") {
  tlm::v1::Workload proto = DenseProto(128, 768, 3072);
  proto.add_epilogue("bias");
  proto.add_epilogue("relu");
  absl::StatusOr<DenseWorkload> w = WorkloadFromProto(proto);
  REQUIRE(w.ok());
  CHECK(w->m == 128);
  CHECK(w->n == 768);
  CHECK(w->k == 3072);
  CHECK(w->has_bias());
  CHECK(WorkloadSummary(*w) == "dense 128x768x3072+bias+relu");
  absl::StatusOr<DenseWorkload> again = WorkloadFromProto(WorkloadToProto(*w));
  REQUIRE(again.ok());
  CHECK(*again == *w);
}

TEST_CASE("bad workloads are rejected naming the field") {
  CHECK(ErrorOf(DenseProto(4, 4, 0)) == "workload.params: K must be at least 1, got 0");
  CHECK(ErrorOf(DenseProto(-3, 4, 4)) == "workload.params: M must be at least 1, got -3");
  CHECK_THAT(ErrorOf(DenseProto(1 << 17, 4, 4)), Catch::Contains("M must be at most"));
  CHECK_THAT(ErrorOf(DenseProto(1 << 15, 1 << 15, 4)), Catch::Contains("tensor C (M*N)"));

  tlm::v1::Workload unknown_op = DenseProto(4, 4, 4);
  unknown_op.set_op("conv9d");
  CHECK_THAT(ErrorOf(unknown_op), Catch::StartsWith("workload.op: unknown operator \"conv9d\""));

  tlm::v1::Workload no_op = DenseProto(4, 4, 4);
  no_op.clear_op();
  CHECK_THAT(ErrorOf(no_op), Catch::StartsWith("workload.op: missing"));

  tlm::v1::Workload missing = DenseProto(4, 4, 4);
  missing.mutable_params()->RemoveLast();
  CHECK(ErrorOf(missing) == "workload.params: missing parameter K");

  tlm::v1::Workload twice = DenseProto(4, 4, 4);
  *twice.add_params() = twice.params(0);
  CHECK(ErrorOf(twice) == "workload.params: parameter M given twice");

  tlm::v1::Workload stray = DenseProto(4, 4, 4);
  stray.add_params()->set_name("Q");
  CHECK_THAT(ErrorOf(stray), Catch::Contains("unknown parameter \"Q\""));

  tlm::v1::Workload epi = DenseProto(4, 4, 4);
  epi.add_epilogue("tanh");
  CHECK_THAT(ErrorOf(epi), Catch::StartsWith("workload.epilogue: unknown epilogue \"tanh\""));

  tlm::v1::Workload fp16 = DenseProto(4, 4, 4);
  fp16.set_dtype(tlm::v1::DTYPE_FLOAT16);
  CHECK_THAT(ErrorOf(fp16), Catch::StartsWith("workload.dtype:"));
}

TEST_CASE("text form round-trips and hashes are stable") {
  DenseProgram p;
  p.workload = {128, 768, 3072, {Epilogue::kBias, Epilogue::kRelu}};
  p.schedule = {{4, 8}, {8, 16}, {16, 4}, "ikj"};
  const std::string text = Print(p);
  CHECK(text == "dense M=128 N=768 K=3072 epilogue=bias,relu | tile i=4x8 j=8x16 k=16x4 order=ikj");
  absl::StatusOr<DenseProgram> parsed = Parse(text);
  REQUIRE(parsed.ok());
  CHECK(*parsed == p);
  // FNV-1a of a fixed string: a change here would orphan every stored hash.
  CHECK(HashText("") == "cbf29ce484222325");
  CHECK(HashText(text) == HashText(Print(*parsed)));
  CHECK(HashText(text).size() == 16);

  tlm::v1::Program proto = ProgramToProto(p);
  CHECK(proto.hash() == HashText(proto.text()));
  REQUIRE(ProgramFromProto(proto).ok());
  proto.set_hash("0000000000000000");
  absl::StatusOr<DenseProgram> bad = ProgramFromProto(proto);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("does not match its text"));
}

TEST_CASE("invalid programs are rejected with the reason") {
  DenseProgram p = DefaultProgram({128, 64, 32, {}});
  REQUIRE(ValidateProgram(p).ok());

  p.schedule.i = {12, 1};
  CHECK(std::string(ValidateProgram(p).message()) ==
        "tile i: middle*inner = 12*1 does not divide M = 128");
  p.schedule.i = {0, 4};
  CHECK_THAT(std::string(ValidateProgram(p).message()), Catch::Contains("at least 1"));
  p.schedule.i = {4, 4};
  p.schedule.order = "iij";
  CHECK_THAT(std::string(ValidateProgram(p).message()), Catch::Contains("not a permutation"));

  for (const char* text : {
           "",
           "dense M=4 N=4 K=4 epilogue=none",
           "dense M=4 N=4 K=4 epilogue=none | tile i=1x1 j=1x1 k=1x1",
           "dense M=4 N=4 K=4 epilogue=none | tile i=1x1 j=1x1 k=3x1 order=ijk",
           "dense M=4 N=4 K=x epilogue=none | tile i=1x1 j=1x1 k=1x1 order=ijk",
           "dense M=4 N=4 K=4 epilogue=gelu | tile i=1x1 j=1x1 k=1x1 order=ijk",
           "dense M=04 N=4 K=4 epilogue=none | tile i=1x1 j=1x1 k=1x1 order=ijk",
           "dense N=4 M=4 K=4 epilogue=none | tile i=1x1 j=1x1 k=1x1 order=ijk",
           "dense M=4 N=4 K=4 epilogue=none | tile i=1x1 j=1x1 k=1 order=ijk",
       }) {
    absl::StatusOr<DenseProgram> r = Parse(text);
    INFO(text);
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("schedule space enumerates exactly the valid programs") {
  // 12 has divisors 1,2,3,4,6,12; pairs (a,b) with a*b | 12 number 18.
  CHECK(TilingsOf(12).size() == 18);
  CHECK(TilingsOf(1).size() == 1);
  CHECK(TilingsOf(7).size() == 3);

  ScheduleSpace space({12, 7, 4, {Epilogue::kRelu}});
  REQUIRE(space.size() == 18u * 3u * 6u * 6u);
  std::set<std::string> texts;
  for (uint64_t i = 0; i < space.size(); ++i) {
    DenseProgram p = space.At(i);
    REQUIRE(ValidateProgram(p).ok());
    texts.insert(Print(p));
  }
  CHECK(texts.size() == space.size());
}

TEST_CASE("random samples are valid, round-trip and cover the space") {
  ScheduleSpace space({64, 48, 32, {Epilogue::kBias}});
  std::mt19937_64 rng(7);
  std::set<std::string> orders;
  std::set<int64_t> inner_i;
  for (int n = 0; n < 1000; ++n) {
    DenseProgram p = space.Sample(rng);
    REQUIRE(ValidateProgram(p).ok());
    absl::StatusOr<DenseProgram> back = Parse(Print(p));
    REQUIRE(back.ok());
    REQUIRE(*back == p);
    orders.insert(p.schedule.order);
    inner_i.insert(p.schedule.i.inner);
  }
  CHECK(orders.size() == 6);
  CHECK(inner_i.size() == 7);  // 1, 2, 4, ..., 64
}

}  // namespace
}  // namespace tlm::program

#include "client/workload_spec.h"

#include <catch2/catch.hpp>

namespace tlm::client {
namespace {

std::string Error(const std::vector<std::string>& words, const std::string& epilogue = "") {
  absl::StatusOr<tlm::v1::Workload> w = ParseWorkloadSpec(words, epilogue);
  REQUIRE_FALSE(w.ok());
  CHECK(w.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(w.status().message());
}

TEST_CASE("dtype flag") {
  CHECK(*ParseDTypeFlag("") == tlm::v1::DTYPE_UNSPECIFIED);
  CHECK(*ParseDTypeFlag("float32") == tlm::v1::DTYPE_FLOAT32);
  CHECK(*ParseDTypeFlag("float16") == tlm::v1::DTYPE_FLOAT16);
  CHECK(ParseDTypeFlag("bfloat16").status().message() ==
        "--dtype: unknown type \"bfloat16\" (known: float32, float16)");
}

TEST_CASE("a dense spec with an epilogue parses into a workload") {
  absl::StatusOr<tlm::v1::Workload> w =
      ParseWorkloadSpec({"dense", "M=128", "N=768", "K=3072"}, "bias,relu");
  REQUIRE(w.ok());
  CHECK(w->op() == "dense");
  REQUIRE(w->params_size() == 3);
  CHECK(w->params(0).name() == "M");
  CHECK(w->params(0).value() == 128);
  CHECK(w->params(1).name() == "N");
  CHECK(w->params(1).value() == 768);
  CHECK(w->params(2).name() == "K");
  CHECK(w->params(2).value() == 3072);
  REQUIRE(w->epilogue_size() == 2);
  CHECK(w->epilogue(0) == "bias");
  CHECK(w->epilogue(1) == "relu");
  CHECK(w->dtype() == tlm::v1::DTYPE_UNSPECIFIED);
}

TEST_CASE("the spec may come as one quoted word and the epilogue with spaces") {
  absl::StatusOr<tlm::v1::Workload> w = ParseWorkloadSpec({"dense M=1  N=2\tK=3"}, " relu , bias ");
  REQUIRE(w.ok());
  CHECK(w->op() == "dense");
  REQUIRE(w->params_size() == 3);
  CHECK(w->params(2).value() == 3);
  REQUIRE(w->epilogue_size() == 2);
  CHECK(w->epilogue(0) == "relu");
  CHECK(w->epilogue(1) == "bias");
}

TEST_CASE("meaning is left to the server: unknown ops, names and values pass through") {
  absl::StatusOr<tlm::v1::Workload> w =
      ParseWorkloadSpec({"conv2d", "K=0", "M=-4", "stride_h=2", "K=7"}, "gelu");
  REQUIRE(w.ok());
  CHECK(w->op() == "conv2d");
  REQUIRE(w->params_size() == 4);
  CHECK(w->params(0).value() == 0);
  CHECK(w->params(1).value() == -4);
  CHECK(w->params(2).name() == "stride_h");
  CHECK(w->params(3).name() == "K");  // duplicates too: the server names them
  CHECK(w->epilogue(0) == "gelu");
  CHECK(ParseWorkloadSpec({"dense"}, "")->params_size() == 0);
  CHECK(ParseWorkloadSpec({"dense", "M=9223372036854775807"}, "")->params(0).value() == INT64_MAX);
}

TEST_CASE("no epilogue: empty or none") {
  CHECK(ParseWorkloadSpec({"dense", "M=1"}, "")->epilogue_size() == 0);
  CHECK(ParseWorkloadSpec({"dense", "M=1"}, "none")->epilogue_size() == 0);
  CHECK(ParseEpilogueList("bias")->size() == 1);
}

TEST_CASE("what cannot be expressed is rejected, naming the argument") {
  CHECK_THAT(Error({}), Catch::Contains("missing OP"));
  CHECK_THAT(Error({"  "}), Catch::Contains("missing OP"));
  CHECK(Error({"dense", "M"}) == "\"M\": expected NAME=INT (e.g. M=128)");
  CHECK(Error({"dense", "=5"}) == "\"=5\": expected NAME=INT (e.g. M=128)");
  CHECK(Error({"dense", "M=abc"}) == "\"M=abc\": \"abc\" is not an integer (64-bit, e.g. M=128)");
  CHECK_THAT(Error({"dense", "M=128", "N="}), Catch::StartsWith("\"N=\": \"\" is not an integer"));
  CHECK_THAT(Error({"dense", "K=1.5"}), Catch::StartsWith("\"K=1.5\""));
  CHECK_THAT(Error({"dense", "K=99999999999999999999"}),
             Catch::StartsWith("\"K=99999999999999999999\""));
  CHECK(Error({"M=4", "N=4"}) == "\"M=4\": expected an operator name first (e.g. dense)");
  CHECK_THAT(Error({"dense", "M=4"}, "bias,,relu"), Catch::Contains("--epilogue=bias,,relu"));
  CHECK_THAT(Error({"dense", "M=4"}, "relu,"), Catch::Contains("empty entry"));
}

}  // namespace
}  // namespace tlm::client

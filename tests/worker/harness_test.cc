// The output check shared by the CPU harness and the cuda backend.
#include "worker/harness.h"

#include <catch2/catch.hpp>
#include <limits>
#include <vector>

namespace tlm::worker {
namespace {

program::ReferenceOutput Reference() {
  program::ReferenceOutput ref;
  ref.index = {0, 2};
  ref.expected = {1.0, -2.0};
  ref.tolerance = {1e-3, 1e-3};
  return ref;
}

TEST_CASE("a correct output passes and reports its largest error") {
  double max_error = -1;
  const std::vector<float> out = {1.0005f, 7.0f, -2.0f};
  CHECK(CheckOutput(out, Reference(), 0, &max_error).ok());
  CHECK(max_error == Approx(0.0005).margin(1e-6));
}

TEST_CASE("an unwritten element fails, named") {
  double max_error = -1;
  const std::vector<float> out = {1.0f, std::numeric_limits<float>::quiet_NaN(), -2.0f};
  const absl::Status s = CheckOutput(out, Reference(), 0, &max_error);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(s.message()), Catch::StartsWith("output[1] = nan: not written"));
  CHECK(max_error == -1);  // not computed
}

TEST_CASE("an element out of tolerance fails, named; slack widens the tolerance") {
  double max_error = -1;
  const std::vector<float> out = {1.0f, 0.0f, -2.01f};
  absl::Status s = CheckOutput(out, Reference(), 0, &max_error);
  CHECK_THAT(std::string(s.message()),
             Catch::StartsWith("output[2] = -2.01, expected -2 (tolerance 0.001)"));
  CHECK(max_error == Approx(0.01).margin(1e-6));
  // 0.004 * (|-2| + 1) = 0.012 more: within.
  CHECK(CheckOutput(out, Reference(), 0.004, &max_error).ok());
}

}  // namespace
}  // namespace tlm::worker

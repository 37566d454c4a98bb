// Host float <-> half conversion: exact round trips, round to nearest even,
// overflow, subnormals, signed zero and NaN.
#include "worker/half.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>

namespace tlm::worker {
namespace {

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

TEST_CASE("every half converts to float and back unchanged (NaN stays NaN)") {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = HalfBitsToFloat(static_cast<uint16_t>(h));
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    if (nan) {
      CHECK(std::isnan(f));
      const uint16_t back = FloatToHalfBits(f);
      CHECK((back & 0x7c00) == 0x7c00);
      CHECK((back & 0x3ff) != 0);
      CHECK((back & 0x8000) == (h & 0x8000));
    } else if (FloatToHalfBits(f) != h) {
      FAIL("half 0x" << std::hex << h << " -> " << f << " -> 0x" << FloatToHalfBits(f));
    }
  }
}

TEST_CASE("known values") {
  CHECK(FloatToHalfBits(1.0f) == 0x3c00);
  CHECK(FloatToHalfBits(-2.0f) == 0xc000);
  CHECK(FloatToHalfBits(65504.0f) == 0x7bff);
  CHECK(FloatToHalfBits(0.0f) == 0x0000);
  CHECK(FloatToHalfBits(-0.0f) == 0x8000);
  CHECK(FloatToHalfBits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(FloatToHalfBits(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(HalfBitsToFloat(0x3555) == Approx(0.333251953125f));
  CHECK(HalfBitsToFloat(0x0001) == std::ldexp(1.0f, -24));
  CHECK(HalfBitsToFloat(0x0400) == std::ldexp(1.0f, -14));
}

TEST_CASE("rounding is to nearest, ties to even") {
  const float ulp_at_one = std::ldexp(1.0f, -10);
  CHECK(FloatToHalfBits(1.0f + ulp_at_one / 2) == 0x3c00);      // tie -> even (down)
  CHECK(FloatToHalfBits(1.0f + 3 * ulp_at_one / 2) == 0x3c02);  // tie -> even (up)
  CHECK(FloatToHalfBits(std::nextafter(1.0f + ulp_at_one / 2, 2.0f)) == 0x3c01);
  CHECK(FloatToHalfBits(std::nextafter(1.0f + ulp_at_one / 2, 0.0f)) == 0x3c00);
  // Overflow: 65520 is the tie between 65504 and infinity.
  CHECK(FloatToHalfBits(65519.99f) == 0x7bff);
  CHECK(FloatToHalfBits(65520.0f) == 0x7c00);
  CHECK(FloatToHalfBits(-1e9f) == 0xfc00);
  // Subnormals: units of 2^-24; 2^-25 is the tie between 0 and the smallest.
  CHECK(FloatToHalfBits(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(FloatToHalfBits(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(FloatToHalfBits(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: tie -> even
  CHECK(FloatToHalfBits(-std::ldexp(1.0f, -30)) == 0x8000);
  // The largest subnormal rounds up into the smallest normal.
  CHECK(FloatToHalfBits(std::ldexp(1023.75f, -24)) == 0x0400);
  CHECK(FloatToHalfBits(FromBits(0x00000001)) == 0x0000);  // float subnormal
}

#if defined(__FLT16_MAX__)
TEST_CASE("conversion agrees with the compiler's _Float16 over a sweep of floats") {
  int mismatches = 0;
  for (uint64_t bits = 0; bits <= 0xffffffffull; bits += 977) {
    const float f = FromBits(static_cast<uint32_t>(bits));
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t expected;
    std::memcpy(&expected, &h, sizeof expected);
    if (FloatToHalfBits(f) != expected && ++mismatches <= 5) {
      FAIL_CHECK("float bits 0x" << std::hex << bits << ": got 0x" << FloatToHalfBits(f)
                                 << ", _Float16 gives 0x" << expected);
    }
  }
  CHECK(mismatches == 0);
}
#endif

TEST_CASE("bulk conversions") {
  const std::vector<float> values = {0.5f, -3.25f, 1e-3f, 7.0f};
  const std::vector<float> back = HalfBitsToFloats(FloatsToHalfBits(values));
  REQUIRE(back.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) CHECK(back[i] == RoundThroughHalf(values[i]));
  CHECK(back[0] == 0.5f);
  CHECK(back[2] == Approx(1e-3f).epsilon(1e-3));
}

}  // namespace
}  // namespace tlm::worker

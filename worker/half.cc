#include "worker/half.h"

#include <cmath>
#include <cstring>

namespace tlm::worker {
namespace {

constexpr uint32_t kFloatAbsMask = 0x7fffffffu;
constexpr uint32_t kFloatInfinity = 0x7f800000u;
// Smallest float that rounds to half infinity: 65520 = 65504 + half an ulp
// (the tie goes to the even neighbour, which is infinity).
constexpr uint32_t kFloatHalfOverflow = 0x477ff000u;
// 2^-14, the smallest normal half.
constexpr uint32_t kFloatHalfMinNormal = 0x38800000u;
// Float exponents (biased) below this round to zero: values < 2^-25.
constexpr uint32_t kFloatExponentHalfZero = 102;

// Shifts `value` right by `shift` bits (1..31), rounding to nearest even.
uint32_t ShiftRoundingToEven(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  return kept + ((rest > halfway || (rest == halfway && (kept & 1u))) ? 1u : 0u);
}

}  // namespace

uint16_t FloatToHalfBits(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & kFloatAbsMask;
  if (abs > kFloatInfinity) {
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  if (abs >= kFloatHalfOverflow) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs >= kFloatHalfMinNormal) {
    // Rebias the exponent (127 -> 15) and drop 13 mantissa bits; a carry
    // out of the mantissa correctly bumps the exponent.
    return static_cast<uint16_t>(sign | ShiftRoundingToEven(abs - (112u << 23), 13));
  }
  const uint32_t exponent = abs >> 23;
  if (exponent < kFloatExponentHalfZero) return sign;
  // Subnormal half: units of 2^-24. The float is significand * 2^(e-150)
  // with a 24-bit significand, so the count of units is significand >>
  // (126 - e), in [14, 24]. Rounding up from the largest subnormal gives
  // the smallest normal, whose bits follow on.
  const uint32_t significand = (abs & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign |
                               ShiftRoundingToEven(significand, static_cast<int>(126 - exponent)));
}

float HalfBitsToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  uint32_t x;
  if (exponent == 0x1f) {
    x = sign | kFloatInfinity | (mantissa << 13);
  } else if (exponent != 0) {
    x = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

std::vector<uint16_t> FloatsToHalfBits(absl::Span<const float> values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = FloatToHalfBits(values[i]);
  return bits;
}

std::vector<float> HalfBitsToFloats(absl::Span<const uint16_t> bits) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = HalfBitsToFloat(bits[i]);
  return values;
}

}  // namespace tlm::worker

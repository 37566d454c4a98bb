// IEEE 754 binary16 ("half") conversions on the host, for devices whose
// buffers hold float16: inputs are converted before upload and outputs after
// download. Float to half rounds to nearest, ties to even; values past the
// largest half (65504) round to infinity as IEEE prescribes; NaN stays NaN
// (quiet, sign and top payload bits kept).
#ifndef TLMD_WORKER_HALF_H_
#define TLMD_WORKER_HALF_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace tlm::worker {

uint16_t FloatToHalfBits(float value);
// Exact: every half is a float.
float HalfBitsToFloat(uint16_t bits);

// The nearest half to `value`, as a float.
inline float RoundThroughHalf(float value) { return HalfBitsToFloat(FloatToHalfBits(value)); }

std::vector<uint16_t> FloatsToHalfBits(absl::Span<const float> values);
std::vector<float> HalfBitsToFloats(absl::Span<const uint16_t> bits);

}  // namespace tlm::worker

#endif  // TLMD_WORKER_HALF_H_

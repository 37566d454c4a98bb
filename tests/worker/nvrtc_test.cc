// NVRTC compiles CUDA C to cubins without a GPU: fp32 and fp16 kernels for
// sm_80 and sm_90, and a syntax error comes back with the compiler's log.
#include "worker/nvrtc.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tlm::worker {
namespace {

constexpr char kFloatKernel[] = R"(
extern "C" __global__ void scale(float* out, const float* in, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2.0f * in[i] + 1.0f;
}
)";

// Half bits in unsigned short, converted with PTX so no header is needed.
constexpr char kHalfKernel[] = R"(
__device__ __forceinline__ float half_to_float(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ unsigned short float_to_half(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
extern "C" __global__ void scale_half(unsigned short* out, const unsigned short* in, int n) {
  __shared__ float tile[128];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  tile[threadIdx.x] = i < n ? half_to_float(in[i]) : 0.0f;
  __syncthreads();
  if (i < n) out[i] = float_to_half(tile[threadIdx.x] * 0.5f);
}
)";

bool IsElf(const std::string& image) {
  return image.size() > 4 && image.compare(0, 4,
                                           "\x7f"
                                           "ELF") == 0;
}

TEST_CASE("fp32 and fp16 kernels compile to cubins for sm_80 and sm_90") {
  for (const auto& [major, minor] : {std::pair<int, int>{8, 0}, std::pair<int, int>{9, 0}}) {
    for (const char* source : {kFloatKernel, kHalfKernel}) {
      INFO("sm_" << major << minor << "\n" << source);
      absl::StatusOr<std::string> cubin = CompileToCubin(source, "kernel.cu", major, minor);
      INFO(cubin.status().ToString());
      REQUIRE(cubin.ok());
      CHECK(IsElf(*cubin));
    }
  }
}

TEST_CASE("a syntax error is INVALID_ARGUMENT carrying NVRTC's diagnostic") {
  absl::StatusOr<std::string> cubin = CompileToCubin(
      "extern \"C\" __global__ void broken(float* out) {\n  out[0] = 1.0f\n}\n", "broken.cu", 9, 0);
  REQUIRE(!cubin.ok());
  CHECK(cubin.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string message(cubin.status().message());
  CHECK_THAT(message, Catch::StartsWith("nvrtc: broken.cu does not compile for sm_90:"));
  CHECK_THAT(message, Catch::Contains("broken.cu(3): error: expected a \";\""));
}

TEST_CASE("an architecture NVRTC does not know is FAILED_PRECONDITION") {
  absl::StatusOr<std::string> cubin = CompileToCubin(kFloatKernel, "kernel.cu", 1, 0);
  REQUIRE(!cubin.ok());
  CHECK(cubin.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(cubin.status().message()), Catch::Contains("sm_10"));
}

TEST_CASE("version and supported architectures") {
  CHECK_THAT(NvrtcVersion(), Catch::Matches("[0-9]+\\.[0-9]+"));
  const std::vector<int> archs = NvrtcSupportedArchs();
  CHECK(std::find(archs.begin(), archs.end(), 80) != archs.end());
  CHECK(std::find(archs.begin(), archs.end(), 90) != archs.end());
  CHECK(std::is_sorted(archs.begin(), archs.end()));
}

}  // namespace
}  // namespace tlm::worker

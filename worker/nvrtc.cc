#include "worker/nvrtc.h"

#include <nvrtc.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tlm::worker {
namespace {

// Owns an nvrtcProgram.
class NvrtcProgram {
 public:
  NvrtcProgram() = default;
  NvrtcProgram(const NvrtcProgram&) = delete;
  NvrtcProgram& operator=(const NvrtcProgram&) = delete;
  ~NvrtcProgram() {
    if (program_ != nullptr) nvrtcDestroyProgram(&program_);
  }

  nvrtcProgram* out() { return &program_; }
  nvrtcProgram get() const { return program_; }

 private:
  nvrtcProgram program_ = nullptr;
};

absl::Status Failure(nvrtcResult result, const std::string& what) {
  const std::string message = absl::StrCat("nvrtc: ", what, ": ", nvrtcGetErrorString(result));
  switch (result) {
    case NVRTC_ERROR_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(message);
    case NVRTC_ERROR_INVALID_OPTION:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

std::string Log(const NvrtcProgram& program) {
  size_t size = 0;
  if (nvrtcGetProgramLogSize(program.get(), &size) != NVRTC_SUCCESS || size == 0) return "";
  std::string log(size, '\0');
  if (nvrtcGetProgramLog(program.get(), log.data()) != NVRTC_SUCCESS) return "";
  log.resize(log.find('\0') == std::string::npos ? log.size() : log.find('\0'));
  return std::string(absl::StripTrailingAsciiWhitespace(log));
}

}  // namespace

absl::StatusOr<std::string> CompileToCubin(const std::string& source, const std::string& name,
                                           int sm_major, int sm_minor) {
  const std::string arch = absl::StrCat("sm_", sm_major, sm_minor);
  NvrtcProgram program;
  nvrtcResult r =
      nvrtcCreateProgram(program.out(), source.c_str(), name.c_str(), 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return Failure(r, absl::StrCat("cannot create a program for ", name));

  const std::string arch_option = "--gpu-architecture=" + arch;
  const char* options[] = {arch_option.c_str(), "-default-device", "--std=c++17"};
  r = nvrtcCompileProgram(program.get(), sizeof options / sizeof options[0], options);
  if (r != NVRTC_SUCCESS) {
    const std::string log = Log(program);
    if (r == NVRTC_ERROR_COMPILATION) {
      return absl::InvalidArgumentError(
          absl::StrCat("nvrtc: ", name, " does not compile for ", arch, ":\n", log));
    }
    absl::Status failure = Failure(r, absl::StrCat("compiling ", name, " for ", arch));
    return absl::Status(failure.code(), log.empty() ? failure.message()
                                                    : absl::StrCat(failure.message(), "\n", log));
  }

  size_t size = 0;
  r = nvrtcGetCUBINSize(program.get(), &size);
  if (r != NVRTC_SUCCESS) return Failure(r, "nvrtcGetCUBINSize");
  std::string cubin(size, '\0');
  r = nvrtcGetCUBIN(program.get(), cubin.data());
  if (r != NVRTC_SUCCESS) return Failure(r, "nvrtcGetCUBIN");
  return cubin;
}

std::string NvrtcVersion() {
  int major = 0;
  int minor = 0;
  if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return "unknown";
  return absl::StrCat(major, ".", minor);
}

std::vector<int> NvrtcSupportedArchs() {
  int count = 0;
  if (nvrtcGetNumSupportedArchs(&count) != NVRTC_SUCCESS || count <= 0) return {};
  std::vector<int> archs(count);
  if (nvrtcGetSupportedArchs(archs.data()) != NVRTC_SUCCESS) return {};
  return archs;
}

}  // namespace tlm::worker

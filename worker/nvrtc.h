// CUDA C to cubin with NVRTC, the CUDA runtime compiler. Needs the CUDA
// toolkit's libnvrtc, not a GPU or its driver, so it runs on any machine the
// worker builds on. Thread-safe: every call compiles its own program.
#ifndef TLMD_WORKER_NVRTC_H_
#define TLMD_WORKER_NVRTC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tlm::worker {

// Compiles one translation unit for sm_<sm_major><sm_minor> with
// --gpu-architecture=sm_XX, -default-device and --std=c++17, and returns
// the cubin (an ELF image for cuModuleLoadData). `name` names the source in
// diagnostics. Errors carry NVRTC's log:
//   INVALID_ARGUMENT     the source does not compile ("nvrtc: NAME does not
//                        compile for sm_XX:\n" + the log)
//   FAILED_PRECONDITION  NVRTC refuses the options, e.g. an architecture it
//                        does not support
//   RESOURCE_EXHAUSTED   out of memory; INTERNAL for anything else.
absl::StatusOr<std::string> CompileToCubin(const std::string& source, const std::string& name,
                                           int sm_major, int sm_minor);

// NVRTC's version, e.g. "13.0".
std::string NvrtcVersion();

// Architectures NVRTC can compile for, as major * 10 + minor (90 for sm_90),
// ascending.
std::vector<int> NvrtcSupportedArchs();

}  // namespace tlm::worker

#endif  // TLMD_WORKER_NVRTC_H_

// CUDA C from a lowered cuda loop nest.
//
// Every top-level loop of the nest bound to blockIdx becomes one
// `extern "C" __global__` kernel; the kernels run in order on one stream.
// Each kernel takes one pointer per global buffer of the nest (the
// workload's tensors, in tensor-id order): `float*` for float32 workloads,
// `unsigned short*` holding IEEE half bits for float16 ones (arithmetic is
// fp32; conversions use PTX cvt, so the source includes no header and
// compiles with NVRTC alone).
//
// Shared memory is dynamic: the source declares one file-scope array,
// `extern __shared__ float tlm_shared[]` (16-byte aligned), and each shared
// buffer of a kernel is a pointer into it, at offsets that follow the
// kernel's allocation order, each rounded up to 16 bytes. A launch must
// pass CudaKernel::shared_bytes as its dynamic shared memory size (above
// the device's 48 KiB default only after raising the kernel's
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). A host build of the
// source (tests) defines TLM_HOST_SHARED and its own `float tlm_shared[]`,
// as it defines TLM_HOST_HALF and its own conversions.
#ifndef TLMD_WORKER_CUDA_CODEGEN_H_
#define TLMD_WORKER_CUDA_CODEGEN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "program/loop_nest.h"

namespace tlm::worker {

struct CudaKernel {
  std::string name;          // the __global__ function's name
  int64_t grid = 1;          // blocks (gridDim.x)
  int64_t block = 1;         // threads per block (blockDim.x)
  int64_t shared_bytes = 0;  // dynamic shared memory of one block
};

struct CudaSource {
  std::string code;                 // one translation unit
  std::vector<CudaKernel> kernels;  // in launch order
  int num_buffers = 0;              // pointer arguments of every kernel
  bool half = false;                // buffers hold float16
};

// INVALID_ARGUMENT when the nest was not lowered for cuda (a statement
// outside a blockIdx loop, or a thread loop outside a block loop).
absl::StatusOr<CudaSource> GenerateCuda(const program::LoopNest& nest);

}  // namespace tlm::worker

#endif  // TLMD_WORKER_CUDA_CODEGEN_H_

// Native code for loop nests with LLVM 15: IRBuilder emits the nest
// (parallel loops outlined and run on a ThreadPool, vectorized loops as
// LLVM vector operations, unrolled loops emitted once per iteration), the
// O3 pipeline optimises it for the host CPU and ORC's LLJIT compiles it.
#ifndef TLMD_WORKER_LLVM_CODEGEN_H_
#define TLMD_WORKER_LLVM_CODEGEN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "program/loop_nest.h"
#include "worker/thread_pool.h"

namespace tlm::worker {

// buffers[t] is buffer t of the nest (its global buffers only).
using KernelFn = void (*)(float* const* buffers, ThreadPool* pool);

// A compiled kernel; its code lives as long as this object.
class CompiledKernel {
 public:
  virtual ~CompiledKernel() = default;
  virtual KernelFn fn() const = 0;
};

// Compiles a cpu loop nest for the host CPU. INVALID_ARGUMENT for a nest of
// another target; INTERNAL with LLVM's message on failure. Thread-safe.
absl::StatusOr<std::unique_ptr<CompiledKernel>> CompileLoopNest(const program::LoopNest& nest);

// "znver3 (+avx2,+fma,...)": the CPU LLVM compiles for.
std::string HostTargetDescription();

}  // namespace tlm::worker

#endif  // TLMD_WORKER_LLVM_CODEGEN_H_

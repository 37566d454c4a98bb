// cuda: programs lowered to CUDA C (cuda_codegen.h), compiled by NVRTC to a
// cubin for the device's sm_XX, loaded and launched with the driver API and
// timed with CUDA events. Outputs are checked against the reference
// executor before timing.
//
// Measurement: the workload's inputs and reference live on the host and its
// tensors in device buffers while consecutive programs share the workload;
// inputs are uploaded before every program, so a kernel that writes into
// an input cannot fail the next one. The check run starts from an output of
// NaN bits. Timing follows timing.h (TimeRepeats): CUDA events around
// `number` back-to-back launches of the whole kernel sequence per repeat,
// the L2 cache flushed before each repeat by writing a buffer of twice its
// size. float16 workloads hold IEEE half bits on the device; the host
// converts (half.h), rounds the inputs to half before computing the
// reference, and widens the tolerance by the half roundings.
//
// Device limits: programs are lowered within DeviceLimits(device()), the
// device's own threads, opt-in shared memory and registers per block, and
// kernels are launched with their dynamic shared memory (cuda_codegen.h);
// a kernel that needs more than the device's default shared memory per
// block is granted it (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
// once its module is loaded.
//
// Failures: a program that does not lower within the device's limits
// (the message names the limit), exceeds its launch limits, or is refused
// the shared memory it needs by cuFuncSetAttribute is
// ERROR_KIND_INSTANTIATION: it does not fit this device, though it may fit
// another. One NVRTC rejects (or the driver cannot load) is
// ERROR_KIND_COMPILE_DEVICE with the compiler's log; a
// driver error while running is ERROR_KIND_RUNTIME_DEVICE naming the call
// and the error. After an error that poisons the CUDA context (an illegal
// address, a failed launch, see IsContextPoisoning) the backend is
// unusable: every later Measure returns ERROR_KIND_RUNTIME_DEVICE at once,
// and the runner process must be restarted (IsolatedBackend does that).
//
// Building ahead: measuring a program is a device-free build (parse, lower
// within the limits, generate CUDA C, NVRTC: hundreds of milliseconds on
// the CPU) followed by the device step (load, check, time: milliseconds).
// With Options::build_threads > 0, Prefetch queues the build of a program
// on a pool of that many threads, and its Measure takes the build over
// (waiting for it if it is still queued or running), so NVRTC runs while
// the GPU times the programs before it; its threads run at a lower
// priority (nice 10), so the thread launching timed kernels is not kept
// waiting for a core. The result is the same as without
// the hint, build_seconds included (the build's own duration plus the
// device step's loading, not the time Measure waited). Builds do not
// depend on the MeasureOptions (none of their fields affects parsing,
// lowering or compiling), so a build is keyed by the program alone (its
// text and hash): a program prefetched twice is built once, and the
// options given to Prefetch are ignored. A prefetched build is claimed by
// one Measure; at most MaxPrefetched() builds are kept: beyond that,
// Prefetch drops the oldest finished build nobody claimed, or ignores the
// hint when every kept build is still queued or running. Destruction
// drops queued builds and waits for the running ones (at most one
// compilation per thread). Pool threads run only the build: the lowering
// and code generation are pure functions of their arguments, and NVRTC
// allows concurrent calls on different nvrtcProgram objects (each
// CompileToCubin makes its own); they never call the driver or touch the
// CUDA context.
//
// The device's primary context is retained at the first Measure, not at
// Create, so a backend that only answers Capabilities (the worker's side of
// an IsolatedBackend) holds no GPU memory. Not thread-safe: Measure and
// Prefetch are called from one thread (the pool is internal); the context
// is made current on the calling thread by every Measure.
#ifndef TLMD_WORKER_CUDA_BACKEND_H_
#define TLMD_WORKER_CUDA_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "program/program.h"
#include "worker/backend.h"
#include "worker/cuda_codegen.h"
#include "worker/cuda_driver.h"

namespace tlm::worker {

// The limits a program must respect to run on `device`: its threads per
// block, its opt-in shared memory per block (the default shared memory
// when the driver reports no opt-in value) and its registers per block;
// the portable defaults of program::TargetLimits for the other fields and
// for any the driver reports as 0.
program::TargetLimits DeviceLimits(const CudaDeviceInfo& device);

class CudaBackend final : public Backend {
 public:
  struct Options {
    // Device ordinal among the devices visible to the process.
    int device = 0;
    // Threads that build prefetched programs. 0 (or less): Prefetch does
    // nothing and Measure builds inline.
    int build_threads = 0;
    // The test-only hooks below run within the build, so on the pool's
    // threads, concurrently, when build_threads > 0.
    //
    // Test-only: programs for which this returns true launch, before their
    // own kernels, a kernel that stores far out of bounds, which fails
    // with CUDA_ERROR_ILLEGAL_ADDRESS and poisons the context.
    std::function<bool(const program::Program&)> out_of_bounds_for_testing;
    // Test-only: replaces lowering and code generation (hand-written
    // kernels for a fake driver).
    std::function<absl::StatusOr<CudaSource>(const program::Program&)> generate_for_testing;
    // Test-only: the driver to use instead of the process's libcuda.so.1
    // (a fake loaded with CudaDriver::Load); must outlive the backend.
    const CudaDriver* driver_for_testing = nullptr;
  };

  // FAILED_PRECONDITION with the driver's message when the NVIDIA driver is
  // missing or finds no device, or when NVRTC cannot compile for the
  // device's architecture; INVALID_ARGUMENT for a device ordinal that does
  // not exist.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(Options options);
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create() { return Create(Options{}); }
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  // Target kind "cuda" with device = the architecture ("sm_90"), the GPU's
  // name, and its properties in `gpu`.
  tlm::v1::WorkerCapabilities Capabilities() const override;
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions& options) override;
  // Queues the build of `program` when build_threads > 0 and it is not
  // already queued, running or built (see the file comment); does nothing
  // otherwise, or once the context is lost. Never blocks on a build.
  void Prefetch(const tlm::v1::Program& program,
                const tlm::v1::MeasureOptions& options) override;

  const CudaDeviceInfo& device() const { return device_; }
  // DeviceLimits(device()).
  const program::TargetLimits& limits() const { return limits_; }
  // Measure calls that took over a build Prefetch had queued (finished,
  // running or still waiting for a thread), since Create.
  int64_t builds_ahead() const { return builds_ahead_; }
  // The most prefetched builds kept at once: 4 * build_threads + 8.
  int MaxPrefetched() const { return 4 * options_.build_threads + 8; }

 private:
  struct Build;
  class BuildPool;
  struct DeviceState;
  struct WorkloadBuffers;

  CudaBackend(const CudaDriver* driver, CudaDeviceInfo device, Options options);

  // The device-free part of measuring `program`: parse, lower, generate,
  // check the launch limits, compile. Thread-safe (reads only const
  // members); see the file comment.
  Build BuildProgram(const tlm::v1::Program& program) const;
  // The device part: load the build's cubin, check and time it.
  tlm::v1::MeasureResult MeasureBuilt(Build& build, const tlm::v1::MeasureOptions& options);

  // Retains the context and creates the events and the L2 flush buffer on
  // first use; makes the context current.
  absl::Status Activate();
  // The buffers of `workload`, made (and the old ones freed) when it differs
  // from the last program's. INVALID_ARGUMENT for a workload the reference
  // cannot evaluate; a driver error otherwise.
  absl::StatusOr<WorkloadBuffers*> BuffersFor(const program::Workload& workload);
  // A RUNTIME_DEVICE result for a failed driver call; remembers a poisoned
  // context.
  tlm::v1::MeasureResult DeviceFailure(const absl::Status& status, const std::string& stage);

  const CudaDriver* const driver_;
  const CudaDeviceInfo device_;
  const program::TargetLimits limits_;
  const Options options_;
  // Set once the context is poisoned: the error that did it.
  std::string lost_after_;
  std::unique_ptr<DeviceState> state_;
  int64_t builds_ahead_ = 0;
  // Null unless build_threads > 0. Its threads call BuildProgram on this
  // backend: reset first by the destructor.
  std::unique_ptr<BuildPool> pool_;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_CUDA_BACKEND_H_

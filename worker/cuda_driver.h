// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1"), and
// RAII owners of the driver objects the cuda backend uses.
//
// The driver is never linked, so binaries that contain the cuda backend
// start on machines without an NVIDIA driver and report its absence as a
// status. Function pointers are looked up under the names cuda.h maps the
// API to (cuMemAlloc is the symbol cuMemAlloc_v2), so they match the
// prototypes the code is compiled against; a driver older than the header
// lacks some of those symbols and is refused at load time.
//
// Errors: a failed call becomes a status naming the call and the CUresult
// (see CudaDriver::Check). Errors that poison the context (an illegal
// address, a failed launch, ... see IsContextPoisoning) leave every later
// call in the process failing; they come back as ABORTED so callers can tell
// that only a new process recovers.
//
// Thread-safety: the function table is immutable after loading. The owners
// below are not thread-safe and must be used with their context current.
#ifndef TLMD_WORKER_CUDA_DRIVER_H_
#define TLMD_WORKER_CUDA_DRIVER_H_

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlm::worker {

// The driver functions used, as an X-macro over their cuda.h names.
#define TLMD_CUDA_DRIVER_FUNCTIONS(X) \
  X(cuInit)                           \
  X(cuDriverGetVersion)               \
  X(cuGetErrorName)                   \
  X(cuGetErrorString)                 \
  X(cuDeviceGetCount)                 \
  X(cuDeviceGet)                      \
  X(cuDeviceGetName)                  \
  X(cuDeviceGetAttribute)             \
  X(cuDeviceTotalMem)                 \
  X(cuDevicePrimaryCtxRetain)         \
  X(cuDevicePrimaryCtxRelease)        \
  X(cuCtxSetCurrent)                  \
  X(cuCtxSynchronize)                 \
  X(cuModuleLoadData)                 \
  X(cuModuleGetFunction)              \
  X(cuModuleUnload)                   \
  X(cuFuncSetAttribute)               \
  X(cuMemAlloc)                       \
  X(cuMemFree)                        \
  X(cuMemcpyHtoD)                     \
  X(cuMemcpyDtoH)                     \
  X(cuMemsetD8)                       \
  X(cuMemsetD16)                      \
  X(cuMemsetD32)                      \
  X(cuMemsetD32Async)                 \
  X(cuLaunchKernel)                   \
  X(cuEventCreate)                    \
  X(cuEventRecord)                    \
  X(cuEventSynchronize)               \
  X(cuEventElapsedTime)               \
  X(cuEventDestroy)

// True for errors after which the context (and in practice the process)
// can no longer run kernels: illegal or misaligned addresses, illegal
// instructions, failed or timed-out launches, device-side asserts, stack
// overflows, uncorrectable ECC or NVLink errors.
bool IsContextPoisoning(CUresult result);

// The loaded driver: one function pointer per entry of
// TLMD_CUDA_DRIVER_FUNCTIONS, called like the API (driver.cuMemAlloc(...)).
class CudaDriver {
 public:
  // The process's driver, loaded and initialised (cuInit) on the first call;
  // later calls return the same driver or the same error. The library stays
  // loaded until the process exits. FAILED_PRECONDITION with a message
  // starting "cuda: the NVIDIA driver (libcuda.so.1) is not installed" when
  // dlopen fails, "cuda: no CUDA device" when there is no device, or naming
  // the missing symbol or failing cuInit otherwise. Thread-safe.
  static absl::StatusOr<const CudaDriver*> Get();

  // Loads and initialises `library` without caching (for tests: a missing
  // library gives the "not installed" error). The library is never
  // unloaded.
  static absl::StatusOr<std::unique_ptr<CudaDriver>> Load(const std::string& library);

  CudaDriver(const CudaDriver&) = delete;
  CudaDriver& operator=(const CudaDriver&) = delete;

  // OK for CUDA_SUCCESS; otherwise a status whose message reads
  // "cuda: CALL failed: CUDA_ERROR_NAME (description)". The code says what
  // the caller can do: ABORTED when IsContextPoisoning(result) (restart the
  // process), RESOURCE_EXHAUSTED when out of memory, INVALID_ARGUMENT for
  // invalid values, images or launch configurations, FAILED_PRECONDITION
  // for a missing device or driver, INTERNAL otherwise.
  absl::Status Check(CUresult result, absl::string_view call) const;
  // "CUDA_ERROR_ILLEGAL_ADDRESS", or "CUresult N" for an unknown value.
  std::string ErrorName(CUresult result) const;

  // Driver API version, e.g. "13.0".
  std::string Version() const;
  // Devices visible to this process (at least 1 once loaded).
  int device_count() const { return device_count_; }

#define TLMD_CUDA_DRIVER_DECLARE(name) decltype(&::name) name = nullptr;
  TLMD_CUDA_DRIVER_FUNCTIONS(TLMD_CUDA_DRIVER_DECLARE)
#undef TLMD_CUDA_DRIVER_DECLARE

 private:
  CudaDriver() = default;

  int device_count_ = 0;
};

// What the backend needs to know about one device.
struct CudaDeviceInfo {
  int ordinal = 0;
  CUdevice device = 0;
  std::string name;
  int sm_major = 0;
  int sm_minor = 0;
  int multiprocessors = 0;
  int max_threads_per_block = 0;
  int64_t max_grid_x = 0;
  // Shared memory of one block: any kernel may use shared_bytes_per_block;
  // one granted more dynamic shared memory (cuFuncSetAttribute) up to the
  // opt-in value.
  int64_t shared_bytes_per_block = 0;
  int64_t shared_bytes_per_block_optin = 0;
  int registers_per_block = 0;
  int64_t l2_bytes = 0;
  int64_t memory_bytes = 0;
  int warp_size = 0;

  // "sm_90".
  std::string Arch() const;
};

// INVALID_ARGUMENT for an ordinal outside [0, device_count()).
absl::StatusOr<CudaDeviceInfo> QueryDevice(const CudaDriver& driver, int ordinal);

// A retained primary context of a device; released on destruction.
class PrimaryContext {
 public:
  // Retains the device's primary context and makes it current on the
  // calling thread.
  static absl::StatusOr<PrimaryContext> Retain(const CudaDriver& driver, CUdevice device);
  PrimaryContext(PrimaryContext&& other) noexcept;
  PrimaryContext& operator=(PrimaryContext&& other) noexcept;
  ~PrimaryContext();

  CUcontext get() const { return context_; }
  // Makes the context current on the calling thread.
  absl::Status MakeCurrent() const;

 private:
  PrimaryContext(const CudaDriver* driver, CUdevice device, CUcontext context)
      : driver_(driver), device_(device), context_(context) {}
  void Reset();

  const CudaDriver* driver_ = nullptr;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
};

// Device memory in the current context; freed on destruction.
class DeviceMemory {
 public:
  // `bytes` must be positive.
  static absl::StatusOr<DeviceMemory> Allocate(const CudaDriver& driver, size_t bytes);
  DeviceMemory() = default;
  DeviceMemory(DeviceMemory&& other) noexcept;
  DeviceMemory& operator=(DeviceMemory&& other) noexcept;
  ~DeviceMemory();

  CUdeviceptr get() const { return pointer_; }
  size_t bytes() const { return bytes_; }

 private:
  DeviceMemory(const CudaDriver* driver, CUdeviceptr pointer, size_t bytes)
      : driver_(driver), pointer_(pointer), bytes_(bytes) {}
  void Reset();

  const CudaDriver* driver_ = nullptr;
  CUdeviceptr pointer_ = 0;
  size_t bytes_ = 0;
};

// A module loaded from a cubin into the current context; unloaded on
// destruction.
class CudaModule {
 public:
  static absl::StatusOr<CudaModule> Load(const CudaDriver& driver, const std::string& image);
  CudaModule(CudaModule&& other) noexcept;
  CudaModule& operator=(CudaModule&& other) noexcept;
  ~CudaModule();

  // A kernel of the module by its (extern "C") name; valid while the module
  // lives.
  absl::StatusOr<CUfunction> Function(const std::string& name) const;

 private:
  CudaModule(const CudaDriver* driver, CUmodule module) : driver_(driver), module_(module) {}
  void Reset();

  const CudaDriver* driver_ = nullptr;
  CUmodule module_ = nullptr;
};

// An event of the current context (with timing); destroyed on destruction.
class CudaEvent {
 public:
  static absl::StatusOr<CudaEvent> Create(const CudaDriver& driver);
  CudaEvent(CudaEvent&& other) noexcept;
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  ~CudaEvent();

  CUevent get() const { return event_; }

 private:
  CudaEvent(const CudaDriver* driver, CUevent event) : driver_(driver), event_(event) {}
  void Reset();

  const CudaDriver* driver_ = nullptr;
  CUevent event_ = nullptr;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_CUDA_DRIVER_H_

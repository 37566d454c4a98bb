// A stand-in for libcuda.so.1 that runs on the host, so the cuda backend's
// driver path (context, buffers, module, launches, events, errors) is tested
// on machines without a GPU. Loaded with CudaDriver::Load.
//
// One device, "tlmd fake GPU", compute capability 9.0, 1 MiB of L2; per
// block 1024 threads, 48 KiB of shared memory (227 KiB opt-in) and 65536
// registers.
// Device memory is host memory. Modules must be ELF images (cubins) and
// are otherwise ignored; kernels are emulated by name:
//   tlm_add                        out[i] = a[i] + b[i] over grid * block
//                                  elements (arguments a, b, out; fp32)
//   tlm_out_of_bounds_for_testing  fails the context like an illegal
//                                  address: the launch succeeds, later calls
//                                  return CUDA_ERROR_ILLEGAL_ADDRESS until
//                                  the primary context is released
//   anything else                  does nothing
// Events count launches: the time between two events is 20 us per launch
// recorded between them.
//
// Shared memory follows the driver's rules: a launch may pass as much
// dynamic shared memory as the device's default per block (48 KiB), or
// what cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
// granted the function, at most the opt-in limit (227 KiB); more is
// CUDA_ERROR_INVALID_VALUE.
//
// Test hooks (extern "C", found with dlsym on the loaded library):
//   tlmFakeSetDevice(threads, shared, shared_optin, registers)
//       the per-block limits the device reports from now on (QueryDevice
//       reads them) and enforces at launches
//   tlmFakeResetDevice()           restores the limits above
//   tlmFakeLastLaunchSharedBytes() sharedMemBytes of the last launch
//   tlmFakeSharedAttributeCalls()  successful cuFuncSetAttribute calls
//   tlmFakeLastSharedAttribute()   the value the last one set
#include <cuda.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr float kMillisecondsPerLaunch = 0.02f;

CUresult sticky_error = CUDA_SUCCESS;
int context_references = 0;
uint64_t launches = 0;
int context_storage = 0;

struct FakeEvent {
  uint64_t launches = 0;
};

// A kernel of a loaded module.
struct FakeFunction {
  std::string name;
  int max_dynamic_shared_bytes = 0;
};

// A loaded module: owns the functions looked up in it.
struct FakeModule {
  std::vector<std::unique_ptr<FakeFunction>> functions;
};

struct DeviceLimits {
  int threads_per_block = 1024;
  int shared_bytes = 48 * 1024;
  int shared_bytes_optin = 227 * 1024;
  int registers_per_block = 64 * 1024;
};

DeviceLimits limits;
unsigned last_launch_shared_bytes = 0;
int shared_attribute_calls = 0;
int last_shared_attribute = 0;

}  // namespace

extern "C" {

void tlmFakeSetDevice(int threads_per_block, int shared_bytes, int shared_bytes_optin,
                      int registers_per_block) {
  limits = {threads_per_block, shared_bytes, shared_bytes_optin, registers_per_block};
}

void tlmFakeResetDevice() { limits = DeviceLimits(); }

unsigned tlmFakeLastLaunchSharedBytes() { return last_launch_shared_bytes; }

int tlmFakeSharedAttributeCalls() { return shared_attribute_calls; }

int tlmFakeLastSharedAttribute() { return last_shared_attribute; }

CUresult CUDAAPI cuInit(unsigned int) { return CUDA_SUCCESS; }

CUresult CUDAAPI cuDriverGetVersion(int* version) {
  *version = 13000;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGetErrorName(CUresult error, const char** name) {
  switch (error) {
    case CUDA_SUCCESS:
      *name = "CUDA_SUCCESS";
      return CUDA_SUCCESS;
    case CUDA_ERROR_ILLEGAL_ADDRESS:
      *name = "CUDA_ERROR_ILLEGAL_ADDRESS";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_VALUE:
      *name = "CUDA_ERROR_INVALID_VALUE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_IMAGE:
      *name = "CUDA_ERROR_INVALID_IMAGE";
      return CUDA_SUCCESS;
    default:
      *name = nullptr;
      return CUDA_ERROR_INVALID_VALUE;
  }
}

CUresult CUDAAPI cuGetErrorString(CUresult error, const char** text) {
  *text = error == CUDA_ERROR_ILLEGAL_ADDRESS ? "an illegal memory access was encountered"
                                              : "fake driver error";
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetCount(int* count) {
  *count = 1;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice* device, int ordinal) {
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char* name, int length, CUdevice) {
  std::strncpy(name, "tlmd fake GPU", static_cast<size_t>(length));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice) {
  switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      *value = 9;
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      *value = 0;
      break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
      *value = 4;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
      *value = limits.threads_per_block;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X:
      *value = 0x7fffffff;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK:
      *value = limits.shared_bytes;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
      *value = limits.shared_bytes_optin;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK:
      *value = limits.registers_per_block;
      break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE:
      *value = 1 << 20;
      break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
      *value = 32;
      break;
    default:
      return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem(size_t* bytes, CUdevice) {
  *bytes = size_t{1} << 30;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice) {
  ++context_references;
  *context = reinterpret_cast<CUcontext>(&context_storage);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice) {
  if (--context_references == 0) sticky_error = CUDA_SUCCESS;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext) { return sticky_error; }

CUresult CUDAAPI cuCtxSynchronize() { return sticky_error; }

CUresult CUDAAPI cuModuleLoadData(CUmodule* module, const void* image) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  if (std::memcmp(image,
                  "\x7f"
                  "ELF",
                  4) != 0)
    return CUDA_ERROR_INVALID_IMAGE;
  *module = reinterpret_cast<CUmodule>(new FakeModule);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
  auto& functions = reinterpret_cast<FakeModule*>(module)->functions;
  functions.push_back(std::make_unique<FakeFunction>(FakeFunction{name, limits.shared_bytes}));
  *function = reinterpret_cast<CUfunction>(functions.back().get());
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleUnload(CUmodule module) {
  delete reinterpret_cast<FakeModule*>(module);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuFuncSetAttribute(CUfunction function, CUfunction_attribute attribute,
                                    int value) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  if (attribute != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || value < 0 ||
      value > limits.shared_bytes_optin) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  reinterpret_cast<FakeFunction*>(function)->max_dynamic_shared_bytes = value;
  ++shared_attribute_calls;
  last_shared_attribute = value;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAlloc(CUdeviceptr* pointer, size_t bytes) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  void* memory = std::calloc(bytes, 1);
  if (memory == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  *pointer = reinterpret_cast<CUdeviceptr>(memory);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr pointer) {
  std::free(reinterpret_cast<void*>(pointer));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyHtoD(CUdeviceptr to, const void* from, size_t bytes) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  std::memcpy(reinterpret_cast<void*>(to), from, bytes);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyDtoH(void* to, CUdeviceptr from, size_t bytes) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  std::memcpy(to, reinterpret_cast<const void*>(from), bytes);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD8(CUdeviceptr to, unsigned char value, size_t count) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  std::memset(reinterpret_cast<void*>(to), value, count);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD16(CUdeviceptr to, unsigned short value, size_t count) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  auto* p = reinterpret_cast<unsigned short*>(to);
  for (size_t i = 0; i < count; ++i) p[i] = value;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD32(CUdeviceptr to, unsigned int value, size_t count) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  auto* p = reinterpret_cast<unsigned int*>(to);
  for (size_t i = 0; i < count; ++i) p[i] = value;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD32Async(CUdeviceptr to, unsigned int value, size_t count, CUstream) {
  return cuMemsetD32(to, value, count);
}

CUresult CUDAAPI cuLaunchKernel(CUfunction function, unsigned int grid_x, unsigned int grid_y,
                                unsigned int grid_z, unsigned int block_x, unsigned int block_y,
                                unsigned int block_z, unsigned int shared_bytes, CUstream,
                                void** params, void**) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  const FakeFunction& f = *reinterpret_cast<const FakeFunction*>(function);
  if (grid_y != 1 || grid_z != 1 || block_y != 1 || block_z != 1 ||
      block_x > static_cast<unsigned>(limits.threads_per_block) ||
      shared_bytes > static_cast<unsigned>(f.max_dynamic_shared_bytes)) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  ++launches;
  last_launch_shared_bytes = shared_bytes;
  const std::string& name = f.name;
  auto argument = [params](int i) {
    return reinterpret_cast<float*>(*static_cast<CUdeviceptr*>(params[i]));
  };
  if (name == "tlm_add") {
    const float* a = argument(0);
    const float* b = argument(1);
    float* out = argument(2);
    for (uint64_t i = 0; i < uint64_t{grid_x} * block_x; ++i) out[i] = a[i] + b[i];
  } else if (name == "tlm_out_of_bounds_for_testing") {
    sticky_error = CUDA_ERROR_ILLEGAL_ADDRESS;
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventCreate(CUevent* event, unsigned int) {
  *event = reinterpret_cast<CUevent>(new FakeEvent());
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent event, CUstream) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  reinterpret_cast<FakeEvent*>(event)->launches = launches;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventSynchronize(CUevent) { return sticky_error; }

CUresult CUDAAPI cuEventElapsedTime(float* milliseconds, CUevent start, CUevent stop) {
  if (sticky_error != CUDA_SUCCESS) return sticky_error;
  const uint64_t between =
      reinterpret_cast<FakeEvent*>(stop)->launches - reinterpret_cast<FakeEvent*>(start)->launches;
  *milliseconds = static_cast<float>(between) * kMillisecondsPerLaunch;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy(CUevent event) {
  delete reinterpret_cast<FakeEvent*>(event);
  return CUDA_SUCCESS;
}

}  // extern "C"

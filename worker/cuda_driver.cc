#include "worker/cuda_driver.h"

#include <dlfcn.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace tlm::worker {
namespace {

// The symbol a cuda.h name stands for, after macro expansion.
#define TLMD_CUDA_SYMBOL_NAME(name) TLMD_CUDA_STRINGIZE(name)
#define TLMD_CUDA_STRINGIZE(text) #text

constexpr char kDriverLibrary[] = "libcuda.so.1";

absl::StatusCode CodeFor(CUresult result) {
  if (IsContextPoisoning(result)) return absl::StatusCode::kAborted;
  switch (result) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return absl::StatusCode::kResourceExhausted;
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_IMAGE:
    case CUDA_ERROR_INVALID_PTX:
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_NOT_FOUND:
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES:
      return absl::StatusCode::kInvalidArgument;
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_INVALID_DEVICE:
    case CUDA_ERROR_NOT_INITIALIZED:
    case CUDA_ERROR_DEINITIALIZED:
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
    case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

bool IsContextPoisoning(CUresult result) {
  switch (result) {
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_NVLINK_UNCORRECTABLE:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<const CudaDriver*> CudaDriver::Get() {
  // Loaded once; a failure is cached too, since cuInit's outcome is
  // process-wide.
  static const absl::StatusOr<std::unique_ptr<CudaDriver>>* const loaded =
      new absl::StatusOr<std::unique_ptr<CudaDriver>>(Load(kDriverLibrary));
  if (!loaded->ok()) return loaded->status();
  return loaded->value().get();
}

absl::StatusOr<std::unique_ptr<CudaDriver>> CudaDriver::Load(const std::string& library) {
  // RTLD_NODELETE: function pointers stay valid however the handle is used.
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("cuda: the NVIDIA driver (", library,
                     ") is not installed: ", why != nullptr ? why : "dlopen failed"));
  }
  std::unique_ptr<CudaDriver> driver(new CudaDriver());
  std::string missing;
#define TLMD_CUDA_DRIVER_LOOKUP(name)                                                       \
  driver->name =                                                                            \
      reinterpret_cast<decltype(driver->name)>(dlsym(handle, TLMD_CUDA_SYMBOL_NAME(name))); \
  if (driver->name == nullptr)                                                              \
    absl::StrAppend(&missing, missing.empty() ? "" : ", ", TLMD_CUDA_SYMBOL_NAME(name));
  TLMD_CUDA_DRIVER_FUNCTIONS(TLMD_CUDA_DRIVER_LOOKUP)
#undef TLMD_CUDA_DRIVER_LOOKUP
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cuda: the NVIDIA driver (", library, ") is older than CUDA ", CUDA_VERSION / 1000, ".",
        CUDA_VERSION % 1000 / 10, ", which tlm-worker was built with: it lacks ", missing));
  }

  const CUresult init = driver->cuInit(0);
  if (init == CUDA_ERROR_NO_DEVICE) {
    return absl::FailedPreconditionError(
        "cuda: no CUDA device (the driver is installed; cuInit found no GPU)");
  }
  if (init != CUDA_SUCCESS) {
    return absl::FailedPreconditionError(driver->Check(init, "cuInit").message());
  }
  const CUresult counted = driver->cuDeviceGetCount(&driver->device_count_);
  if (counted != CUDA_SUCCESS) {
    return absl::FailedPreconditionError(driver->Check(counted, "cuDeviceGetCount").message());
  }
  if (driver->device_count_ <= 0) return absl::FailedPreconditionError("cuda: no CUDA device");
  return driver;
}

std::string CudaDriver::ErrorName(CUresult result) const {
  const char* name = nullptr;
  if (cuGetErrorName != nullptr && cuGetErrorName(result, &name) == CUDA_SUCCESS &&
      name != nullptr) {
    return name;
  }
  return absl::StrCat("CUresult ", static_cast<int>(result));
}

absl::Status CudaDriver::Check(CUresult result, absl::string_view call) const {
  if (result == CUDA_SUCCESS) return absl::OkStatus();
  std::string message = absl::StrCat("cuda: ", call, " failed: ", ErrorName(result));
  const char* description = nullptr;
  if (cuGetErrorString != nullptr && cuGetErrorString(result, &description) == CUDA_SUCCESS &&
      description != nullptr) {
    absl::StrAppend(&message, " (", description, ")");
  }
  return absl::Status(CodeFor(result), message);
}

std::string CudaDriver::Version() const {
  int version = 0;
  if (cuDriverGetVersion(&version) != CUDA_SUCCESS) return "unknown";
  return absl::StrCat(version / 1000, ".", version % 1000 / 10);
}

std::string CudaDeviceInfo::Arch() const { return absl::StrCat("sm_", sm_major, sm_minor); }

absl::StatusOr<CudaDeviceInfo> QueryDevice(const CudaDriver& driver, int ordinal) {
  if (ordinal < 0 || ordinal >= driver.device_count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda: no device ", ordinal, " (", driver.device_count(), " visible)"));
  }
  CudaDeviceInfo info;
  info.ordinal = ordinal;
  absl::Status s = driver.Check(driver.cuDeviceGet(&info.device, ordinal), "cuDeviceGet");
  if (!s.ok()) return s;
  char name[256] = {};
  s = driver.Check(driver.cuDeviceGetName(name, sizeof name - 1, info.device), "cuDeviceGetName");
  if (!s.ok()) return s;
  info.name = name;
  struct Attribute {
    CUdevice_attribute attribute;
    const char* what;
    int value = 0;
  };
  Attribute attributes[] = {
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability (major)"},
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute capability (minor)"},
      {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessors"},
      {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "threads per block"},
      {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, "grid size"},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, "shared memory per block"},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, "opt-in shared memory per block"},
      {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, "L2 size"},
      {CU_DEVICE_ATTRIBUTE_WARP_SIZE, "warp size"},
      {CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, "registers per block"},
  };
  for (Attribute& a : attributes) {
    s = driver.Check(driver.cuDeviceGetAttribute(&a.value, a.attribute, info.device),
                     absl::StrCat("cuDeviceGetAttribute(", a.what, ")"));
    if (!s.ok()) return s;
  }
  info.sm_major = attributes[0].value;
  info.sm_minor = attributes[1].value;
  info.multiprocessors = attributes[2].value;
  info.max_threads_per_block = attributes[3].value;
  info.max_grid_x = attributes[4].value;
  info.shared_bytes_per_block = attributes[5].value;
  info.shared_bytes_per_block_optin = attributes[6].value;
  info.l2_bytes = attributes[7].value;
  info.warp_size = attributes[8].value;
  info.registers_per_block = attributes[9].value;
  size_t memory = 0;
  s = driver.Check(driver.cuDeviceTotalMem(&memory, info.device), "cuDeviceTotalMem");
  if (!s.ok()) return s;
  info.memory_bytes = static_cast<int64_t>(memory);
  return info;
}

// PrimaryContext

absl::StatusOr<PrimaryContext> PrimaryContext::Retain(const CudaDriver& driver, CUdevice device) {
  CUcontext context = nullptr;
  absl::Status s =
      driver.Check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  if (!s.ok()) return s;
  PrimaryContext retained(&driver, device, context);
  s = retained.MakeCurrent();
  if (!s.ok()) return s;
  return retained;
}

PrimaryContext::PrimaryContext(PrimaryContext&& other) noexcept
    : driver_(std::exchange(other.driver_, nullptr)),
      device_(other.device_),
      context_(std::exchange(other.context_, nullptr)) {}

PrimaryContext& PrimaryContext::operator=(PrimaryContext&& other) noexcept {
  if (this != &other) {
    Reset();
    driver_ = std::exchange(other.driver_, nullptr);
    device_ = other.device_;
    context_ = std::exchange(other.context_, nullptr);
  }
  return *this;
}

PrimaryContext::~PrimaryContext() { Reset(); }

void PrimaryContext::Reset() {
  if (context_ != nullptr) {
    driver_->cuCtxSetCurrent(nullptr);
    driver_->cuDevicePrimaryCtxRelease(device_);
    context_ = nullptr;
  }
}

absl::Status PrimaryContext::MakeCurrent() const {
  return driver_->Check(driver_->cuCtxSetCurrent(context_), "cuCtxSetCurrent");
}

// DeviceMemory

absl::StatusOr<DeviceMemory> DeviceMemory::Allocate(const CudaDriver& driver, size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("cuda: a device allocation of 0 bytes");
  CUdeviceptr pointer = 0;
  const absl::Status s = driver.Check(driver.cuMemAlloc(&pointer, bytes),
                                      absl::StrCat("cuMemAlloc(", bytes, " bytes)"));
  if (!s.ok()) return s;
  return DeviceMemory(&driver, pointer, bytes);
}

DeviceMemory::DeviceMemory(DeviceMemory&& other) noexcept
    : driver_(std::exchange(other.driver_, nullptr)),
      pointer_(std::exchange(other.pointer_, 0)),
      bytes_(std::exchange(other.bytes_, 0)) {}

DeviceMemory& DeviceMemory::operator=(DeviceMemory&& other) noexcept {
  if (this != &other) {
    Reset();
    driver_ = std::exchange(other.driver_, nullptr);
    pointer_ = std::exchange(other.pointer_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceMemory::~DeviceMemory() { Reset(); }

void DeviceMemory::Reset() {
  if (pointer_ != 0) {
    driver_->cuMemFree(pointer_);  // fails only in a lost context, which frees it anyway
    pointer_ = 0;
    bytes_ = 0;
  }
}

// CudaModule

absl::StatusOr<CudaModule> CudaModule::Load(const CudaDriver& driver, const std::string& image) {
  CUmodule module = nullptr;
  const absl::Status s =
      driver.Check(driver.cuModuleLoadData(&module, image.data()), "cuModuleLoadData");
  if (!s.ok()) return s;
  return CudaModule(&driver, module);
}

CudaModule::CudaModule(CudaModule&& other) noexcept
    : driver_(std::exchange(other.driver_, nullptr)),
      module_(std::exchange(other.module_, nullptr)) {}

CudaModule& CudaModule::operator=(CudaModule&& other) noexcept {
  if (this != &other) {
    Reset();
    driver_ = std::exchange(other.driver_, nullptr);
    module_ = std::exchange(other.module_, nullptr);
  }
  return *this;
}

CudaModule::~CudaModule() { Reset(); }

void CudaModule::Reset() {
  if (module_ != nullptr) {
    driver_->cuModuleUnload(module_);
    module_ = nullptr;
  }
}

absl::StatusOr<CUfunction> CudaModule::Function(const std::string& name) const {
  CUfunction function = nullptr;
  const absl::Status s =
      driver_->Check(driver_->cuModuleGetFunction(&function, module_, name.c_str()),
                     absl::StrCat("cuModuleGetFunction(", name, ")"));
  if (!s.ok()) return s;
  return function;
}

// CudaEvent

absl::StatusOr<CudaEvent> CudaEvent::Create(const CudaDriver& driver) {
  CUevent event = nullptr;
  const absl::Status s =
      driver.Check(driver.cuEventCreate(&event, CU_EVENT_DEFAULT), "cuEventCreate");
  if (!s.ok()) return s;
  return CudaEvent(&driver, event);
}

CudaEvent::CudaEvent(CudaEvent&& other) noexcept
    : driver_(std::exchange(other.driver_, nullptr)),
      event_(std::exchange(other.event_, nullptr)) {}

CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    Reset();
    driver_ = std::exchange(other.driver_, nullptr);
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

CudaEvent::~CudaEvent() { Reset(); }

void CudaEvent::Reset() {
  if (event_ != nullptr) {
    driver_->cuEventDestroy(event_);
    event_ = nullptr;
  }
}

}  // namespace tlm::worker

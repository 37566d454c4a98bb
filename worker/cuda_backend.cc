#include "worker/cuda_backend.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "program/loop_nest.h"
#include "program/reference.h"
#include "spdlog/spdlog.h"
#include "worker/cuda_codegen.h"
#include "worker/half.h"
#include "worker/harness.h"
#include "worker/nvrtc.h"
#include "worker/timing.h"

namespace tlm::worker {
namespace {

// Compiler logs longer than this are cut in results (the head, where the
// first error is, is kept).
constexpr size_t kMaxLogBytes = 4096;

// NaN bit patterns the output is filled with before the check run.
constexpr uint32_t kFloatNanBits = 0x7fc00000u;
constexpr uint16_t kHalfNanBits = 0x7e00u;

constexpr char kOutOfBoundsKernel[] = "tlm_out_of_bounds_for_testing";

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string Trim(absl::string_view text) {
  if (text.size() <= kMaxLogBytes) return std::string(text);
  return absl::StrCat(text.substr(0, kMaxLogBytes), "\n... (", text.size() - kMaxLogBytes,
                      " more bytes)");
}

// A kernel whose single thread stores 2^40 floats past its first argument.
// Its first parameter takes the first buffer of the launch's argument list;
// the others are ignored.
std::string OutOfBoundsSource() {
  return absl::StrCat("\nextern \"C\" __global__ void ", kOutOfBoundsKernel,
                      "(float* first) {\n"
                      "  volatile float* far = first + (1ll << 40);\n"
                      "  far[threadIdx.x] = 1.0f;\n"
                      "}\n");
}

// Launch limits the device imposes on a kernel (shared memory: the opt-in
// limit, `limits.max_shared_bytes`); INVALID_ARGUMENT naming the kernel and
// the limit it exceeds.
absl::Status CheckLaunchLimits(const CudaKernel& k, const CudaDeviceInfo& device,
                               const program::TargetLimits& limits) {
  if (k.grid < 1 || k.grid > device.max_grid_x) {
    return absl::InvalidArgumentError(absl::StrCat("kernel ", k.name, ": grid of ", k.grid,
                                                   " blocks is outside [1, ", device.max_grid_x,
                                                   "]"));
  }
  if (k.block < 1 || k.block > device.max_threads_per_block) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", k.name, ": ", k.block, " threads per block is outside [1, ",
                     device.max_threads_per_block, "] on ", device.name));
  }
  if (k.shared_bytes > limits.max_shared_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kernel ", k.name, ": ", k.shared_bytes, " bytes of shared memory per block exceed ",
        limits.max_shared_bytes, " (opt-in) on ", device.name));
  }
  return absl::OkStatus();
}

}  // namespace

program::TargetLimits DeviceLimits(const CudaDeviceInfo& device) {
  program::TargetLimits limits;
  if (device.max_threads_per_block > 0) limits.max_threads_per_block = device.max_threads_per_block;
  if (device.shared_bytes_per_block_optin > 0) {
    limits.max_shared_bytes = device.shared_bytes_per_block_optin;
  } else if (device.shared_bytes_per_block > 0) {
    limits.max_shared_bytes = device.shared_bytes_per_block;
  }
  if (device.registers_per_block > 0) limits.max_registers_per_block = device.registers_per_block;
  return limits;
}

struct CudaBackend::WorkloadBuffers {
  WorkloadData host;  // inputs (rounded to half for float16) and reference
  bool half = false;
  size_t element_bytes = sizeof(float);
  int output = -1;  // tensor id
  // Per tensor: device memory, and for float16 inputs their half bits.
  std::vector<DeviceMemory> device;
  std::vector<std::vector<uint16_t>> half_bits;
  std::vector<CUdeviceptr> pointers;
};

struct CudaBackend::DeviceState {
  // Declared first, destroyed last: everything below lives in it.
  PrimaryContext context;
  CudaEvent start;
  CudaEvent stop;
  DeviceMemory flush;
  uint32_t flush_value = 0;
  std::unique_ptr<WorkloadBuffers> buffers;
};

// What BuildProgram makes of a program: either the result Measure returns
// at once (a parse or build failure) or what the device step needs.
struct CudaBackend::Build {
  std::optional<tlm::v1::MeasureResult> failure;
  program::Program program;
  CudaSource source;
  std::string cubin;
  // The build's own duration.
  double seconds = 0;
};

// Builds prefetched programs on its threads, keeps each build until one
// Take claims it, and keeps at most `max_kept` builds (queued, running or
// finished). Thread-safe.
class CudaBackend::BuildPool {
 public:
  // Nice value of the build threads (Linux: per thread).
  static constexpr int kBuildNice = 10;

  using BuildFunction = std::function<Build(const tlm::v1::Program&)>;

  // Starts `threads` (> 0) threads that run `build`.
  BuildPool(int threads, size_t max_kept, BuildFunction build)
      : build_(std::move(build)), max_kept_(max_kept) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  // Drops the queued builds and waits for the running ones.
  ~BuildPool() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      queue_.clear();
    }
    for (std::thread& t : threads_) t.join();
  }
  BuildPool(const BuildPool&) = delete;
  BuildPool& operator=(const BuildPool&) = delete;

  // Queues the build of `program` unless it is kept already. When max_kept
  // builds are kept, first drops the oldest finished one; ignores the
  // program when none has finished.
  void Add(const tlm::v1::Program& program) {
    std::string key = Key(program);
    absl::MutexLock lock(&mu_);
    if (kept_.count(key) > 0) return;
    if (kept_.size() >= max_kept_) {
      auto oldest = kept_.end();
      for (auto it = kept_.begin(); it != kept_.end(); ++it) {
        if (it->second->done &&
            (oldest == kept_.end() || it->second->sequence < oldest->second->sequence)) {
          oldest = it;
        }
      }
      if (oldest == kept_.end()) {
        spdlog::debug("cuda: {} builds are queued or running; not prefetching another",
                      kept_.size());
        return;
      }
      spdlog::debug("cuda: dropping an unclaimed prefetched build");
      kept_.erase(oldest);
    }
    auto entry = std::make_shared<Entry>();
    entry->program = program;
    entry->sequence = next_sequence_++;
    kept_.emplace(std::move(key), entry);
    queue_.push_back(std::move(entry));
  }

  // The build of `program`, claimed (no longer kept), once it has finished
  // (waits while it is queued or running); nullopt when it is not kept.
  std::optional<Build> Take(const tlm::v1::Program& program) {
    absl::MutexLock lock(&mu_);
    auto it = kept_.find(Key(program));
    if (it == kept_.end()) return std::nullopt;
    std::shared_ptr<Entry> entry = std::move(it->second);
    kept_.erase(it);
    mu_.Await(absl::Condition(&entry->done));
    return std::move(entry->build);
  }

  // Forgets the build of `program`, without waiting for it.
  void Drop(const tlm::v1::Program& program) {
    absl::MutexLock lock(&mu_);
    kept_.erase(Key(program));
  }

 private:
  struct Entry {
    tlm::v1::Program program;  // read by the building thread only
    uint64_t sequence = 0;     // order of Add
    bool done = false;         // guarded by mu_, as is `build`
    Build build;
  };

  // Builds depend on the program's text and hash (the parse checks the
  // hash), nothing else.
  static std::string Key(const tlm::v1::Program& program) {
    return absl::StrCat(program.hash().size(), ":", program.hash(), program.text());
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); }

  void Work() {
    // Builds yield the CPU to the measuring thread: a launch loop that waits
    // for a core leaves the GPU idle inside the timed region.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kBuildNice) != 0) {
      spdlog::debug("cuda: cannot lower the priority of a build thread: {}", strerror(errno));
    }
    for (;;) {
      std::shared_ptr<Entry> entry;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &BuildPool::HasWork));
        if (stopping_) return;
        entry = std::move(queue_.front());
        queue_.pop_front();
      }
      Build build = build_(entry->program);
      absl::MutexLock lock(&mu_);
      entry->build = std::move(build);
      entry->done = true;
    }
  }

  const BuildFunction build_;
  const size_t max_kept_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Builds no thread has started, oldest first.
  std::deque<std::shared_ptr<Entry>> queue_ ABSL_GUARDED_BY(mu_);
  // Unclaimed builds by Key: queued, running or finished.
  std::map<std::string, std::shared_ptr<Entry>> kept_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(Options options) {
  absl::StatusOr<const CudaDriver*> driver =
      options.driver_for_testing != nullptr ? options.driver_for_testing : CudaDriver::Get();
  if (!driver.ok()) return driver.status();
  absl::StatusOr<CudaDeviceInfo> device = QueryDevice(**driver, options.device);
  if (!device.ok()) return device.status();
  const std::vector<int> archs = NvrtcSupportedArchs();
  const int arch = device->sm_major * 10 + device->sm_minor;
  if (std::find(archs.begin(), archs.end(), arch) == archs.end()) {
    return absl::FailedPreconditionError(absl::StrCat("cuda: NVRTC ", NvrtcVersion(),
                                                      " cannot compile for ", device->Arch(), " (",
                                                      device->name, ")"));
  }
  return std::unique_ptr<CudaBackend>(
      new CudaBackend(*driver, std::move(*device), std::move(options)));
}

CudaBackend::CudaBackend(const CudaDriver* driver, CudaDeviceInfo device, Options options)
    : driver_(driver),
      device_(std::move(device)),
      limits_(DeviceLimits(device_)),
      options_(std::move(options)) {
  if (options_.build_threads > 0) {
    pool_ = std::make_unique<BuildPool>(
        options_.build_threads, static_cast<size_t>(MaxPrefetched()),
        [this](const tlm::v1::Program& program) { return BuildProgram(program); });
    spdlog::info("cuda: build threads for prefetched programs: {}", options_.build_threads);
  }
}

CudaBackend::~CudaBackend() {
  pool_.reset();  // its threads use this backend
}

tlm::v1::WorkerCapabilities CudaBackend::Capabilities() const {
  tlm::v1::WorkerCapabilities caps;
  caps.mutable_target()->set_kind("cuda");
  caps.mutable_target()->set_device(device_.Arch());
  caps.set_backend(name());
  caps.set_device_name(device_.name);
  tlm::v1::GpuProperties* gpu = caps.mutable_gpu();
  gpu->set_arch(device_.Arch());
  gpu->set_multiprocessors(device_.multiprocessors);
  gpu->set_max_threads_per_block(device_.max_threads_per_block);
  gpu->set_shared_bytes_per_block(device_.shared_bytes_per_block);
  gpu->set_shared_bytes_per_block_optin(device_.shared_bytes_per_block_optin);
  gpu->set_registers_per_block(device_.registers_per_block);
  gpu->set_l2_bytes(device_.l2_bytes);
  gpu->set_memory_bytes(device_.memory_bytes);
  gpu->set_warp_size(device_.warp_size);
  gpu->set_driver_version(driver_->Version());
  gpu->set_nvrtc_version(NvrtcVersion());
  return caps;
}

absl::Status CudaBackend::Activate() {
  if (state_ != nullptr) return state_->context.MakeCurrent();
  absl::StatusOr<PrimaryContext> context = PrimaryContext::Retain(*driver_, device_.device);
  if (!context.ok()) return context.status();
  absl::StatusOr<CudaEvent> start = CudaEvent::Create(*driver_);
  if (!start.ok()) return start.status();
  absl::StatusOr<CudaEvent> stop = CudaEvent::Create(*driver_);
  if (!stop.ok()) return stop.status();
  // Twice the L2, in whole 32-bit words.
  const size_t flush_bytes =
      std::max<size_t>(4, 2 * static_cast<size_t>(device_.l2_bytes)) & ~size_t{3};
  absl::StatusOr<DeviceMemory> flush = DeviceMemory::Allocate(*driver_, flush_bytes);
  if (!flush.ok()) return flush.status();
  state_ = std::unique_ptr<DeviceState>(new DeviceState{
      std::move(*context), std::move(*start), std::move(*stop), std::move(*flush), 0, nullptr});
  spdlog::info("cuda: using {} ({}, {} multiprocessors, {} MiB L2 flush buffer)", device_.name,
               device_.Arch(), device_.multiprocessors, flush_bytes >> 20);
  return absl::OkStatus();
}

absl::StatusOr<CudaBackend::WorkloadBuffers*> CudaBackend::BuffersFor(
    const program::Workload& workload) {
  std::unique_ptr<WorkloadBuffers>& current = state_->buffers;
  if (current != nullptr && current->host.workload == workload) return current.get();
  current.reset();  // frees the previous workload's device memory first

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<WorkloadData> host = MakeWorkloadData(workload);
  if (!host.ok()) return absl::InvalidArgumentError(host.status().message());
  auto buffers = std::make_unique<WorkloadBuffers>();
  buffers->host = std::move(*host);
  WorkloadData& data = buffers->host;
  buffers->half = workload.dtype == program::DType::kFloat16;
  buffers->element_bytes = buffers->half ? sizeof(uint16_t) : sizeof(float);
  buffers->output = data.dag.stages.back().output;
  buffers->half_bits.resize(data.tensors.size());
  if (buffers->half) {
    RoundInputsToHalf(data);
    for (size_t t = 0; t < data.tensors.size(); ++t) {
      if (data.dag.tensors[t].role != program::TensorRole::kInput) continue;
      buffers->half_bits[t] = FloatsToHalfBits(data.tensors[t]);  // exact after rounding
    }
  }
  for (size_t t = 0; t < data.tensors.size(); ++t) {
    absl::StatusOr<DeviceMemory> memory =
        DeviceMemory::Allocate(*driver_, data.tensors[t].size() * buffers->element_bytes);
    if (!memory.ok()) return memory.status();
    buffers->pointers.push_back(memory->get());
    buffers->device.push_back(std::move(*memory));
  }
  spdlog::debug("cuda: prepared inputs, reference and {} device buffers for {} in {:.3f} s",
                buffers->device.size(), program::WorkloadSummary(workload), Seconds(start));
  current = std::move(buffers);
  return current.get();
}

tlm::v1::MeasureResult CudaBackend::DeviceFailure(const absl::Status& status,
                                                  const std::string& stage) {
  // CudaDriver::Check reports context-poisoning errors as ABORTED.
  std::string message(status.message());
  if (status.code() == absl::StatusCode::kAborted && lost_after_.empty()) {
    lost_after_ = message;
    spdlog::error("{}: the CUDA context is lost; this process can no longer measure", message);
    absl::StrAppend(&message, "; the CUDA context is lost and the runner must restart");
  }
  return FailedMeasurement(tlm::v1::ERROR_KIND_RUNTIME_DEVICE, stage, message);
}

void CudaBackend::Prefetch(const tlm::v1::Program& program,
                           const tlm::v1::MeasureOptions& options) {
  (void)options;  // builds do not depend on them
  if (pool_ == nullptr || !lost_after_.empty()) return;
  pool_->Add(program);
}

tlm::v1::MeasureResult CudaBackend::Measure(const tlm::v1::Program& program,
                                            const tlm::v1::MeasureOptions& raw_options) {
  if (!lost_after_.empty()) {
    if (pool_ != nullptr) pool_->Drop(program);
    return FailedMeasurement(
        tlm::v1::ERROR_KIND_RUNTIME_DEVICE, "run",
        absl::StrCat("the CUDA context was lost after ", lost_after_, "; the runner must restart"));
  }
  const tlm::v1::MeasureOptions options = WithDefaults(raw_options);
  std::optional<Build> build;
  if (pool_ != nullptr) build = pool_->Take(program);
  if (build.has_value()) {
    ++builds_ahead_;
  } else {
    build = BuildProgram(program);
  }
  if (build->failure.has_value()) return std::move(*build->failure);
  return MeasureBuilt(*build, options);
}

CudaBackend::Build CudaBackend::BuildProgram(const tlm::v1::Program& program) const {
  const auto build_start = std::chrono::steady_clock::now();
  Build build;
  // A failure of stage "build"; the source NVRTC rejected, if any.
  auto failed = [&](tlm::v1::ErrorKind kind, const std::string& message,
                    std::string source = "") {
    build.seconds = Seconds(build_start);
    build.failure = FailedMeasurement(kind, "build", message);
    build.failure->set_build_seconds(build.seconds);
    build.failure->set_source(std::move(source));
    return std::move(build);
  };

  tlm::v1::MeasureResult parse_failure;
  absl::StatusOr<program::Program> parsed = ParseProgramFor(program, "cuda", &parse_failure);
  if (!parsed.ok()) {
    build.failure = std::move(parse_failure);
    return build;
  }
  absl::StatusOr<CudaSource> source = absl::UnknownError("not generated");
  if (options_.generate_for_testing) {
    source = options_.generate_for_testing(*parsed);
  } else {
    absl::StatusOr<program::LoopNest> nest = program::Lower(*parsed, limits_);
    if (!nest.ok()) {
      return failed(tlm::v1::ERROR_KIND_INSTANTIATION, std::string(nest.status().message()));
    }
    source = GenerateCuda(*nest);
  }
  if (!source.ok()) {
    return failed(tlm::v1::ERROR_KIND_INSTANTIATION, std::string(source.status().message()));
  }
  if (options_.out_of_bounds_for_testing && options_.out_of_bounds_for_testing(*parsed)) {
    source->code += OutOfBoundsSource();
    source->kernels.insert(source->kernels.begin(), CudaKernel{kOutOfBoundsKernel, 1, 1, 0});
  }
  for (const CudaKernel& k : source->kernels) {
    const absl::Status fits = CheckLaunchLimits(k, device_, limits_);
    if (!fits.ok()) return failed(tlm::v1::ERROR_KIND_INSTANTIATION, std::string(fits.message()));
  }
  if (source->kernels.empty() || source->num_buffers < 1) {
    return failed(tlm::v1::ERROR_KIND_INSTANTIATION, "the program generated no kernel");
  }

  absl::StatusOr<std::string> cubin =
      CompileToCubin(source->code, "tlm_program.cu", device_.sm_major, device_.sm_minor);
  if (!cubin.ok()) {
    return failed(tlm::v1::ERROR_KIND_COMPILE_DEVICE, Trim(cubin.status().message()),
                  std::move(source->code));
  }
  build.program = std::move(*parsed);
  build.source = std::move(*source);
  build.cubin = std::move(*cubin);
  build.seconds = Seconds(build_start);
  return build;
}

tlm::v1::MeasureResult CudaBackend::MeasureBuilt(Build& build,
                                                 const tlm::v1::MeasureOptions& options) {
  // build_seconds: the build's own duration and the loading below.
  const auto load_start = std::chrono::steady_clock::now();
  auto build_seconds = [&] { return build.seconds + Seconds(load_start); };
  auto failed_build = [&](tlm::v1::ErrorKind kind, const std::string& message) {
    tlm::v1::MeasureResult r = FailedMeasurement(kind, "build", message);
    r.set_build_seconds(build_seconds());
    return r;
  };
  CudaSource& source = build.source;

  if (const absl::Status active = Activate(); !active.ok()) return DeviceFailure(active, "build");
  absl::StatusOr<CudaModule> module = CudaModule::Load(*driver_, build.cubin);
  if (!module.ok()) {
    if (module.status().code() == absl::StatusCode::kAborted) {
      return DeviceFailure(module.status(), "build");
    }
    return failed_build(tlm::v1::ERROR_KIND_COMPILE_DEVICE, std::string(module.status().message()));
  }
  std::vector<CUfunction> functions;
  for (const CudaKernel& k : source.kernels) {
    absl::StatusOr<CUfunction> f = module->Function(k.name);
    if (!f.ok()) {
      return failed_build(tlm::v1::ERROR_KIND_COMPILE_DEVICE, std::string(f.status().message()));
    }
    if (k.shared_bytes > device_.shared_bytes_per_block) {
      // Within the opt-in limit (CheckLaunchLimits); the driver may still
      // refuse, e.g. when the compiled kernel also holds static shared memory.
      const absl::Status granted = driver_->Check(
          driver_->cuFuncSetAttribute(*f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      static_cast<int>(k.shared_bytes)),
          absl::StrCat("cuFuncSetAttribute(", k.name, ", max dynamic shared memory ",
                       k.shared_bytes, " B)"));
      if (granted.code() == absl::StatusCode::kAborted) return DeviceFailure(granted, "build");
      if (!granted.ok()) {
        return failed_build(tlm::v1::ERROR_KIND_INSTANTIATION, std::string(granted.message()));
      }
    }
    functions.push_back(*f);
  }
  absl::StatusOr<WorkloadBuffers*> buffers_or = BuffersFor(build.program.workload);
  if (!buffers_or.ok()) {
    if (absl::IsInvalidArgument(buffers_or.status())) {
      return failed_build(tlm::v1::ERROR_KIND_INSTANTIATION,
                          std::string(buffers_or.status().message()));
    }
    return DeviceFailure(buffers_or.status(), "build");
  }
  WorkloadBuffers& buffers = **buffers_or;
  if (static_cast<size_t>(source.num_buffers) != buffers.pointers.size() ||
      source.half != buffers.half) {
    return failed_build(
        tlm::v1::ERROR_KIND_INSTANTIATION,
        absl::StrCat("the generated kernels take ", source.num_buffers,
                     source.half ? " half" : " float", " buffers; the workload has ",
                     buffers.pointers.size(), buffers.half ? " half" : " float", " tensors"));
  }
  tlm::v1::MeasureResult result;
  result.set_build_seconds(build_seconds());

  // Run: upload, check, time.
  const auto run_start = std::chrono::steady_clock::now();
  const absl::Time deadline = absl::Now() + absl::Seconds(options.run_timeout_s());
  const CudaDriver& d = *driver_;
  std::vector<CUdeviceptr> pointers = buffers.pointers;
  std::vector<void*> arguments;
  for (CUdeviceptr& p : pointers) arguments.push_back(&p);
  auto launch_all = [&]() -> absl::Status {
    for (size_t i = 0; i < functions.size(); ++i) {
      const CudaKernel& k = source.kernels[i];
      const absl::Status s = d.Check(d.cuLaunchKernel(functions[i], static_cast<unsigned>(k.grid),
                                                      1, 1, static_cast<unsigned>(k.block), 1, 1,
                                                      static_cast<unsigned>(k.shared_bytes),
                                                      nullptr, arguments.data(), nullptr),
                                     absl::StrCat("cuLaunchKernel(", k.name, ")"));
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  };
  auto run_failure = [&](const absl::Status& s) {
    tlm::v1::MeasureResult r = DeviceFailure(s, "run");
    r.set_build_seconds(result.build_seconds());
    r.set_run_seconds(Seconds(run_start));
    return r;
  };

  const WorkloadData& host = buffers.host;
  for (size_t t = 0; t < host.tensors.size(); ++t) {
    if (host.dag.tensors[t].role != program::TensorRole::kInput) continue;
    const void* from = buffers.half ? static_cast<const void*>(buffers.half_bits[t].data())
                                    : static_cast<const void*>(host.tensors[t].data());
    const absl::Status s = d.Check(
        d.cuMemcpyHtoD(buffers.pointers[t], from, buffers.device[t].bytes()), "cuMemcpyHtoD");
    if (!s.ok()) return run_failure(s);
  }

  if (!options.skip_check()) {
    const int out = buffers.output;
    const size_t elements = host.tensors[out].size();
    // Elements the kernels never write stay NaN and fail the check.
    absl::Status s =
        buffers.half
            ? d.Check(d.cuMemsetD16(buffers.pointers[out], kHalfNanBits, elements), "cuMemsetD16")
            : d.Check(d.cuMemsetD32(buffers.pointers[out], kFloatNanBits, elements), "cuMemsetD32");
    if (s.ok()) s = launch_all();
    if (s.ok()) s = d.Check(d.cuCtxSynchronize(), "cuCtxSynchronize");
    std::vector<float> output(elements);
    if (buffers.half) {
      std::vector<uint16_t> bits(elements);
      if (s.ok()) {
        s = d.Check(d.cuMemcpyDtoH(bits.data(), buffers.pointers[out], elements * 2),
                    "cuMemcpyDtoH");
      }
      output = HalfBitsToFloats(bits);
    } else if (s.ok()) {
      s = d.Check(d.cuMemcpyDtoH(output.data(), buffers.pointers[out], elements * 4),
                  "cuMemcpyDtoH");
    }
    if (!s.ok()) return run_failure(s);
    double max_error = 0;
    const absl::Status checked =
        CheckOutput(output, host.reference, buffers.half ? kHalfOutputSlack : 0, &max_error);
    result.set_max_abs_error(max_error);
    if (!checked.ok()) {
      result.set_error_kind(tlm::v1::ERROR_KIND_WRONG_ANSWER);
      result.set_error_stage("check");
      result.set_error_message(std::string(checked.message()));
      result.set_run_seconds(Seconds(run_start));
      result.set_source(std::move(source.code));
      return result;
    }
  }

  CudaEvent& start = state_->start;
  CudaEvent& stop = state_->stop;
  auto run_repeat = [&](int64_t number) -> absl::StatusOr<double> {
    absl::Status s = d.Check(d.cuEventRecord(start.get(), nullptr), "cuEventRecord");
    for (int64_t n = 0; s.ok() && n < number; ++n) s = launch_all();
    if (s.ok()) s = d.Check(d.cuEventRecord(stop.get(), nullptr), "cuEventRecord");
    if (s.ok()) s = d.Check(d.cuEventSynchronize(stop.get()), "cuEventSynchronize");
    float milliseconds = 0;
    if (s.ok()) {
      s = d.Check(d.cuEventElapsedTime(&milliseconds, start.get(), stop.get()),
                  "cuEventElapsedTime");
    }
    if (!s.ok()) return s;
    return milliseconds / 1e3;
  };
  auto flush_l2 = [&]() -> absl::Status {
    DeviceMemory& flush = state_->flush;
    return d.Check(
        d.cuMemsetD32Async(flush.get(), ++state_->flush_value, flush.bytes() / 4, nullptr),
        "cuMemsetD32Async");
  };
  absl::StatusOr<Timing> timing = TimeRepeats(run_repeat, options, flush_l2, deadline);
  result.set_run_seconds(Seconds(run_start));
  if (!timing.ok()) {
    if (absl::IsDeadlineExceeded(timing.status())) {
      result.set_error_kind(tlm::v1::ERROR_KIND_RUN_TIMEOUT);
      result.set_error_stage("run");
      result.set_error_message(std::string(timing.status().message()));
      return result;
    }
    return run_failure(timing.status());
  }
  result.set_error_kind(tlm::v1::ERROR_KIND_NONE);
  for (double s : timing->repeat_seconds) result.add_repeat_seconds(s);
  result.set_median_seconds(timing->median_seconds);
  result.set_number(timing->number);
  result.set_source(std::move(source.code));
  return result;
}

}  // namespace tlm::worker

// tlm-worker: the measurement agent. Connects to tlmd, measures the programs
// it is sent with one backend, and exits 0 on SIGTERM or SIGINT.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/credentials.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/backend.h"
#include "worker/cpu_ref_backend.h"
#ifdef TLMD_HAVE_CUDA
#include "worker/cuda_backend.h"
#endif
#include "worker/isolated_backend.h"
#include "worker/llvm_cpu_backend.h"
#include "worker/thread_pool.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "tlmd address");
ABSL_FLAG(std::string, backend, "cpu",
          "measurement backend: cpu (LLVM JIT), cpu-ref (loop-nest interpreter) or cuda (NVRTC "
          "and the CUDA driver; needs an NVIDIA GPU)");
ABSL_FLAG(int32_t, cuda_device, 0, "GPU ordinal measured by --backend=cuda");
ABSL_FLAG(int32_t, threads, 0,
          "threads for the parallel loops of cpu kernels (0: one per hardware thread)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA of tlmd's certificate: connect over TLS");
ABSL_FLAG(std::string, token_file, "", "file holding tlmd's bearer token (needs --tls_ca)");
ABSL_FLAG(std::string, name, "", "worker name shown by tlmctl (default HOST:BACKEND)");
ABSL_FLAG(int32_t, max_in_flight, 0,
          "jobs held at once; they are measured one at a time, the next ones already at hand "
          "(0: 2, or --build_threads + 2 for cuda)");
ABSL_FLAG(int32_t, build_threads, -1,
          "cuda: threads compiling the jobs queued behind the one being timed (-1: one per "
          "hardware thread but one; 0: compile each program when it is measured)");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");
ABSL_FLAG(bool, isolate, true,
          "measure in a child process, so a crashing or hanging kernel cannot take the worker "
          "down");
ABSL_FLAG(bool, runner, false,
          "internal: serve measurements on stdin/stdout as the worker's child process");

// --build_threads with -1 resolved.
int BuildThreads() {
  const int flag = absl::GetFlag(FLAGS_build_threads);
  return flag >= 0 ? flag : std::max(1, tlm::worker::HardwareThreads() - 1);
}

int main(int argc, char** argv) {
  // Block termination signals before any thread starts (gRPC starts some as
  // soon as credentials are made); one thread takes them and stops the agent.
  // Runner children inherit the mask, so a signal sent to the whole process
  // group cannot kill a runner mid-measurement and fake a crash.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::SetProgramUsageMessage(
      "tlm-worker: measures tensor programs for tlmd.\n"
      "Usage: tlm-worker [--server=127.0.0.1:50051] [--backend=cpu] [flags]");
  absl::ParseCommandLine(argc, argv);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e tlm-worker %^%l%$ %v");

  tlm::worker::BackendRegistry registry;
  registry.Register("cpu-ref", []() -> absl::StatusOr<std::unique_ptr<tlm::worker::Backend>> {
    return std::make_unique<tlm::worker::CpuRefBackend>();
  });
  registry.Register("cpu", []() -> absl::StatusOr<std::unique_ptr<tlm::worker::Backend>> {
    tlm::worker::LlvmCpuBackend::Options options;
    options.num_threads = absl::GetFlag(FLAGS_threads);
    return std::make_unique<tlm::worker::LlvmCpuBackend>(options);
  });
  registry.Register("cuda", []() -> absl::StatusOr<std::unique_ptr<tlm::worker::Backend>> {
#ifdef TLMD_HAVE_CUDA
    tlm::worker::CudaBackend::Options options;
    options.device = absl::GetFlag(FLAGS_cuda_device);
    // With --isolate, the worker's own backend only describes the device;
    // its runner child builds and measures.
    const bool measures = absl::GetFlag(FLAGS_runner) || !absl::GetFlag(FLAGS_isolate);
    options.build_threads = measures ? BuildThreads() : 0;
    absl::StatusOr<std::unique_ptr<tlm::worker::CudaBackend>> cuda =
        tlm::worker::CudaBackend::Create(options);
    if (!cuda.ok()) return cuda.status();
    return std::unique_ptr<tlm::worker::Backend>(std::move(*cuda));
#else
    return absl::FailedPreconditionError(
        "this tlm-worker was built without CUDA (no CUDA toolkit was found at build time)");
#endif
  });

  std::string errors;
  if (absl::GetFlag(FLAGS_max_in_flight) < 0) errors += "  --max_in_flight must be 0 or more\n";
  if (absl::GetFlag(FLAGS_build_threads) < -1) errors += "  --build_threads must be -1 or more\n";
  if (absl::GetFlag(FLAGS_threads) < 0) errors += "  --threads must be 0 or more\n";
  if (absl::GetFlag(FLAGS_server).empty()) errors += "  --server must be HOST:PORT\n";
  const spdlog::level::level_enum level = spdlog::level::from_str(absl::GetFlag(FLAGS_log_level));
  if (level == spdlog::level::off && absl::GetFlag(FLAGS_log_level) != "off") {
    errors += "  --log_level must be one of trace, debug, info, warn, error, off\n";
  }
  absl::StatusOr<std::unique_ptr<tlm::worker::Backend>> backend =
      registry.Make(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) errors += absl::StrCat("  --backend: ", backend.status().message(), "\n");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tlm::client::MakeChannelCredentials(
          {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_token_file)});
  if (!credentials.ok()) errors += absl::StrCat("  --", credentials.status().message(), "\n");
  if (!errors.empty()) {
    std::fprintf(stderr, "tlm-worker: invalid flags:\n%s", errors.c_str());
    return 2;
  }
  spdlog::set_level(level);

  if (absl::GetFlag(FLAGS_runner)) {
    // stdout carries the protocol; anything else printed goes to stderr.
    const int protocol_out = dup(STDOUT_FILENO);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    spdlog::set_default_logger(spdlog::stderr_color_st("runner"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e tlm-worker runner %^%l%$ %v");
    spdlog::set_level(level);
    const absl::Status served = tlm::worker::ServeRunner(**backend, STDIN_FILENO, protocol_out);
    if (!served.ok()) spdlog::error("{}", served.ToString());
    return served.ok() ? 0 : 1;
  }
  if (absl::GetFlag(FLAGS_isolate)) {
    backend = std::make_unique<tlm::worker::IsolatedBackend>(
        std::move(*backend),
        std::vector<std::string>{"/proc/self/exe", "--runner",
                                 "--backend=" + absl::GetFlag(FLAGS_backend),
                                 absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads)),
                                 absl::StrCat("--cuda_device=", absl::GetFlag(FLAGS_cuda_device)),
                                 absl::StrCat("--build_threads=", BuildThreads()),
                                 "--log_level=" + absl::GetFlag(FLAGS_log_level)});
  }

  tlm::worker::AgentOptions options;
  options.server_address = absl::GetFlag(FLAGS_server);
  options.name = absl::GetFlag(FLAGS_name);
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  if (options.max_in_flight == 0) {
    options.max_in_flight = absl::GetFlag(FLAGS_backend) == "cuda" ? BuildThreads() + 2 : 2;
  }
  options.credentials = *credentials;
  tlm::worker::Agent agent(options, backend->get());
  std::thread signal_waiter([&agent, signals] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    spdlog::info("received {}; stopping", strsignal(signal_number));
    agent.Shutdown();
  });
  signal_waiter.detach();

  spdlog::info("tlm-worker starting: backend {} on {}{}, server {}", (*backend)->name(),
               (*backend)->Capabilities().device_name(),
               absl::GetFlag(FLAGS_isolate) ? " (isolated in a child process)" : "",
               options.server_address);
  const absl::Status status = agent.Run();
  if (!status.ok()) {
    spdlog::error("{}", status.ToString());
    return 1;
  }
  return 0;
}

// tlm-worker: the measurement agent. Connects to tlmd, measures the programs
// it is sent with one backend, and exits 0 on SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/backend.h"
#include "worker/cpu_ref_backend.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "tlmd address");
ABSL_FLAG(std::string, backend, "cpu-ref", "measurement backend");
ABSL_FLAG(std::string, name, "", "worker name shown by tlmctl (default HOST:BACKEND)");
ABSL_FLAG(int32_t, max_in_flight, 2,
          "jobs held at once; they are measured one at a time, the next one already at hand");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tlm-worker: measures tensor programs for tlmd.\n"
      "Usage: tlm-worker [--server=127.0.0.1:50051] [--backend=cpu-ref] [flags]");
  absl::ParseCommandLine(argc, argv);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e tlm-worker %^%l%$ %v");

  tlm::worker::BackendRegistry registry;
  registry.Register("cpu-ref", []() -> absl::StatusOr<std::unique_ptr<tlm::worker::Backend>> {
    return std::make_unique<tlm::worker::CpuRefBackend>();
  });

  std::string errors;
  if (absl::GetFlag(FLAGS_max_in_flight) < 1) errors += "  --max_in_flight must be at least 1\n";
  if (absl::GetFlag(FLAGS_server).empty()) errors += "  --server must be HOST:PORT\n";
  const spdlog::level::level_enum level = spdlog::level::from_str(absl::GetFlag(FLAGS_log_level));
  if (level == spdlog::level::off && absl::GetFlag(FLAGS_log_level) != "off") {
    errors += "  --log_level must be one of trace, debug, info, warn, error, off\n";
  }
  absl::StatusOr<std::unique_ptr<tlm::worker::Backend>> backend =
      registry.Make(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) errors += absl::StrCat("  --backend: ", backend.status().message(), "\n");
  if (!errors.empty()) {
    std::fprintf(stderr, "tlm-worker: invalid flags:\n%s", errors.c_str());
    return 2;
  }
  spdlog::set_level(level);

  // Signals go to one thread, which asks the agent to stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  tlm::worker::AgentOptions options;
  options.server_address = absl::GetFlag(FLAGS_server);
  options.name = absl::GetFlag(FLAGS_name);
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  tlm::worker::Agent agent(options, backend->get());
  std::thread signal_waiter([&agent, signals] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    spdlog::info("received {}; stopping", strsignal(signal_number));
    agent.Shutdown();
  });
  signal_waiter.detach();

  spdlog::info("tlm-worker starting: backend {} on {}, server {}", (*backend)->name(),
               (*backend)->Capabilities().device_name(), options.server_address);
  const absl::Status status = agent.Run();
  if (!status.ok()) {
    spdlog::error("{}", status.ToString());
    return 1;
  }
  return 0;
}

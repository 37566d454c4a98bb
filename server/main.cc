// tlmd: the tuning server.
//
// Serves tlm.v1.Tuning, Fleet and Admin on one address (loopback by default),
// keeps its dataset in SQLite, and on SIGTERM/SIGINT stops taking work,
// stores the results still in flight and exits 0.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "program/version.h"
#include "server/admin_service.h"
#include "server/auth.h"
#include "server/dispatcher.h"
#include "server/finetuner.h"
#include "server/session_runner.h"
#include "server/fleet_service.h"
#include "server/model_commands.h"
#include "server/sqlite_store.h"
#include "server/tlm_sampler.h"
#include "server/tuner.h"
#include "server/tuning_service.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "address to serve on; port 0 picks a free port (see --port_file)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve over TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding the bearer token every call must carry (needs TLS)");
ABSL_FLAG(std::string, db, "var/tlmd.db", "SQLite database file; created if missing");
ABSL_FLAG(std::string, port_file, "", "if set, the bound port is written to this file");
ABSL_FLAG(int32_t, max_attempts, 3, "attempts per program before it is stored as an error");
ABSL_FLAG(double, lease_margin_s, 30,
          "seconds a worker gets beyond a job's build and run timeouts before the job is requeued");
ABSL_FLAG(int32_t, heartbeat_ms, 2000,
          "heartbeat interval asked of workers; silent for three intervals means gone");
ABSL_FLAG(int32_t, window_per_task, 32, "programs of one task queued or in flight at once");
ABSL_FLAG(double, drain_timeout_s, 30,
          "on shutdown, seconds to wait for results of jobs already sent to workers");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");
ABSL_FLAG(std::string, model, "",
          "tensor language model checkpoint for the tlm sampler; reloaded when the file is "
          "replaced");
ABSL_FLAG(double, model_poll_s, 5, "how often to look for a replaced --model file");
ABSL_FLAG(double, tlm_temperature, 1.0, "tlm sampler: sampling temperature (0: greedy)");
ABSL_FLAG(int32_t, tlm_top_k, 0, "tlm sampler: keep the k most likely values (0: all)");
ABSL_FLAG(double, tlm_explore, 0.15,
          "tlm sampler: probability per decision of a uniform draw among the allowed values "
          "instead of the model's");
ABSL_FLAG(int32_t, finetune_every, 0,
          "with --model: fine-tune the model on the best program of every workload after this many "
          "successful results, and write it over --model (0: never)");
ABSL_FLAG(bool, finetune_each_round, false,
          "with --model: fine-tune the model in the background whenever a session's round ends, "
          "and write it over --model");
ABSL_FLAG(int32_t, finetune_steps, 100, "optimizer steps of one fine-tuning round");

namespace tlm::server {
namespace {

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

// Every flag error at once, so the operator fixes them in one go.
std::string CheckFlags() {
  std::string errors;
  auto bad = [&](absl::string_view what) { absl::StrAppend(&errors, "  ", what, "\n"); };
  const std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.find(':') == std::string::npos) bad("--listen must be HOST:PORT");
  if (!IsLoopback(listen) &&
      (absl::GetFlag(FLAGS_tls_cert).empty() || absl::GetFlag(FLAGS_auth_token_file).empty())) {
    bad(absl::StrCat("--listen=", listen,
                     " is not a loopback address: serving it needs --tls_cert, --tls_key and "
                     "--auth_token_file"));
  }
  if (absl::GetFlag(FLAGS_db).empty()) bad("--db must name a file");
  if (absl::GetFlag(FLAGS_max_attempts) < 1) bad("--max_attempts must be at least 1");
  if (absl::GetFlag(FLAGS_lease_margin_s) <= 0) bad("--lease_margin_s must be positive");
  if (absl::GetFlag(FLAGS_heartbeat_ms) < 10) bad("--heartbeat_ms must be at least 10");
  if (absl::GetFlag(FLAGS_window_per_task) < 1) bad("--window_per_task must be at least 1");
  if (absl::GetFlag(FLAGS_drain_timeout_s) < 0) bad("--drain_timeout_s must not be negative");
  if (absl::GetFlag(FLAGS_model_poll_s) <= 0) bad("--model_poll_s must be positive");
  if (absl::GetFlag(FLAGS_tlm_temperature) < 0) bad("--tlm_temperature must not be negative");
  if (absl::GetFlag(FLAGS_tlm_top_k) < 0) bad("--tlm_top_k must not be negative");
  if (absl::GetFlag(FLAGS_tlm_explore) < 0 || absl::GetFlag(FLAGS_tlm_explore) > 1) {
    bad("--tlm_explore must be between 0 and 1");
  }
  if (absl::GetFlag(FLAGS_finetune_every) < 0) bad("--finetune_every must not be negative");
  if (absl::GetFlag(FLAGS_finetune_every) > 0 && absl::GetFlag(FLAGS_model).empty()) {
    bad("--finetune_every needs --model (the checkpoint it fine-tunes and rewrites)");
  }
  if (absl::GetFlag(FLAGS_finetune_each_round) && absl::GetFlag(FLAGS_model).empty()) {
    bad("--finetune_each_round needs --model (the checkpoint it fine-tunes and rewrites)");
  }
  if (absl::GetFlag(FLAGS_finetune_steps) < 1) bad("--finetune_steps must be at least 1");
  if (spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)) == spdlog::level::off &&
      absl::GetFlag(FLAGS_log_level) != "off") {
    bad("--log_level must be one of trace, debug, info, warn, error, off");
  }
  return errors;
}

int Leased(const Dispatcher& dispatcher) {
  int leased = 0;
  for (const tlm::v1::QueueStatus& q : dispatcher.Queues()) leased += q.leased();
  return leased;
}

// `signals` are blocked in every thread; Run waits for one of them to stop.
int Run(const std::shared_ptr<grpc::ServerCredentials>& credentials, const sigset_t& signals) {
  const int64_t started_ms = absl::ToUnixMillis(absl::Now());
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(absl::GetFlag(FLAGS_db));
  if (!store.ok()) {
    spdlog::critical("cannot open the dataset: {}", store.status().ToString());
    return 1;
  }

  Dispatcher::Options dispatch_options;
  dispatch_options.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  dispatch_options.lease_margin = absl::Seconds(absl::GetFlag(FLAGS_lease_margin_s));
  dispatch_options.heartbeat_interval = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  std::unique_ptr<Tuner> tuner;
  Dispatcher dispatcher(dispatch_options, [&tuner](const JobOutcome& o) { tuner->OnOutcome(o); });
  ModelSlot model;
  std::unique_ptr<CheckpointWatcher> watcher;
  if (const std::string path = absl::GetFlag(FLAGS_model); !path.empty()) {
    if (absl::Status s = model.PublishFile(path); !s.ok()) {
      spdlog::critical("cannot load --model: {}", s.ToString());
      return 1;
    }
    watcher = std::make_unique<CheckpointWatcher>(
        path, &model, absl::Seconds(absl::GetFlag(FLAGS_model_poll_s)));
  }
  SamplerRegistry samplers;
  models::GenerateOptions generate;
  generate.temperature = absl::GetFlag(FLAGS_tlm_temperature);
  generate.top_k = absl::GetFlag(FLAGS_tlm_top_k);
  generate.explore = absl::GetFlag(FLAGS_tlm_explore);
  AddTlmSampler(samplers, &model, generate);

  std::unique_ptr<FineTuner> finetuner;
  if ((absl::GetFlag(FLAGS_finetune_every) > 0 || absl::GetFlag(FLAGS_finetune_each_round)) &&
      !absl::GetFlag(FLAGS_model).empty()) {
    FineTuner::Options o;
    o.results_per_round = absl::GetFlag(FLAGS_finetune_every);
    o.train.steps = absl::GetFlag(FLAGS_finetune_steps);
    o.checkpoint_path = absl::GetFlag(FLAGS_model);
    finetuner = std::make_unique<FineTuner>(store->get(), &model, o);
  }

  Tuner::Options tuner_options;
  tuner_options.window_per_task = absl::GetFlag(FLAGS_window_per_task);
  tuner_options.samplers = &samplers;
  if (finetuner != nullptr) {
    tuner_options.on_stored = [&finetuner](const tlm::v1::MeasureResult& r) {
      finetuner->OnResult(r);
    };
  }
  std::unique_ptr<SessionRunner> sessions;
  tuner_options.on_ended = [&sessions](int64_t task_id) {
    if (sessions != nullptr) sessions->TaskEnded(task_id);
  };
  tuner = std::make_unique<Tuner>(store->get(), &dispatcher, tuner_options);
  SessionRunner::Options session_options;
  if (finetuner != nullptr && absl::GetFlag(FLAGS_finetune_each_round)) {
    session_options.on_round_end = [&finetuner](int64_t, const tlm::v1::SessionRound&) {
      finetuner->RequestRound();
    };
  }
  sessions = std::make_unique<SessionRunner>(store->get(), tuner.get(), session_options);
  if (absl::Status s = tuner->Resume(); !s.ok()) {
    spdlog::critical("cannot resume the stored tasks: {}", s.ToString());
    return 1;
  }
  sessions->Start();
  dispatcher.Start();

  TuningService tuning(tuner.get(), sessions.get(), store->get());
  FleetService fleet(&dispatcher);
  AdminService admin(store->get(), &dispatcher, kVersion, started_ms);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), credentials, &port);
  builder.RegisterService(&tuning);
  builder.RegisterService(&fleet);
  builder.RegisterService(&admin);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot serve on {} (in use or not an address of this host)",
                     absl::GetFlag(FLAGS_listen));
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), path.c_str());
  }
  spdlog::info("tlmd {} serving on port {} (listen {}, {}), dataset {} (schema v{})", kVersion,
               port, absl::GetFlag(FLAGS_listen),
               absl::GetFlag(FLAGS_tls_cert).empty()          ? "plaintext"
               : absl::GetFlag(FLAGS_auth_token_file).empty() ? "TLS"
                                                              : "TLS + token",
               (*store)->path(), (*store)->schema_version());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}; shutting down", strsignal(signal_number));

  sessions->Stop();
  tuner->StopAccepting();
  const absl::Time drain_deadline =
      absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
  while (Leased(dispatcher) > 0 && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (int left = Leased(dispatcher); left > 0) {
    spdlog::warn("{} jobs still with workers after the drain timeout; they run again next start",
                 left);
  }
  fleet.CloseStreams();
  tuning.CloseStreams();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  dispatcher.Stop();
  const OverheadStats overhead = tuner->Overhead();
  spdlog::info(
      "dispatch overhead over {} jobs (lease to stored result, minus worker time): median "
      "{:.2f} ms, p90 {:.2f} ms, max {:.2f} ms",
      overhead.dispatch.jobs, overhead.dispatch.median_ms, overhead.dispatch.p90_ms,
      overhead.dispatch.max_ms);
  spdlog::info(
      "queueing and dispatch over {} jobs (enqueue to stored result, minus worker time): "
      "median {:.2f} ms, p90 {:.2f} ms, max {:.2f} ms",
      overhead.enqueue_to_stored.jobs, overhead.enqueue_to_stored.median_ms,
      overhead.enqueue_to_stored.p90_ms, overhead.enqueue_to_stored.max_ms);
  spdlog::info("tlmd stopped cleanly");
  return 0;
}

}  // namespace
}  // namespace tlm::server

int main(int argc, char** argv) {
  // Block termination signals before any thread starts (gRPC starts some as
  // soon as credentials are made); Run takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::SetProgramUsageMessage(
      absl::StrCat("tlmd: the tensor-program tuning server.\n"
                   "Usage: tlmd [--listen=127.0.0.1:50051] [--db=var/tlmd.db] [--model=FILE] "
                   "[flags]\n       tlmd COMMAND [flags] [args]\n",
                   tlm::server::kModelCommandsUsage));
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    const std::vector<std::string> words(positional.begin() + 1, positional.end());
    if (tlm::server::IsModelCommand(words[0])) return tlm::server::RunModelCommand(words);
    std::fprintf(stderr, "tlmd: unknown command \"%s\"\n%s", words[0].c_str(),
                 tlm::server::kModelCommandsUsage);
    return 2;
  }
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e tlmd %^%l%$ %v");
  if (const std::string errors = tlm::server::CheckFlags(); !errors.empty()) {
    std::fprintf(stderr, "tlmd: invalid flags:\n%s", errors.c_str());
    return 2;
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      tlm::server::MakeServerCredentials({absl::GetFlag(FLAGS_tls_cert),
                                          absl::GetFlag(FLAGS_tls_key),
                                          absl::GetFlag(FLAGS_auth_token_file)});
  if (!credentials.ok()) {
    std::fprintf(stderr, "tlmd: invalid flags:\n  %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  return tlm::server::Run(*credentials, signals);
}

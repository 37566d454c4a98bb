#include "client/tlmctl_lib.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/client.h"
#include "client/format.h"
#include "client/report.h"
#include "client/workload_spec.h"
#include "program/networks.h"
#include "program/program.h"
#include "google/protobuf/util/json_util.h"
#include "tlm/v1/admin.pb.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::client {
namespace {

constexpr char kExitCodesHelp[] =
    "Exit codes: 0 success; 1 the server answered with an error, or the task did not\n"
    "succeed; 2 bad usage; 3 the server is not reachable.\n";

constexpr char kGlobalFlagsHelp[] =
    "Global flags (before or after the command):\n"
    "  --server=HOST:PORT  tlmd to talk to (default $TLMD_SERVER, else 127.0.0.1:50051)\n"
    "  --tls_ca=PEM        speak TLS, trusting this CA (default $TLMD_TLS_CA)\n"
    "  --token_file=FILE   send this bearer token; needs TLS (default $TLMD_TOKEN_FILE)\n";

// Types of flag values; the parser checks the syntax so handlers need not.
enum class FlagType { kBool, kString, kInt32, kUint64, kDouble };

struct FlagSpec {
  const char* name;
  FlagType type;
  const char* value_name;  // shown in help, e.g. "N"
  const char* help;
};

struct Invocation;

struct Command {
  const char* name;
  const char* args;     // positional arguments, for usage lines
  const char* summary;  // one line, for the command list
  const char* details;  // the command's help text
  std::vector<FlagSpec> flags;
  size_t min_args;
  size_t max_args;
  int (*run)(Invocation&);
};

struct Invocation {
  const Command* command = nullptr;
  std::map<std::string, std::string> flags;
  std::vector<std::string> args;
  Endpoint endpoint;
  Console* console = nullptr;

  bool Has(const std::string& flag) const { return flags.count(flag) != 0; }
  std::string String(const std::string& flag, const std::string& fallback = "") const {
    auto it = flags.find(flag);
    return it == flags.end() ? fallback : it->second;
  }
  // Typed values; the parser has already checked that they parse.
  int32_t Int32(const std::string& flag, int32_t fallback) const {
    int32_t value = fallback;
    if (Has(flag)) (void)absl::SimpleAtoi(flags.at(flag), &value);
    return value;
  }
  uint64_t Uint64(const std::string& flag, uint64_t fallback) const {
    uint64_t value = fallback;
    if (Has(flag)) (void)absl::SimpleAtoi(flags.at(flag), &value);
    return value;
  }
  double Double(const std::string& flag, double fallback) const {
    double value = fallback;
    if (Has(flag)) (void)absl::SimpleAtod(flags.at(flag), &value);
    return value;
  }
  std::ostream& out() { return console->out; }
  std::ostream& err() { return console->err; }
};

int UsageError(Console& console, const std::string& message, const std::string& command) {
  console.err << "tlmctl: " << message << "\n"
              << "Run 'tlmctl " << (command.empty() ? "" : command + " ") << "--help' for usage.\n";
  return kExitUsage;
}

// Reports an error from the server or the connection and picks the exit code.
int Report(Invocation& inv, const absl::Status& status) {
  inv.err() << "tlmctl: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kUnavailable ||
                 status.code() == absl::StatusCode::kDeadlineExceeded
             ? kExitUnreachable
             : kExitFailed;
}

// Checks a flag value against its type; empty string when it is fine.
std::string CheckFlagValue(const FlagSpec& spec, const std::string& value) {
  switch (spec.type) {
    case FlagType::kBool:
    case FlagType::kString:
      return "";
    case FlagType::kInt32: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) {
        return absl::StrCat("--", spec.name, ": \"", value, "\" is not an integer");
      }
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        return absl::StrCat("--", spec.name, ": ", value, " is out of range");
      }
      return "";
    }
    case FlagType::kUint64: {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) {
        return absl::StrCat("--", spec.name, ": \"", value, "\" is not a non-negative integer");
      }
      return "";
    }
    case FlagType::kDouble: {
      double v = 0;
      if (!absl::SimpleAtod(value, &v)) {
        return absl::StrCat("--", spec.name, ": \"", value, "\" is not a number");
      }
      return "";
    }
  }
  return "";
}

// Parses an id argument (`what` is TASK_ID or SESSION_ID): a positive
// integer.
bool ParseId(Invocation& inv, const std::string& text, int64_t* id, int* exit_code,
             const std::string& what = "TASK_ID") {
  if (!absl::SimpleAtoi(text, id)) {
    *exit_code = UsageError(*inv.console, absl::StrCat(what, ": \"", text, "\" is not an integer"),
                            inv.command->name);
    return false;
  }
  if (*id < 1) {
    *exit_code = UsageError(*inv.console, absl::StrCat(what, " must be positive, got ", *id),
                            inv.command->name);
    return false;
  }
  return true;
}

// Every positional argument as a task id; false (with the exit code) at the
// first that is not one.
bool ParseTaskIds(Invocation& inv, std::vector<int64_t>* ids, int* exit_code) {
  for (const std::string& arg : inv.args) {
    int64_t id = 0;
    if (!ParseId(inv, arg, &id, exit_code)) return false;
    ids->push_back(id);
  }
  return true;
}

absl::StatusOr<std::unique_ptr<Client>> Dial(Invocation& inv) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(inv.endpoint.security);
  if (!credentials.ok()) return credentials.status();
  return Client::Connect(inv.endpoint.server, inv.console->connect_timeout, *credentials);
}

std::string TargetLabel(const tlm::v1::Target& target) {
  if (target.device().empty()) return target.kind();
  return absl::StrCat(target.kind(), "/", target.device());
}

std::string ErrorKindName(tlm::v1::ErrorKind kind) {
  return absl::AsciiStrToLower(absl::StripPrefix(tlm::v1::ErrorKind_Name(kind), "ERROR_KIND_"));
}

// One line per event for logs and pipes.
void PrintEventLine(Invocation& inv, const tlm::v1::TaskEvent& event) {
  const tlm::v1::Task& task = event.task();
  std::string line =
      absl::StrCat("task ", task.id(), ": ", task.trials_done(), "/", task.num_trials(), " ");
  if (event.has_trial()) {
    const tlm::v1::MeasureResult& r = event.trial().result();
    if (r.error_kind() == tlm::v1::ERROR_KIND_NONE) {
      absl::StrAppend(&line, FormatSeconds(r.median_seconds()));
    } else {
      absl::StrAppend(&line, "failed (", ErrorKindName(r.error_kind()));
      if (!r.error_stage().empty()) absl::StrAppend(&line, " in ", r.error_stage());
      if (!r.error_message().empty()) absl::StrAppend(&line, ": ", r.error_message());
      absl::StrAppend(&line, ")");
    }
    absl::StrAppend(&line, ", best ", BestSummary(task));
  } else {
    absl::StrAppend(&line, StateName(task.state()), ", ", task.trials_failed(), " failed, best ",
                    BestSummary(task));
  }
  inv.out() << line << "\n";
}

// Follows a task until it ends; the exit code says whether it succeeded.
int Watch(Invocation& inv, Client& client, int64_t task_id) {
  tlm::v1::Task last;
  bool any = false;
  const bool tty = inv.console->out_is_tty;
  absl::Status status = client.WatchTask(task_id, [&](const tlm::v1::TaskEvent& event) {
    last = event.task();
    any = true;
    if (tty) {
      inv.out() << "\r" << ProgressLine(last) << "\x1b[K" << std::flush;
    } else if (event.has_trial() || !IsEnded(last)) {
      PrintEventLine(inv, event);
      inv.out().flush();
    }
    return true;
  });
  if (tty && any) inv.out() << "\n";
  if (!status.ok()) return Report(inv, status);
  if (!any || !IsEnded(last)) {
    inv.err() << "tlmctl: the server closed the watch of task " << task_id
              << " before the task ended\n";
    return kExitFailed;
  }
  inv.out() << TaskSummary(last) << "\n";
  return last.state() == tlm::v1::TASK_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

// A submit request from the flags shared by submit and tune.
tlm::v1::SubmitTaskRequest RequestFromFlags(const Invocation& inv, tlm::v1::Workload workload,
                                            int32_t default_trials) {
  tlm::v1::SubmitTaskRequest request;
  *request.mutable_workload() = std::move(workload);
  request.set_name(inv.String("name"));
  request.mutable_target()->set_kind(inv.String("target", "cpu"));
  request.mutable_target()->set_device(inv.String("device"));
  request.set_num_trials(inv.Int32("trials", default_trials));
  request.set_sampler(inv.String("sampler"));
  request.set_seed(inv.Uint64("seed", 0));
  request.mutable_measure()->set_repeat(inv.Int32("repeat", 0));
  request.mutable_measure()->set_min_repeat_ms(inv.Double("min-repeat-ms", 0));
  return request;
}

// Submits one workload and, when `watch`, follows it to its end.
int SubmitOne(Invocation& inv, const tlm::v1::SubmitTaskRequest& request, bool watch) {
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::Task> task = (*client)->SubmitTask(request);
  if (!task.ok()) return Report(inv, task.status());
  if (!watch) {
    inv.out() << task->id() << "\n";
    return kExitOk;
  }
  inv.out() << "task " << task->id() << " submitted: " << WorkloadSummary(task->workload())
            << " on " << TargetLabel(task->target()) << ", " << task->num_trials() << " trials\n";
  return Watch(inv, **client, task->id());
}

int RunSubmit(Invocation& inv) {
  absl::StatusOr<tlm::v1::Workload> workload = ParseWorkloadSpec(inv.args, inv.String("epilogue"));
  absl::StatusOr<tlm::v1::DType> dtype = ParseDTypeFlag(inv.String("dtype"));
  if (!workload.ok() || !dtype.ok()) {
    const absl::Status& bad = !workload.ok() ? workload.status() : dtype.status();
    return UsageError(*inv.console, std::string(bad.message()), "submit");
  }
  workload->set_dtype(*dtype);
  return SubmitOne(inv, RequestFromFlags(inv, *std::move(workload), 32), inv.Has("watch"));
}

// One line per round: why its tasks were chosen.
void PrintRound(Invocation& inv, const tlm::v1::Session& session, const tlm::v1::SessionRound& r) {
  const std::string head = absl::StrCat("round ", r.index(), " (", r.measured_before(), "/",
                                        session.request().budget(), " measurements): ");
  if (r.why_size() > 1 && std::all_of(r.why().begin(), r.why().end(), [](const std::string& w) {
        return absl::EndsWith(w, ": not measured yet");
      })) {
    inv.out() << head << r.why_size() << " tasks not measured yet\n";
  } else {
    for (const std::string& why : r.why()) inv.out() << head << why << "\n";
  }
  inv.out().flush();
}

// Where the wall time of a session's ended rounds went: worker seconds
// spent building and running the programs measured in each round (results
// stored between its start and its end), over the round's wall time.
absl::StatusOr<std::string> RoundTimes(Client& client, const tlm::v1::Session& session) {
  std::vector<int64_t> ids;
  for (const tlm::v1::SessionTask& t : session.tasks()) {
    if (t.task_id() > 0) ids.push_back(t.task_id());
  }
  std::vector<tlm::v1::Record> records;
  if (absl::Status s =
          client.ExportRecords(ids, [&](const tlm::v1::Record& r) { records.push_back(r); });
      !s.ok()) {
    return s;
  }
  std::vector<double> walls;
  double wall = 0, build = 0, run = 0;
  for (const tlm::v1::SessionRound& round : session.rounds()) {
    if (round.ended_unix_ms() == 0) continue;
    walls.push_back((round.ended_unix_ms() - round.started_unix_ms()) / 1e3);
    wall += walls.back();
    for (const tlm::v1::Record& r : records) {
      if (r.measured_unix_ms() < round.started_unix_ms() ||
          r.measured_unix_ms() > round.ended_unix_ms()) {
        continue;
      }
      build += r.result().build_seconds();
      run += r.result().run_seconds();
    }
  }
  if (walls.empty() || wall <= 0) return std::string();
  std::sort(walls.begin(), walls.end());
  return absl::StrFormat(
      "rounds: %d, wall time median %.2f s (max %.2f s); workers spent %.0f%% of it measuring "
      "(build %.0f%%, check and time %.0f%%)\n",
      walls.size(), walls[walls.size() / 2], walls.back(), 100 * (build + run) / wall,
      100 * build / wall, 100 * run / wall);
}

// Follows a session to its end, printing each round as it starts; then a
// table of untuned and best latency per task, the network's estimated
// latency (sum of weight x best) before and after, and where the rounds'
// time went.
int FollowSession(Invocation& inv, Client& client, int64_t session_id) {
  int printed = 0;
  tlm::v1::Session last;
  absl::Status watched = client.WatchSession(session_id, [&](const tlm::v1::Session& s) {
    for (; printed < s.rounds_size(); ++printed) PrintRound(inv, s, s.rounds(printed));
    last = s;
    return true;
  });
  if (!watched.ok()) return Report(inv, watched);
  const std::string& name = last.request().name();
  inv.out() << "session " << last.id() << " " << absl::AsciiStrToLower(absl::StripPrefix(
                                                       tlm::v1::SessionState_Name(last.state()),
                                                       "SESSION_STATE_"))
            << ": " << last.message() << "\n";
  inv.out() << absl::StrFormat("%-6s %-34s %6s %8s %12s %12s %12s %9s\n", "task", "workload",
                               "weight", "trials", "untuned", "best", "GFLOP/s", "speedup");
  for (const tlm::v1::SessionTask& t : last.tasks()) {
    tlm::v1::Task tuned, untuned;
    for (auto [id, out] : {std::pair<int64_t, tlm::v1::Task*>{t.task_id(), &tuned},
                           std::pair<int64_t, tlm::v1::Task*>{t.untuned_task_id(), &untuned}}) {
      if (id == 0) continue;
      absl::StatusOr<tlm::v1::Task> got = client.GetTask(id);
      if (!got.ok()) return Report(inv, got.status());
      *out = *std::move(got);
    }
    const double best = tuned.best_seconds(), before = untuned.best_seconds();
    const std::string gflops = FormatGflops(WorkloadFlops(t.workload()), best);
    inv.out() << absl::StrFormat(
        "%-6s %-34s %6d %8s %12s %12s %12s %9s\n",
        t.task_id() > 0 ? absl::StrCat(t.task_id()) : "-", t.name(), t.weight(),
        absl::StrCat(tuned.trials_done(), "/", tuned.num_trials()), FormatSeconds(before),
        FormatSeconds(best),
        gflops.empty() ? "-" : std::string(absl::StripSuffix(gflops, " GFLOP/s")),
        best > 0 && before > 0 ? absl::StrFormat("%.1fx", before / best) : "-");
  }
  inv.out() << "estimated latency of " << name << ": " << FormatSeconds(last.estimated_seconds())
            << " (sum of weight x best over " << last.tasks_measured() << " of "
            << last.tasks_size() << " tasks, " << last.measured() << " measurements)\n";
  if (last.untuned_seconds() > 0 && last.tasks_measured() == last.tasks_size()) {
    inv.out() << "untuned schedules: " << FormatSeconds(last.untuned_seconds()) << "; tuned is "
              << absl::StrFormat("%.1fx", last.untuned_seconds() / last.estimated_seconds())
              << " faster\n";
  }
  absl::StatusOr<std::string> times = RoundTimes(client, last);
  if (!times.ok()) return Report(inv, times.status());
  inv.out() << *times;
  return last.state() == tlm::v1::SESSION_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

// Tunes every distinct workload of a network in one session on tlmd: with
// --budget, measurements go in rounds to the tasks the scheduler picks;
// without, every task gets --trials in one round.
int TuneNetwork(Invocation& inv, const std::string& network) {
  if (absl::StatusOr<std::vector<program::NetworkTask>> known = program::NetworkTasks(network);
      !known.ok()) {
    return UsageError(*inv.console, std::string(known.status().message()), "tune");
  }
  const int trials = inv.Int32("trials", 16);
  const int budget = inv.Int32("budget", 0);
  const int round = inv.Int32("round", budget > 0 ? 16 : trials);
  const int tasks_per_round = inv.Int32("tasks-per-round", 1);
  if (budget < 0 || round < 1 || trials < 1 || tasks_per_round < 1) {
    return UsageError(*inv.console,
                      "--budget must not be negative; --round, --trials and --tasks-per-round "
                      "must be positive",
                      "tune");
  }
  absl::StatusOr<tlm::v1::DType> dtype = ParseDTypeFlag(inv.String("dtype"));
  if (!dtype.ok()) return UsageError(*inv.console, std::string(dtype.status().message()), "tune");
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  const tlm::v1::SubmitTaskRequest flags = RequestFromFlags(inv, {}, trials);
  tlm::v1::StartSessionRequest request;
  request.set_name(flags.name());
  request.set_network(network);
  request.set_dtype(*dtype);
  *request.mutable_target() = flags.target();
  request.set_sampler(flags.sampler());
  request.set_seed(flags.seed());
  *request.mutable_measure() = flags.measure();
  request.set_trials_per_round(round);
  request.set_tasks_per_round(tasks_per_round);
  request.set_measure_untuned(!inv.Has("no-baseline"));
  if (budget > 0) {
    request.set_budget(budget);
  } else {
    absl::StatusOr<std::vector<program::NetworkTask>> tasks = program::NetworkTasks(network);
    request.set_budget(trials * static_cast<int>(tasks->size()));
  }
  absl::StatusOr<tlm::v1::Session> session = (*client)->StartSession(request);
  if (!session.ok()) return Report(inv, session.status());
  inv.out() << "session " << session->id() << ": network " << network << ", "
            << session->tasks_size() << " tasks on " << TargetLabel(session->request().target())
            << ", budget " << session->request().budget() << " measurements in rounds of "
            << session->request().trials_per_round() << " per task"
            << (session->request().measure_untuned()
                    ? " (each workload's untuned schedule measured first)"
                    : "")
            << "\n";
  return FollowSession(inv, **client, session->id());
}

int RunSession(Invocation& inv) {
  int64_t id = 0;
  if (int code = kExitOk; !ParseId(inv, inv.args[0], &id, &code, "SESSION_ID")) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  if (inv.Has("cancel")) {
    absl::StatusOr<tlm::v1::Session> cancelled = (*client)->CancelSession(id);
    if (!cancelled.ok()) return Report(inv, cancelled.status());
  }
  return FollowSession(inv, **client, id);
}

int RunTune(Invocation& inv) {
  const std::string network = inv.String("network");
  if (!network.empty()) {
    if (!inv.args.empty()) {
      return UsageError(*inv.console, "give either OP NAME=INT... or --network, not both", "tune");
    }
    return TuneNetwork(inv, network);
  }
  if (inv.args.empty()) {
    return UsageError(*inv.console, "missing OP NAME=INT... or --network=NAME", "tune");
  }
  absl::StatusOr<tlm::v1::Workload> workload = ParseWorkloadSpec(inv.args, inv.String("epilogue"));
  absl::StatusOr<tlm::v1::DType> dtype = ParseDTypeFlag(inv.String("dtype"));
  if (!workload.ok() || !dtype.ok()) {
    const absl::Status& bad = !workload.ok() ? workload.status() : dtype.status();
    return UsageError(*inv.console, std::string(bad.message()), "tune");
  }
  workload->set_dtype(*dtype);
  return SubmitOne(inv, RequestFromFlags(inv, *std::move(workload), 64), /*watch=*/true);
}

int RunWatch(Invocation& inv) {
  int64_t task_id = 0;
  int code = kExitOk;
  if (!ParseId(inv, inv.args[0], &task_id, &code)) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  return Watch(inv, **client, task_id);
}

int RunBest(Invocation& inv) {
  int64_t task_id = 0;
  int code = kExitOk;
  if (!ParseId(inv, inv.args[0], &task_id, &code)) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::Task> task = (*client)->GetTask(task_id);
  if (!task.ok()) return Report(inv, task.status());
  absl::StatusOr<tlm::v1::BestProgram> best = (*client)->GetBest(task_id);
  if (!best.ok()) return Report(inv, best.status());
  const tlm::v1::Trial& trial = best->trial();
  const tlm::v1::MeasureResult& r = trial.result();
  std::vector<std::string> repeats;
  for (double s : r.repeat_seconds()) repeats.push_back(FormatSeconds(s));
  std::ostream& out = inv.out();
  out << "task      " << task_id << ": " << WorkloadSummary(task->workload()) << " on "
      << TargetLabel(task->target()) << " (" << StateName(task->state()) << ", "
      << task->trials_done() << "/" << task->num_trials() << " trials)\n";
  if (task->target().has_limits()) {
    out << "limits    "
        << program::LimitsSummary(program::LimitsFromProto(task->target().limits())) << "\n";
  }
  out << "latency   " << FormatSeconds(r.median_seconds()) << " median of "
      << r.repeat_seconds_size() << " repeats [" << absl::StrJoin(repeats, ", ") << "], "
      << r.number() << " calls each\n";
  const std::string gflops = FormatGflops(WorkloadFlops(task->workload()), r.median_seconds());
  if (!gflops.empty()) out << "speed     " << gflops << "\n";
  out << "checked   max abs error " << absl::StrFormat("%.3g", r.max_abs_error()) << "\n";
  out << "worker    " << trial.worker_id() << "\n";
  out << "program   " << trial.program().text() << "\n";
  out << "hash      " << trial.program().hash() << "\n";
  if (inv.Has("source")) {
    if (r.source().empty()) {
      out << "source    (the worker sent none)\n";
    } else {
      out << "source\n" << r.source();
      if (r.source().back() != '\n') out << "\n";
    }
  }
  return kExitOk;
}

int RunList(Invocation& inv) {
  std::vector<tlm::v1::TaskState> states;
  if (inv.Has("state")) {
    for (absl::string_view name : absl::StrSplit(inv.String("state"), ',')) {
      tlm::v1::TaskState state;
      const std::string enum_name =
          absl::AsciiStrToUpper(absl::StrCat("TASK_STATE_", absl::StripAsciiWhitespace(name)));
      if (!tlm::v1::TaskState_Parse(enum_name, &state) ||
          state == tlm::v1::TASK_STATE_UNSPECIFIED) {
        return UsageError(*inv.console,
                          absl::StrCat("--state: unknown state \"", name,
                                       "\" (running, succeeded, failed, cancelled)"),
                          "list");
      }
      states.push_back(state);
    }
  }
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks =
      (*client)->ListTasks(inv.Int32("limit", 0), states);
  if (!tasks.ok()) return Report(inv, tasks.status());
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "WORKLOAD", "TARGET", "STATE", "DONE", "FAILED", "BEST"}};
  for (const tlm::v1::Task& t : *tasks) {
    rows.push_back({absl::StrCat(t.id()), t.name().empty() ? "-" : t.name(),
                    WorkloadSummary(t.workload()), TargetLabel(t.target()), StateName(t.state()),
                    absl::StrCat(t.trials_done(), "/", t.num_trials()),
                    absl::StrCat(t.trials_failed()), BestSummary(t)});
  }
  inv.out() << FormatTable(rows);
  return kExitOk;
}

int RunCancel(Invocation& inv) {
  int64_t task_id = 0;
  int code = kExitOk;
  if (!ParseId(inv, inv.args[0], &task_id, &code)) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::Task> task = (*client)->CancelTask(task_id);
  if (!task.ok()) return Report(inv, task.status());
  inv.out() << TaskSummary(*task) << "\n";
  return kExitOk;
}

int RunStatus(Invocation& inv) {
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::ServerStatus> s = (*client)->GetStatus();
  if (!s.ok()) return Report(inv, s.status());
  const absl::Duration uptime = inv.console->now() - absl::FromUnixMillis(s->started_unix_ms());
  std::ostream& out = inv.out();
  out << "server        " << inv.endpoint.server << " (tlmd " << s->version() << ", up "
      << HumanDuration(uptime) << ")\n";
  out << "dataset       " << s->database_path() << " (schema v" << s->schema_version() << ")\n";
  out << "tasks         " << s->num_tasks() << "\n";
  out << "measurements  " << s->num_measurements() << "\n";
  out << "workers       " << s->num_workers() << "\n";
  for (const tlm::v1::QueueStatus& q : s->queues()) {
    out << absl::StrFormat("queue %-7s %d queued, %d with workers\n", q.target_kind(), q.queued(),
                           q.leased());
  }
  return kExitOk;
}

int RunWorkers(Invocation& inv) {
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<std::vector<tlm::v1::WorkerInfo>> workers = (*client)->ListWorkers();
  if (!workers.ok()) return Report(inv, workers.status());
  const absl::Time now = inv.console->now();
  auto since = [&](int64_t unix_ms) {
    return unix_ms <= 0 ? std::string("-") : HumanDuration(now - absl::FromUnixMillis(unix_ms));
  };
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "TARGET", "BACKEND", "IN-FLIGHT",
                                                 "CREDITS", "RESULTS", "PER-S", "BUSY", "UP",
                                                 "HEARTBEAT", "DEVICE"}};
  for (const tlm::v1::WorkerInfo& w : *workers) {
    const tlm::v1::WorkerCapabilities& c = w.capabilities();
    // Results per second and the share of the time connected the device
    // spent checking and timing programs.
    const double up_seconds =
        w.connected_unix_ms() > 0
            ? absl::ToDoubleSeconds(now - absl::FromUnixMillis(w.connected_unix_ms()))
            : 0;
    const bool rated = up_seconds >= 1;
    rows.push_back(
        {w.worker_id(), w.name(), TargetLabel(c.target()), c.backend(),
         absl::StrCat(w.in_flight(), "/", c.max_in_flight()), absl::StrCat(w.credits()),
         absl::StrCat(w.results()),
         rated ? absl::StrFormat("%.2f", w.results() / up_seconds) : "-",
         rated ? absl::StrFormat("%.0f%%", 100 * std::min(1.0, w.run_seconds() / up_seconds))
               : "-",
         since(w.connected_unix_ms()),
         since(w.last_heartbeat_unix_ms()) + (w.last_heartbeat_unix_ms() > 0 ? " ago" : ""),
         c.device_name()});
  }
  inv.out() << FormatTable(rows);
  return kExitOk;
}

int RunExport(Invocation& inv) {
  std::vector<int64_t> ids;
  if (int code = kExitOk; !ParseTaskIds(inv, &ids, &code)) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  int64_t count = 0;
  absl::Status status = (*client)->ExportRecords(ids, [&](const tlm::v1::Record& record) {
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(record, &line, options);
    inv.out() << line << "\n";
    ++count;
  });
  if (!status.ok()) return Report(inv, status);
  inv.err() << "tlmctl: exported " << count << " records\n";
  return kExitOk;
}

int RunReport(Invocation& inv) {
  std::vector<int64_t> ids;
  if (int code = kExitOk; !ParseTaskIds(inv, &ids, &code)) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<std::vector<tlm::v1::Task>> all = (*client)->ListTasks(1000, {});
  if (!all.ok()) return Report(inv, all.status());
  std::vector<tlm::v1::Task> tasks;
  for (const tlm::v1::Task& t : *all) {
    if (ids.empty() || std::find(ids.begin(), ids.end(), t.id()) != ids.end()) tasks.push_back(t);
  }
  for (int64_t id : ids) {
    if (std::none_of(tasks.begin(), tasks.end(), [&](const auto& t) { return t.id() == id; })) {
      return Report(inv, absl::NotFoundError(absl::StrCat("task ", id, " not found")));
    }
  }
  std::vector<tlm::v1::Record> records;
  absl::Status status = (*client)->ExportRecords(
      ids, [&](const tlm::v1::Record& record) { records.push_back(record); });
  if (!status.ok()) return Report(inv, status);
  const std::string path = inv.String("out", "tlm-report.html");
  std::ofstream file(path, std::ios::trunc);
  file << RenderReport(tasks, records, inv.String("title", "tlmd tuning report"));
  file.close();
  if (!file) {
    inv.err() << "tlmctl: cannot write " << path << "\n";
    return kExitFailed;
  }
  inv.out() << "report of " << tasks.size() << " tasks and " << records.size()
            << " measurements: " << path << "\n";
  return kExitOk;
}

int RunImport(Invocation& inv) {
  const std::string& path = inv.args[0];
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) {
      inv.err() << "tlmctl: cannot read " << path << "\n";
      return kExitFailed;
    }
  }
  std::istream& in = path == "-" ? inv.console->in : file;
  std::vector<tlm::v1::Record> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    tlm::v1::Record record;
    const auto parsed = google::protobuf::util::JsonStringToMessage(line, &record);
    if (!parsed.ok()) {
      inv.err() << "tlmctl: " << path << ":" << number << ": not a record: " << parsed.ToString()
                << "\n";
      return kExitFailed;
    }
    records.push_back(std::move(record));
  }
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::ImportRecordsResponse> response = (*client)->ImportRecords(records);
  if (!response.ok()) return Report(inv, response.status());
  inv.out() << "imported " << response->imported() << " records (" << response->duplicates()
            << " duplicates skipped) into tasks " << absl::StrJoin(response->task_ids(), ", ")
            << "\n";
  return kExitOk;
}

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"submit",
       "OP NAME=INT...",
       "submit a tuning task",
       "Submit a tuning task for the workload OP NAME=INT..., e.g.\n"
       "  tlmctl submit dense M=128 N=768 K=3072 --epilogue=bias,relu --trials=64\n"
       "The server checks the workload and names what it rejects.\n\n"
       "Prints the new task id alone on one line on stdout, so scripts can capture it:\n"
       "  id=$(tlmctl submit dense M=64 N=64 K=64)\n"
       "With --watch it prints a header line instead and follows the task like 'watch'\n"
       "(exit 0 only if the task succeeds).",
       {{"epilogue", FlagType::kString, "LIST",
         "elementwise ops fused after the operator, in order, e.g. bias,relu"},
        {"target", FlagType::kString, "KIND", "target kind: cpu (default) or cuda"},
        {"dtype", FlagType::kString, "TYPE", "float32 (default) or float16 (cuda only)"},
        {"device", FlagType::kString, "NAME", "only workers reporting this device model"},
        {"trials", FlagType::kInt32, "N", "programs to measure (default 32)"},
        {"sampler", FlagType::kString, "NAME", "how programs are chosen (default: random)"},
        {"seed", FlagType::kUint64, "N", "sampler seed (default 0: picked from the clock)"},
        {"name", FlagType::kString, "LABEL", "label shown by 'tlmctl list'"},
        {"repeat", FlagType::kInt32, "N", "timed repeats per program (default: worker's, 3)"},
        {"min-repeat-ms", FlagType::kDouble, "X",
         "minimum milliseconds of one repeat (default: worker's, 10)"},
        {"watch", FlagType::kBool, "", "follow the task until it ends"}},
       1,
       1000,
       RunSubmit},
      {"tune",
       "[OP NAME=INT...]",
       "tune a workload, or every workload of a network, and wait for the results",
       "Tune one workload and follow it to its end, e.g.\n"
       "  tlmctl tune conv2d_nchw N=1 C=64 H=56 W=56 F=64 KH=3 KW=3 P=1 --epilogue=bias,relu\n"
       "or every distinct workload of a network in one session on tlmd, e.g.\n"
       "  tlmctl tune --network=bert_base --budget=1024\n"
       "A session spends its budget in rounds: each round the task scheduler gives --round\n"
       "more programs to the task expected to save the network the most (tasks never\n"
       "measured first). It goes on on tlmd if tlmctl stops ('tlmctl session ID' follows it\n"
       "again). It ends with a table of the untuned (measured first, one trial each) and\n"
       "the best latency per task, and the network's estimated latency (the sum of weight\n"
       "x best latency) before and after. Networks: bert_base, bert_tiny, gpt2,\n"
       "gpt2_decode, mobilenet_v2, resnet_50. Exits 0 only if the session succeeds.",
       {{"network", FlagType::kString, "NAME", "tune every workload of this network"},
        {"no-baseline", FlagType::kBool, "",
         "with --network: do not measure each workload's untuned schedule"},
        {"budget", FlagType::kInt32, "N",
         "with --network: N measurements in all, given in rounds to the tasks expected to "
         "gain the network the most (default 0: --trials for every task, in one round)"},
        {"round", FlagType::kInt32, "K",
         "with --network: programs per chosen task and round (default 16 with --budget, "
         "else --trials)"},
        {"tasks-per-round", FlagType::kInt32, "N",
         "with --network: tasks chosen per round once each is measured (default 1)"},
        {"epilogue", FlagType::kString, "LIST",
         "elementwise ops fused after the operator, in order, e.g. bias,gelu"},
        {"target", FlagType::kString, "KIND", "target kind: cpu (default) or cuda"},
        {"dtype", FlagType::kString, "TYPE", "float32 (default) or float16 (cuda only)"},
        {"device", FlagType::kString, "NAME", "only workers reporting this device model"},
        {"trials", FlagType::kInt32, "N",
         "programs to measure per task (default 64; 16 per task of a network)"},
        {"sampler", FlagType::kString, "NAME", "how programs are chosen (default: random)"},
        {"seed", FlagType::kUint64, "N", "sampler seed (default 0: picked from the clock)"},
        {"name", FlagType::kString, "LABEL", "label shown by 'tlmctl list' (one workload)"},
        {"repeat", FlagType::kInt32, "N", "timed repeats per program (default: worker's, 3)"},
        {"min-repeat-ms", FlagType::kDouble, "X",
         "minimum milliseconds of one repeat (default: worker's, 10)"}},
       0,
       1000,
       RunTune},
      {"session",
       "SESSION_ID",
       "follow a network session until it ends",
       "Follow a session started by 'tlmctl tune --network' (or a compiler): its rounds\n"
       "from the first, then the per-task table and the network's estimated latency.\n"
       "Exits 0 if the session succeeded.",
       {{"cancel", FlagType::kBool, "", "cancel the session and its running tasks first"}},
       1,
       1,
       RunSession},
      {"watch",
       "TASK_ID",
       "follow a task until it ends",
       "Follow a task until it ends. On a terminal one progress line is redrawn (done/total,\n"
       "failed, best latency and GFLOP/s); otherwise one line per event. Ends with a\n"
       "summary line. Exits 0 if the task succeeded, 1 if it failed or was cancelled.",
       {},
       1,
       1,
       RunWatch},
      {"best",
       "TASK_ID",
       "show the fastest program of a task",
       "Show the fastest program measured for a task: latency (median and every repeat),\n"
       "GFLOP/s, the worker that measured it, the program text and its hash.",
       {{"source", FlagType::kBool, "", "also print the code the worker ran (loop nest)"}},
       1,
       1,
       RunBest},
      {"list",
       "",
       "list tasks, newest first",
       "List tasks, newest first: id, name, workload, target, state, done/total trials,\n"
       "failed trials and best latency.",
       {{"limit", FlagType::kInt32, "N", "at most N tasks (default 50, at most 1000)"},
        {"state", FlagType::kString, "STATE",
         "only tasks in these states (comma-separated): running, succeeded, failed, "
         "cancelled"}},
       0,
       0,
       RunList},
      {"cancel",
       "TASK_ID",
       "cancel a task",
       "Cancel a task: queued trials are dropped, results being measured are still\n"
       "stored. Prints the task's summary.",
       {},
       1,
       1,
       RunCancel},
      {"export",
       "[TASK_ID...]",
       "write measured programs as JSON lines",
       "Write the measured programs of the given tasks (all tasks when none are given) to\n"
       "stdout as JSON lines, one self-contained record per line.",
       {},
       0,
       1000,
       RunExport},
      {"report",
       "[TASK_ID...]",
       "write an HTML report with tuning curves",
       "Write one self-contained HTML file: for every workload a chart of the best latency\n"
       "against measurements with one line per task (so samplers compare directly), for\n"
       "every network tuned with 'tune --network' the estimated latency the same way, and a\n"
       "table of the tasks. All tasks (the newest 1000) when none are given.",
       {{"out", FlagType::kString, "FILE", "where to write (default tlm-report.html)"},
        {"title", FlagType::kString, "TEXT", "heading of the report"}},
       0,
       1000,
       RunReport},
      {"import",
       "FILE",
       "store records written by 'export'",
       "Store the records of a JSON-lines FILE ('-' for stdin) written by 'tlmctl export'.\n"
       "One bad record rejects the whole file and nothing is stored.",
       {},
       1,
       1,
       RunImport},
      {"status",
       "",
       "show the server, its dataset and queues",
       "Show the server's version and uptime, its dataset (path, schema, counts), the\n"
       "queue of every target kind and the number of workers.",
       {},
       0,
       0,
       RunStatus},
      {"workers",
       "",
       "list connected workers",
       "List the connected workers: id, name, target, backend, jobs in flight, credits,\n"
       "results, time connected, last heartbeat and device.",
       {},
       0,
       0,
       RunWorkers},
  };
  return *commands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

void PrintTopUsage(std::ostream& out) {
  out << "tlmctl: submit and inspect tuning tasks on a tlmd server.\n\n"
      << "Usage: tlmctl [GLOBAL FLAGS] COMMAND [ARGS] [FLAGS]\n\nCommands:\n";
  for (const Command& c : Commands()) {
    out << absl::StrFormat("  %-8s %-16s %s\n", c.name, c.args, c.summary);
  }
  out << "\n"
      << kGlobalFlagsHelp << "\n"
      << "'tlmctl COMMAND --help' or 'tlmctl help COMMAND' describes a command.\n\n"
      << kExitCodesHelp;
}

void PrintCommandUsage(const Command& c, std::ostream& out) {
  out << "Usage: tlmctl [GLOBAL FLAGS] " << c.name << (*c.args ? " " : "") << c.args
      << (c.flags.empty() ? "" : " [FLAGS]") << "\n\n"
      << c.details << "\n";
  if (!c.flags.empty()) {
    out << "\nFlags:\n";
    for (const FlagSpec& f : c.flags) {
      const std::string shown = f.type == FlagType::kBool
                                    ? absl::StrCat("--", f.name)
                                    : absl::StrCat("--", f.name, "=", f.value_name);
      out << absl::StrFormat("  %-19s %s\n", shown, f.help);
    }
  }
  out << "\n" << kGlobalFlagsHelp << "\n" << kExitCodesHelp;
}

bool IsHelp(const std::string& arg) { return arg == "--help" || arg == "-h"; }

// Whether `arg` is a flag rather than a positional argument. "-" alone
// (stdin) and negative numbers are positional.
bool LooksLikeFlag(const std::string& arg) {
  if (arg.size() < 2 || arg[0] != '-') return false;
  double number = 0;
  return !absl::SimpleAtod(arg, &number);
}

// Splits "--name=value" / "--name" into name and value.
void SplitFlag(const std::string& arg, std::string* name, std::string* value, bool* has_value) {
  const size_t start = absl::StartsWith(arg, "--") ? 2 : 1;
  const size_t eq = arg.find('=');
  *has_value = eq != std::string::npos;
  *name = arg.substr(start, *has_value ? eq - start : std::string::npos);
  *value = *has_value ? arg.substr(eq + 1) : "";
}

// The global connection flags, accepted before and after the command.
std::string* GlobalFlag(Endpoint& endpoint, const std::string& name) {
  if (name == "server") return &endpoint.server;
  if (name == "tls_ca") return &endpoint.security.tls_ca_file;
  if (name == "token_file") return &endpoint.security.token_file;
  return nullptr;
}

}  // namespace

Endpoint EndpointFromEnvironment(const std::function<const char*(const char*)>& getenv) {
  Endpoint endpoint;
  auto take = [&](const char* variable, std::string* field) {
    const char* value = getenv(variable);
    if (value != nullptr && *value != '\0') *field = value;
  };
  take("TLMD_SERVER", &endpoint.server);
  take("TLMD_TLS_CA", &endpoint.security.tls_ca_file);
  take("TLMD_TOKEN_FILE", &endpoint.security.token_file);
  return endpoint;
}

int RunTlmctl(const std::vector<std::string>& args, const Endpoint& defaults, Console& console) {
  Invocation inv;
  inv.console = &console;
  inv.endpoint = defaults;

  // Handles args[i] when it is a global flag: stores its value (from
  // "--name=value" or the next argument) and advances i. Returns 0 when
  // args[i] is not a global flag, -1 when it was taken, else an exit code.
  auto take_global_flag = [&](size_t& i, const std::string& command) -> int {
    std::string name, value;
    bool has_value = false;
    SplitFlag(args[i], &name, &value, &has_value);
    if (!absl::StartsWith(args[i], "--")) return 0;
    std::string* field = GlobalFlag(inv.endpoint, name);
    if (field == nullptr) return 0;
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return UsageError(console, absl::StrCat("--", name, " needs a value"), command);
      }
      value = args[++i];
    }
    if (name == "server" && value.empty()) {
      return UsageError(console, "--server needs a HOST:PORT", command);
    }
    *field = value;
    return -1;
  };

  size_t i = 0;
  for (; i < args.size() && LooksLikeFlag(args[i]); ++i) {
    if (IsHelp(args[i])) {
      PrintTopUsage(console.out);
      return kExitOk;
    }
    const int taken = take_global_flag(i, "");
    if (taken == 0) return UsageError(console, absl::StrCat("unknown flag ", args[i]), "");
    if (taken > 0) return taken;
  }
  if (i == args.size()) {
    console.err << "tlmctl: missing COMMAND\n\n";
    PrintTopUsage(console.err);
    return kExitUsage;
  }
  const std::string name = args[i++];
  if (name == "help") {
    if (i == args.size()) {
      PrintTopUsage(console.out);
      return kExitOk;
    }
    if (i + 1 < args.size()) {
      return UsageError(console, absl::StrCat("help: unexpected argument \"", args[i + 1], "\""),
                        "");
    }
    const Command* c = FindCommand(args[i]);
    if (c == nullptr) {
      return UsageError(console, absl::StrCat("unknown command \"", args[i], "\""), "");
    }
    PrintCommandUsage(*c, console.out);
    return kExitOk;
  }
  inv.command = FindCommand(name);
  if (inv.command == nullptr) {
    return UsageError(console, absl::StrCat("unknown command \"", name, "\""), "");
  }
  const Command& command = *inv.command;
  // Help wins over any other problem on the line.
  for (size_t j = i; j < args.size(); ++j) {
    if (IsHelp(args[j])) {
      PrintCommandUsage(command, console.out);
      return kExitOk;
    }
  }
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!LooksLikeFlag(arg)) {
      inv.args.push_back(arg);
      continue;
    }
    const int taken = take_global_flag(i, name);
    if (taken > 0) return taken;
    if (taken < 0) continue;
    std::string flag, value;
    bool has_value = false;
    SplitFlag(arg, &flag, &value, &has_value);
    auto spec = std::find_if(command.flags.begin(), command.flags.end(),
                             [&](const FlagSpec& f) { return flag == f.name; });
    if (!absl::StartsWith(arg, "--") || spec == command.flags.end()) {
      return UsageError(console,
                        absl::StrCat("unknown flag ",
                                     has_value ? arg.substr(0, arg.find('=')) : arg, " for ", name),
                        name);
    }
    if (spec->type == FlagType::kBool) {
      if (has_value) return UsageError(console, absl::StrCat("--", flag, " takes no value"), name);
    } else if (!has_value) {
      if (i + 1 >= args.size()) {
        return UsageError(console, absl::StrCat("--", flag, " needs a value"), name);
      }
      value = args[++i];
    }
    if (std::string problem = CheckFlagValue(*spec, value); !problem.empty()) {
      return UsageError(console, problem, name);
    }
    inv.flags[flag] = value;
  }
  if (inv.args.size() < command.min_args) {
    return UsageError(console, absl::StrCat(name, ": missing ", command.args), name);
  }
  if (inv.args.size() > command.max_args) {
    return UsageError(
        console, absl::StrCat(name, ": unexpected argument \"", inv.args[command.max_args], "\""),
        name);
  }
  return command.run(inv);
}

}  // namespace tlm::client

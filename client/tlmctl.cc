#include "client/tlmctl.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <iostream>
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
#include "absl/time/clock.h"
#include "client/client.h"
#include "google/protobuf/util/json_util.h"

namespace tlm::client {
namespace {

constexpr absl::Duration kConnectTimeout = absl::Seconds(5);

struct FlagSpec {
  const char* name;
  bool takes_value;
  const char* help;
};

struct Invocation;
using Handler = std::function<int(Invocation&)>;

struct Command {
  const char* name;
  const char* args;
  const char* summary;
  std::vector<FlagSpec> flags;
  size_t min_args;
  size_t max_args;
  Handler run;
};

struct Invocation {
  const Command* command = nullptr;
  std::map<std::string, std::string> flags;
  std::vector<std::string> args;
  Endpoint endpoint;
  Terminal* terminal = nullptr;

  bool has(const std::string& flag) const { return flags.count(flag) != 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const {
    auto it = flags.find(flag);
    return it == flags.end() ? fallback : it->second;
  }
  std::ostream& out() { return terminal->out; }
  std::ostream& err() { return terminal->err; }
};

int UsageError(Terminal& t, const std::string& message, const std::string& command) {
  t.err << "tlmctl: " << message << "\n"
        << "Run 'tlmctl " << (command.empty() ? "" : command + " ") << "--help' for usage.\n";
  return kExitUsage;
}

int Report(Invocation& inv, const absl::Status& status) {
  inv.err() << "tlmctl: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kUnavailable ||
                 status.code() == absl::StatusCode::kDeadlineExceeded
             ? kExitUnreachable
             : kExitFailed;
}

// Parses a number flag or argument; reports a usage error when it is not one.
bool ParseNumber(Invocation& inv, const std::string& what, const std::string& text, int64_t* value,
                 int* exit_code) {
  if (absl::SimpleAtoi(text, value)) return true;
  *exit_code = UsageError(*inv.terminal, absl::StrCat(what, ": \"", text, "\" is not an integer"),
                          inv.command->name);
  return false;
}

bool ParseDouble(Invocation& inv, const std::string& what, const std::string& text, double* value,
                 int* exit_code) {
  if (absl::SimpleAtod(text, value)) return true;
  *exit_code = UsageError(*inv.terminal, absl::StrCat(what, ": \"", text, "\" is not a number"),
                          inv.command->name);
  return false;
}

absl::StatusOr<std::unique_ptr<Client>> Dial(Invocation& inv) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(inv.endpoint.security);
  if (!credentials.ok()) return credentials.status();
  return Client::Connect(inv.endpoint.server, kConnectTimeout, *credentials);
}

// The connection options every command takes, before or after its name.
std::string* ConnectionFlag(Endpoint& endpoint, const std::string& name) {
  if (name == "server") return &endpoint.server;
  if (name == "tls_ca") return &endpoint.security.tls_ca_file;
  if (name == "token_file") return &endpoint.security.token_file;
  return nullptr;
}

std::string StateName(tlm::v1::TaskState state) {
  std::string name = tlm::v1::TaskState_Name(state);
  absl::string_view short_name = absl::StripPrefix(name, "TASK_STATE_");
  return absl::AsciiStrToLower(short_name);
}

std::string Best(const tlm::v1::Task& task) {
  if (task.best_seconds() <= 0) return "-";
  std::string s = FormatSeconds(task.best_seconds());
  const double flops = WorkloadFlops(task.workload());
  if (flops > 0)
    absl::StrAppend(&s, " (", absl::StrFormat("%.1f", flops / task.best_seconds() / 1e9),
                    " GFLOP/s)");
  return s;
}

std::string Summary(const tlm::v1::Task& task) {
  std::string s = absl::StrCat("task ", task.id(), " ", StateName(task.state()), ": ",
                               task.trials_done(), "/", task.num_trials(), " trials, ",
                               task.trials_failed(), " failed, best ", Best(task));
  if (!task.message().empty()) absl::StrAppend(&s, "; ", task.message());
  return s;
}

bool Ended(const tlm::v1::Task& task) {
  return task.state() != tlm::v1::TASK_STATE_RUNNING &&
         task.state() != tlm::v1::TASK_STATE_UNSPECIFIED;
}

int Watch(Invocation& inv, Client& client, int64_t task_id) {
  tlm::v1::Task last;
  const bool tty = inv.terminal->out_is_tty;
  absl::Status status = client.WatchTask(task_id, [&](const tlm::v1::TaskEvent& event) {
    last = event.task();
    if (tty) {
      inv.out() << "\r" << ProgressLine(last) << "\x1b[K" << std::flush;
    } else if (event.has_trial()) {
      const tlm::v1::MeasureResult& r = event.trial().result();
      inv.out() << "task " << task_id << ": " << last.trials_done() << "/" << last.num_trials()
                << " "
                << (r.error_kind() == tlm::v1::ERROR_KIND_NONE
                        ? FormatSeconds(r.median_seconds())
                        : absl::StrCat(tlm::v1::ErrorKind_Name(r.error_kind()), " (",
                                       r.error_message(), ")"))
                << ", best " << Best(last) << "\n";
    }
    return true;
  });
  if (tty) inv.out() << "\n";
  if (!status.ok()) return Report(inv, status);
  inv.out() << Summary(last) << "\n";
  return last.state() == tlm::v1::TASK_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

int ParseTaskId(Invocation& inv, int64_t* task_id) {
  int code = kExitOk;
  if (!ParseNumber(inv, "TASK_ID", inv.args[0], task_id, &code)) return code;
  if (*task_id < 1) {
    return UsageError(*inv.terminal, absl::StrCat("TASK_ID must be positive, got ", *task_id),
                      inv.command->name);
  }
  return kExitOk;
}

int RunSubmit(Invocation& inv) {
  absl::StatusOr<tlm::v1::Workload> workload = ParseWorkloadSpec(inv.args, inv.get("epilogue"));
  if (!workload.ok()) {
    return UsageError(*inv.terminal, std::string(workload.status().message()), "submit");
  }
  tlm::v1::SubmitTaskRequest request;
  *request.mutable_workload() = *workload;
  request.mutable_target()->set_kind(inv.get("target", "cpu"));
  request.mutable_target()->set_device(inv.get("device"));
  request.set_sampler(inv.get("sampler"));
  request.set_name(inv.get("name"));
  int code = kExitOk;
  int64_t trials = 32;
  if (inv.has("trials") && !ParseNumber(inv, "--trials", inv.get("trials"), &trials, &code)) {
    return code;
  }
  request.set_num_trials(static_cast<int32_t>(std::clamp<int64_t>(trials, -1, INT32_MAX)));
  int64_t seed = 0;
  if (inv.has("seed") && !ParseNumber(inv, "--seed", inv.get("seed"), &seed, &code)) return code;
  request.set_seed(static_cast<uint64_t>(seed));
  int64_t repeat = 0;
  if (inv.has("repeat") && !ParseNumber(inv, "--repeat", inv.get("repeat"), &repeat, &code)) {
    return code;
  }
  request.mutable_measure()->set_repeat(
      static_cast<int32_t>(std::clamp<int64_t>(repeat, -1, INT32_MAX)));
  double min_repeat_ms = 0;
  if (inv.has("min-repeat-ms") &&
      !ParseDouble(inv, "--min-repeat-ms", inv.get("min-repeat-ms"), &min_repeat_ms, &code)) {
    return code;
  }
  request.mutable_measure()->set_min_repeat_ms(min_repeat_ms);

  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::Task> task = (*client)->SubmitTask(request);
  if (!task.ok()) return Report(inv, task.status());
  if (!inv.has("watch")) {
    inv.out() << task->id() << "\n";
    return kExitOk;
  }
  inv.out() << "task " << task->id() << ": " << WorkloadLabel(task->workload()) << " on "
            << task->target().kind() << ", " << task->num_trials() << " trials\n";
  return Watch(inv, **client, task->id());
}

int RunWatch(Invocation& inv) {
  int64_t task_id = 0;
  if (int code = ParseTaskId(inv, &task_id); code != kExitOk) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  return Watch(inv, **client, task_id);
}

int RunBest(Invocation& inv) {
  int64_t task_id = 0;
  if (int code = ParseTaskId(inv, &task_id); code != kExitOk) return code;
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
  out << "task      " << task_id << ": " << WorkloadLabel(task->workload()) << " on "
      << task->target().kind() << " (" << StateName(task->state()) << ", " << task->trials_done()
      << "/" << task->num_trials() << " trials)\n";
  out << "latency   " << FormatSeconds(r.median_seconds()) << " median of "
      << r.repeat_seconds_size() << " repeats [" << absl::StrJoin(repeats, ", ") << "], "
      << r.number() << " calls each\n";
  const double flops = WorkloadFlops(task->workload());
  if (flops > 0 && r.median_seconds() > 0) {
    out << absl::StrFormat("speed     %.2f GFLOP/s\n", flops / r.median_seconds() / 1e9);
  }
  out << "checked   max abs error " << absl::StrFormat("%.3g", r.max_abs_error()) << "\n";
  out << "worker    " << trial.worker_id() << "\n";
  out << "program   " << trial.program().text() << "\n";
  out << "hash      " << trial.program().hash() << "\n";
  if (inv.has("source")) out << "source\n" << r.source();
  return kExitOk;
}

int RunList(Invocation& inv) {
  int code = kExitOk;
  int64_t limit = 50;
  if (inv.has("limit") && !ParseNumber(inv, "--limit", inv.get("limit"), &limit, &code)) {
    return code;
  }
  std::vector<tlm::v1::TaskState> states;
  if (inv.has("state")) {
    const std::string wanted = absl::AsciiStrToUpper("TASK_STATE_" + inv.get("state"));
    tlm::v1::TaskState state;
    if (!tlm::v1::TaskState_Parse(wanted, &state) || state == tlm::v1::TASK_STATE_UNSPECIFIED) {
      return UsageError(*inv.terminal,
                        absl::StrCat("--state: unknown state \"", inv.get("state"),
                                     "\" (running, succeeded, failed, cancelled)"),
                        "list");
    }
    states.push_back(state);
  }
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks =
      (*client)->ListTasks(static_cast<int>(std::clamp<int64_t>(limit, 0, 1000)), states);
  if (!tasks.ok()) return Report(inv, tasks.status());
  inv.out() << absl::StrFormat("%-6s %-12s %-32s %-6s %-10s %-11s %-6s %s\n", "ID", "NAME",
                               "WORKLOAD", "TARGET", "STATE", "DONE", "FAILED", "BEST");
  for (const tlm::v1::Task& t : *tasks) {
    inv.out() << absl::StrFormat(
        "%-6d %-12s %-32s %-6s %-10s %-11s %-6d %s\n", t.id(), t.name().empty() ? "-" : t.name(),
        WorkloadLabel(t.workload()), t.target().kind(), StateName(t.state()),
        absl::StrCat(t.trials_done(), "/", t.num_trials()), t.trials_failed(), Best(t));
  }
  return kExitOk;
}

int RunCancel(Invocation& inv) {
  int64_t task_id = 0;
  if (int code = ParseTaskId(inv, &task_id); code != kExitOk) return code;
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::Task> task = (*client)->CancelTask(task_id);
  if (!task.ok()) return Report(inv, task.status());
  inv.out() << Summary(*task) << "\n";
  return kExitOk;
}

int RunStatus(Invocation& inv) {
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<tlm::v1::ServerStatus> s = (*client)->GetStatus();
  if (!s.ok()) return Report(inv, s.status());
  const int64_t uptime_s = (absl::ToUnixMillis(absl::Now()) - s->started_unix_ms()) / 1000;
  std::ostream& out = inv.out();
  out << "server        " << inv.endpoint.server << " (tlmd " << s->version() << ", up " << uptime_s
      << " s)\n";
  out << "dataset       " << s->database_path() << " (schema v" << s->schema_version() << ")\n";
  out << "tasks         " << s->num_tasks() << "\n";
  out << "measurements  " << s->num_measurements() << "\n";
  out << "workers       " << s->num_workers() << "\n";
  for (const tlm::v1::QueueStatus& q : s->queues()) {
    out << "queue "
        << absl::StrFormat("%-7s %d queued, %d with workers\n", q.target_kind(), q.queued(),
                           q.leased());
  }
  return kExitOk;
}

int RunWorkers(Invocation& inv) {
  absl::StatusOr<std::unique_ptr<Client>> client = Dial(inv);
  if (!client.ok()) return Report(inv, client.status());
  absl::StatusOr<std::vector<tlm::v1::WorkerInfo>> workers = (*client)->ListWorkers();
  if (!workers.ok()) return Report(inv, workers.status());
  inv.out() << absl::StrFormat("%-6s %-24s %-6s %-9s %-8s %-9s %s\n", "ID", "NAME", "TARGET",
                               "BACKEND", "RESULTS", "IN-FLIGHT", "DEVICE");
  for (const tlm::v1::WorkerInfo& w : *workers) {
    inv.out() << absl::StrFormat("%-6s %-24s %-6s %-9s %-8d %-9d %s\n", w.worker_id(), w.name(),
                                 w.capabilities().target().kind(), w.capabilities().backend(),
                                 w.results(), w.in_flight(), w.capabilities().device_name());
  }
  return kExitOk;
}

int RunExport(Invocation& inv) {
  std::vector<int64_t> ids;
  for (const std::string& arg : inv.args) {
    int64_t id = 0;
    int code = kExitOk;
    if (!ParseNumber(inv, "TASK_ID", arg, &id, &code)) return code;
    ids.push_back(id);
  }
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
  std::istream& in = path == "-" ? std::cin : file;
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
       "Submit a tuning task, e.g. 'submit dense M=128 N=768 K=768 --epilogue=bias,relu'. "
       "Prints the new task id alone on a line (or watches it with --watch).",
       {{"epilogue", true, "fused elementwise ops after the operator, e.g. bias,relu"},
        {"target", true, "target kind (default cpu)"},
        {"device", true, "only workers reporting this device"},
        {"trials", true, "programs to measure (default 32)"},
        {"sampler", true, "how programs are chosen (default random)"},
        {"seed", true, "sampler seed (default: from the clock)"},
        {"name", true, "label shown by 'tlmctl list'"},
        {"repeat", true, "timed repeats per program (worker default 3)"},
        {"min-repeat-ms", true, "minimum duration of one repeat (worker default 10)"},
        {"watch", false, "follow the task until it ends"}},
       1,
       64,
       RunSubmit},
      {"watch",
       "TASK_ID",
       "Follow a task until it ends: a progress bar on a terminal, one line per trial "
       "otherwise. Exits 0 if the task succeeded, 1 otherwise.",
       {},
       1,
       1,
       RunWatch},
      {"best",
       "TASK_ID",
       "Show the fastest program measured for a task.",
       {{"source", false, "also print the code the worker ran"}},
       1,
       1,
       RunBest},
      {"list",
       "",
       "List tasks, newest first.",
       {{"limit", true, "at most this many (default 50)"},
        {"state", true, "only tasks in this state: running, succeeded, failed, cancelled"}},
       0,
       0,
       RunList},
      {"cancel",
       "TASK_ID",
       "Cancel a task; results already being measured are still stored.",
       {},
       1,
       1,
       RunCancel},
      {"export",
       "[TASK_ID...]",
       "Write the measured programs of the given tasks (all tasks when none are given) to "
       "stdout as JSON lines, one self-contained record per line.",
       {},
       0,
       1000,
       RunExport},
      {"import",
       "FILE",
       "Store the records of a JSON-lines FILE ('-' for stdin) written by 'tlmctl export'. "
       "One bad record rejects the whole file and nothing is stored.",
       {},
       1,
       1,
       RunImport},
      {"status", "", "Show the server, its dataset and its queues.", {}, 0, 0, RunStatus},
      {"workers", "", "List the connected workers.", {}, 0, 0, RunWorkers},
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
      << "Usage: tlmctl [--server=HOST:PORT] [--tls_ca=PEM] [--token_file=FILE] COMMAND [ARGS] "
         "[FLAGS]\n\nCommands:\n";
  for (const Command& c : Commands()) out << absl::StrFormat("  %-8s %s\n", c.name, c.args);
  out << "\n--server defaults to $TLMD_SERVER, else 127.0.0.1:50051. With --tls_ca (or\n"
      << "$TLMD_TLS_CA) tlmctl speaks TLS and checks the server against that CA; --token_file\n"
      << "(or $TLMD_TOKEN_FILE) sends the server's bearer token.\n"
      << "'tlmctl COMMAND --help' describes a command.\n\n"
      << "Exit codes: 0 success; 1 the server reported an error or the task did not succeed;\n"
      << "2 bad usage; 3 server unreachable.\n";
}

void PrintCommandUsage(const Command& c, std::ostream& out) {
  out << "Usage: tlmctl [--server=HOST:PORT] " << c.name << (*c.args ? " " : "") << c.args
      << (c.flags.empty() ? "" : " [FLAGS]") << "\n\n"
      << c.summary << "\n";
  if (!c.flags.empty()) {
    out << "\nFlags:\n";
    for (const FlagSpec& f : c.flags) {
      out << absl::StrFormat("  --%-16s %s\n", absl::StrCat(f.name, f.takes_value ? "=V" : ""),
                             f.help);
    }
  }
  out << "\nExit codes: 0 success; 1 server error or task not succeeded; 2 bad usage; "
         "3 server unreachable.\n";
}

}  // namespace

absl::StatusOr<tlm::v1::Workload> ParseWorkloadSpec(const std::vector<std::string>& words,
                                                    const std::string& epilogue) {
  if (words.empty()) return absl::InvalidArgumentError("missing OP (e.g. dense)");
  tlm::v1::Workload workload;
  workload.set_op(words[0]);
  if (words[0].empty() || words[0].find('=') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", words[0], "\" is not an operator name (e.g. dense)"));
  }
  for (size_t i = 1; i < words.size(); ++i) {
    std::vector<std::string> kv = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
    int64_t value = 0;
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", words[i], "\" is not NAME=INT (e.g. M=128)"));
    }
    if (!absl::SimpleAtoi(kv[1], &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", words[i], "\": ", kv[1], " is not an integer"));
    }
    tlm::v1::WorkloadParam* p = workload.add_params();
    p->set_name(kv[0]);
    p->set_value(value);
  }
  if (!epilogue.empty() && epilogue != "none") {
    for (absl::string_view e : absl::StrSplit(epilogue, ',')) {
      if (e.empty()) return absl::InvalidArgumentError("--epilogue has an empty entry");
      workload.add_epilogue(std::string(e));
    }
  }
  return workload;
}

std::string FormatSeconds(double seconds) {
  if (seconds <= 0) return "-";
  if (seconds < 1e-3) return absl::StrFormat("%.1f us", seconds * 1e6);
  if (seconds < 1) return absl::StrFormat("%.3f ms", seconds * 1e3);
  return absl::StrFormat("%.3f s", seconds);
}

double WorkloadFlops(const tlm::v1::Workload& workload) {
  if (workload.op() != "dense") return 0;
  double flops = 2;
  int found = 0;
  for (const tlm::v1::WorkloadParam& p : workload.params()) {
    if (p.name() == "M" || p.name() == "N" || p.name() == "K") {
      flops *= static_cast<double>(p.value());
      ++found;
    }
  }
  return found == 3 ? flops : 0;
}

std::string WorkloadLabel(const tlm::v1::Workload& workload) {
  std::string label = workload.op();
  std::vector<std::string> values;
  for (const tlm::v1::WorkloadParam& p : workload.params())
    values.push_back(absl::StrCat(p.value()));
  if (!values.empty()) absl::StrAppend(&label, " ", absl::StrJoin(values, "x"));
  for (const std::string& e : workload.epilogue()) absl::StrAppend(&label, "+", e);
  return label;
}

std::string ProgressLine(const tlm::v1::Task& task) {
  constexpr int kWidth = 30;
  const int total = std::max(1, task.num_trials());
  const int filled = std::min(kWidth, task.trials_done() * kWidth / total);
  return absl::StrCat("[", std::string(filled, '#'), std::string(kWidth - filled, '-'), "] ",
                      task.trials_done(), "/", task.num_trials(), "  failed ", task.trials_failed(),
                      "  best ", Best(task));
}

int RunTlmctl(const std::vector<std::string>& args, Terminal& terminal, const Endpoint& defaults) {
  Invocation inv;
  inv.terminal = &terminal;
  inv.endpoint = defaults;
  // A connection flag at args[i] ("--name=value" or "--name value"): stores it
  // and advances i. Returns false when args[i] is not one; sets *error when
  // it is one without a value.
  auto take_connection_flag = [&](size_t& i, std::string* error) {
    const std::string& a = args[i];
    if (!absl::StartsWith(a, "--")) return false;
    const size_t eq = a.find('=');
    const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string* target = ConnectionFlag(inv.endpoint, name);
    if (target == nullptr) return false;
    if (eq != std::string::npos) {
      *target = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      *target = args[++i];
    } else {
      *error = absl::StrCat("--", name, " needs a value");
    }
    return true;
  };
  size_t i = 0;
  for (; i < args.size() && absl::StartsWith(args[i], "-"); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      PrintTopUsage(terminal.out);
      return kExitOk;
    }
    std::string error;
    if (!take_connection_flag(i, &error)) {
      return UsageError(terminal, absl::StrCat("unknown flag ", args[i]), "");
    }
    if (!error.empty()) return UsageError(terminal, error, "");
  }
  if (i == args.size()) {
    PrintTopUsage(terminal.err);
    return kExitUsage;
  }
  std::string name = args[i++];
  if (name == "help") {
    if (i == args.size()) {
      PrintTopUsage(terminal.out);
      return kExitOk;
    }
    const Command* c = FindCommand(args[i]);
    if (c == nullptr) return UsageError(terminal, absl::StrCat("unknown command ", args[i]), "");
    PrintCommandUsage(*c, terminal.out);
    return kExitOk;
  }
  inv.command = FindCommand(name);
  if (inv.command == nullptr) {
    return UsageError(terminal, absl::StrCat("unknown command \"", name, "\""), "");
  }
  const Command& command = *inv.command;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      PrintCommandUsage(command, terminal.out);
      return kExitOk;
    }
    if (!absl::StartsWith(a, "--")) {
      inv.args.push_back(a);
      continue;
    }
    std::string error;
    if (take_connection_flag(i, &error)) {
      if (!error.empty()) return UsageError(terminal, error, name);
      continue;
    }
    const size_t eq = a.find('=');
    const std::string flag = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    auto spec = std::find_if(command.flags.begin(), command.flags.end(),
                             [&](const FlagSpec& f) { return flag == f.name; });
    if (spec == command.flags.end()) {
      return UsageError(terminal, absl::StrCat("unknown flag --", flag, " for ", name), name);
    }
    if (!spec->takes_value) {
      if (eq != std::string::npos) {
        return UsageError(terminal, absl::StrCat("--", flag, " takes no value"), name);
      }
      inv.flags[flag] = "";
    } else if (eq != std::string::npos) {
      inv.flags[flag] = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      inv.flags[flag] = args[++i];
    } else {
      return UsageError(terminal, absl::StrCat("--", flag, " needs a value"), name);
    }
  }
  if (inv.args.size() < command.min_args) {
    return UsageError(terminal, absl::StrCat(name, ": missing ", command.args), name);
  }
  if (inv.args.size() > command.max_args) {
    return UsageError(
        terminal, absl::StrCat(name, ": unexpected argument \"", inv.args[command.max_args], "\""),
        name);
  }
  return command.run(inv);
}

}  // namespace tlm::client

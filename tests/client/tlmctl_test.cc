// tlmctl's command line, formatting and error paths (no server needed); the
// commands against a real tlmd are covered by tests/integration.
#include "client/tlmctl.h"

#include <catch2/catch.hpp>
#include <sstream>

namespace tlm::client {
namespace {

struct Run {
  int code;
  std::string out;
  std::string err;
};

Run Tlmctl(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  Terminal terminal{out, err, false};
  Endpoint defaults;
  defaults.server = "127.0.0.1:1";
  const int code = RunTlmctl(args, terminal, defaults);
  return {code, out.str(), err.str()};
}

TEST_CASE("workload specs parse into workloads") {
  absl::StatusOr<tlm::v1::Workload> w =
      ParseWorkloadSpec({"dense", "M=128", "N=768", "K=3072"}, "bias,relu");
  REQUIRE(w.ok());
  CHECK(w->op() == "dense");
  REQUIRE(w->params_size() == 3);
  CHECK(w->params(2).name() == "K");
  CHECK(w->params(2).value() == 3072);
  REQUIRE(w->epilogue_size() == 2);
  CHECK(w->epilogue(1) == "relu");
  CHECK(WorkloadLabel(*w) == "dense 128x768x3072+bias+relu");
  CHECK(WorkloadFlops(*w) == 2.0 * 128 * 768 * 3072);

  // Meaning is the server's business: these parse and are sent as they are.
  CHECK(ParseWorkloadSpec({"conv9d", "K=0", "M=-4"}, "").ok());
  CHECK(ParseWorkloadSpec({"dense"}, "none")->epilogue_size() == 0);

  CHECK(std::string(ParseWorkloadSpec({}, "").status().message()) == "missing OP (e.g. dense)");
  CHECK(std::string(ParseWorkloadSpec({"dense", "M"}, "").status().message()) ==
        "\"M\" is not NAME=INT (e.g. M=128)");
  CHECK(std::string(ParseWorkloadSpec({"dense", "M=abc"}, "").status().message()) ==
        "\"M=abc\": abc is not an integer");
  CHECK(std::string(ParseWorkloadSpec({"M=4"}, "").status().message()) ==
        "\"M=4\" is not an operator name (e.g. dense)");
  CHECK_FALSE(ParseWorkloadSpec({"dense", "M=4"}, "bias,,relu").ok());
}

TEST_CASE("latencies and progress are formatted for people") {
  CHECK(FormatSeconds(0) == "-");
  CHECK(FormatSeconds(812e-6) == "812.0 us");
  CHECK(FormatSeconds(1.2345e-3) == "1.234 ms");
  CHECK(FormatSeconds(2.5) == "2.500 s");
  tlm::v1::Task task;
  task.set_num_trials(32);
  task.set_trials_done(16);
  task.set_trials_failed(1);
  task.set_best_seconds(1e-3);
  *task.mutable_workload() = *ParseWorkloadSpec({"dense", "M=100", "N=100", "K=100"}, "");
  CHECK(ProgressLine(task) ==
        "[###############---------------] 16/32  failed 1  best 1.000 ms (2.0 GFLOP/s)");
}

TEST_CASE("help is available everywhere and exits 0") {
  Run top = Tlmctl({"--help"});
  CHECK(top.code == 0);
  CHECK_THAT(top.out, Catch::Contains("Commands:"));
  CHECK_THAT(top.out, Catch::Contains("Exit codes"));
  for (const char* command :
       {"submit", "watch", "best", "list", "cancel", "export", "import", "status", "workers"}) {
    INFO(command);
    Run r = Tlmctl({command, "--help"});
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains(std::string("tlmctl [--server=HOST:PORT] ") + command));
    CHECK(Tlmctl({"help", command}).out == r.out);
  }
  CHECK_THAT(Tlmctl({"submit", "-h"}).out, Catch::Contains("--trials=V"));
  CHECK_THAT(Tlmctl({"best", "--help"}).out, Catch::Contains("--source"));
  CHECK_THAT(Tlmctl({"list", "--help"}).out, Catch::Contains("--state=V"));
}

TEST_CASE("bad usage exits 2 with a message and a hint") {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{}, "Usage:"},
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"--colour"}, "unknown flag --colour"},
      {{"best"}, "best: missing TASK_ID"},
      {{"best", "abc"}, "TASK_ID: \"abc\" is not an integer"},
      {{"best", "0"}, "TASK_ID must be positive"},
      {{"best", "1", "2"}, "unexpected argument \"2\""},
      {{"cancel", "1", "--force"}, "unknown flag --force for cancel"},
      {{"submit"}, "submit: missing OP NAME=INT..."},
      {{"submit", "dense", "M=4", "--trials=many"}, "--trials: \"many\" is not an integer"},
      {{"submit", "dense", "M"}, "\"M\" is not NAME=INT"},
      {{"submit", "dense", "M=4", "--trials"}, "--trials needs a value"},
      {{"submit", "dense", "--watch=yes"}, "--watch takes no value"},
      {{"list", "--state=sleeping"}, "--state: unknown state \"sleeping\""},
      {{"help", "nope"}, "unknown command nope"},
      {{"import"}, "import: missing FILE"},
      {{"export", "x"}, "TASK_ID: \"x\" is not an integer"},
  };
  for (const Case& c : cases) {
    Run r = Tlmctl(c.args);
    INFO(r.err);
    CHECK(r.code == kExitUsage);
    CHECK_THAT(r.err, Catch::Contains(c.message));
    CHECK(r.out.empty());
  }
  CHECK_THAT(Tlmctl({"best", "x"}).err, Catch::Contains("Run 'tlmctl best --help'"));
}

TEST_CASE("an unreachable server exits 3 naming the address") {
  Run r = Tlmctl({"--server=127.0.0.1:1", "list"});
  CHECK(r.code == kExitUnreachable);
  CHECK_THAT(r.err, Catch::Contains("cannot reach tlmd at 127.0.0.1:1"));
  // --server after the command works too.
  Run after = Tlmctl({"status", "--server", "127.0.0.1:1"});
  CHECK(after.code == kExitUnreachable);
}

}  // namespace
}  // namespace tlm::client

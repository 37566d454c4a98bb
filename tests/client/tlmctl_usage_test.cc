// tlmctl's command line: help, usage errors and defaults. No server is
// contacted; a fake stands by to prove it.
#include <catch2/catch.hpp>

#include "client/tlmctl_lib.h"
#include "tests/client/fake_tlmd.h"
#include "tests/client/tlmctl_runner.h"

namespace tlm::client {
namespace {

using tlm::testing::TlmctlRun;

TlmctlRun Tlmctl(const std::vector<std::string>& args, const std::string& server) {
  tlm::testing::TlmctlOptions options;
  options.server = server;
  return tlm::testing::RunTlmctlForTest(args, options);
}

const std::vector<std::string> kCommands = {"submit", "tune",   "session", "watch",
                                            "best",   "list",   "cancel",  "export",
                                            "import", "status", "workers"};

TEST_CASE("top-level help lists the commands, the global flags and the exit codes") {
  tlm::testing::FakeTlmd fake;
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"-h"}, {"help"}, {"--server=x:1", "--help"}}) {
    TlmctlRun r = Tlmctl(args, fake.address());
    INFO(args[0]);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    for (const std::string& command : kCommands) CHECK_THAT(r.out, Catch::Contains(command));
    CHECK_THAT(r.out, Catch::Contains("--server=HOST:PORT"));
    CHECK_THAT(r.out, Catch::Contains("$TLMD_SERVER, else 127.0.0.1:50051"));
    CHECK_THAT(r.out,
               Catch::Contains("Exit codes: 0 success; 1 the server answered with an error"));
    CHECK_THAT(r.out, Catch::Contains("2 bad usage; 3 the server is not reachable"));
  }
  CHECK(fake.Requests().methods.empty());
}

TEST_CASE("every command has help that names its flags and exits 0") {
  tlm::testing::FakeTlmd fake;
  const std::map<std::string, std::vector<std::string>> flags = {
      {"submit",
       {"--epilogue=LIST", "--target=KIND", "--device=NAME", "--trials=N", "--sampler=NAME",
        "--seed=N", "--name=LABEL", "--repeat=N", "--min-repeat-ms=X", "--watch", "default 32",
        "alone on one line"}},
      {"tune",
       {"--network=NAME", "--budget=N", "--round=K", "--tasks-per-round=N", "--no-baseline",
        "'tlmctl session ID' follows it"}},
      {"watch", {"Exits 0 if the task succeeded, 1 if it failed or was cancelled"}},
      {"best", {"--source"}},
      {"session", {"--cancel", "Exits 0 if the session succeeded"}},
      {"list", {"--limit=N", "--state=STATE", "running, succeeded, failed, cancelled"}},
      {"cancel", {}},
      {"export", {"JSON lines"}},
      {"import", {"'-' for stdin"}},
      {"status", {}},
      {"workers", {}},
  };
  for (const std::string& command : kCommands) {
    INFO(command);
    TlmctlRun r = Tlmctl({command, "--help"}, fake.address());
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK_THAT(r.out, Catch::StartsWith("Usage: tlmctl [GLOBAL FLAGS] " + command));
    CHECK_THAT(r.out, Catch::Contains("--server=HOST:PORT"));
    CHECK_THAT(r.out, Catch::Contains("Exit codes:"));
    for (const std::string& flag : flags.at(command)) CHECK_THAT(r.out, Catch::Contains(flag));
    CHECK(Tlmctl({command, "-h"}, fake.address()).out == r.out);
    CHECK(Tlmctl({"help", command}, fake.address()).out == r.out);
    // Help wins over anything else on the line.
    TlmctlRun noisy = Tlmctl({command, "--no-such-flag", "x", "--help"}, fake.address());
    CHECK(noisy.code == 0);
    CHECK(noisy.out == r.out);
  }
  CHECK_THAT(Tlmctl({"best", "--help"}, fake.address()).out,
             !Catch::Contains("--trials"));  // only the command's own flags
  CHECK(fake.Requests().methods.empty());
}

TEST_CASE("bad usage exits 2 with a message and a hint, without calling the server") {
  tlm::testing::FakeTlmd fake;
  struct Case {
    std::vector<std::string> args;
    std::string message;
    std::string hint;
  };
  const std::vector<Case> cases = {
      {{}, "tlmctl: missing COMMAND", ""},
      {{"frobnicate"}, "tlmctl: unknown command \"frobnicate\"", "tlmctl --help"},
      {{"--colour", "list"}, "tlmctl: unknown flag --colour", "tlmctl --help"},
      {{"--server"}, "tlmctl: --server needs a value", "tlmctl --help"},
      {{"--server=", "list"}, "tlmctl: --server needs a HOST:PORT", "tlmctl --help"},
      {{"help", "nope"}, "tlmctl: unknown command \"nope\"", "tlmctl --help"},
      {{"help", "list", "more"}, "help: unexpected argument \"more\"", "tlmctl --help"},
      {{"watch"}, "tlmctl: watch: missing TASK_ID", "tlmctl watch --help"},
      {{"best"}, "tlmctl: best: missing TASK_ID", "tlmctl best --help"},
      {{"cancel"}, "tlmctl: cancel: missing TASK_ID", "tlmctl cancel --help"},
      {{"best", "abc"}, "tlmctl: TASK_ID: \"abc\" is not an integer", "tlmctl best --help"},
      {{"watch", "0"}, "tlmctl: TASK_ID must be positive, got 0", "tlmctl watch --help"},
      {{"cancel", "-3"}, "tlmctl: TASK_ID must be positive, got -3", "tlmctl cancel --help"},
      {{"session"}, "tlmctl: session: missing SESSION_ID", "tlmctl session --help"},
      {{"session", "s1"}, "tlmctl: SESSION_ID: \"s1\" is not an integer",
       "tlmctl session --help"},
      {{"tune", "--network=bert_tiny", "--round=0"},
       "tlmctl: --budget must not be negative; --round, --trials and --tasks-per-round must be "
       "positive",
       "tlmctl tune --help"},
      {{"best", "1", "2"}, "tlmctl: best: unexpected argument \"2\"", "tlmctl best --help"},
      {{"best", "1", "--source=yes"}, "tlmctl: --source takes no value", "tlmctl best --help"},
      {{"cancel", "1", "--force"}, "tlmctl: unknown flag --force for cancel", "cancel --help"},
      {{"cancel", "1", "-f"}, "tlmctl: unknown flag -f for cancel", "cancel --help"},
      {{"status", "now"}, "tlmctl: status: unexpected argument \"now\"", "status --help"},
      {{"workers", "--all"}, "tlmctl: unknown flag --all for workers", "workers --help"},
      {{"submit"}, "tlmctl: submit: missing OP NAME=INT...", "tlmctl submit --help"},
      {{"submit", "--trials=4"}, "tlmctl: submit: missing OP NAME=INT...", "submit --help"},
      {{"submit", "dense", "M"}, "tlmctl: \"M\": expected NAME=INT", "submit --help"},
      {{"submit", "dense", "M=abc"}, "tlmctl: \"M=abc\": \"abc\" is not an integer", ""},
      {{"submit", "dense", "M=4", "--epilogue=bias,"}, "--epilogue=bias,: empty entry", ""},
      {{"submit", "dense", "M=4", "--trials=many"},
       "tlmctl: --trials: \"many\" is not an integer",
       "submit --help"},
      {{"submit", "dense", "M=4", "--trials", "1e3"}, "--trials: \"1e3\" is not an integer", ""},
      {{"submit", "dense", "M=4", "--trials=99999999999"},
       "--trials: 99999999999 is out of range",
       ""},
      {{"submit", "dense", "M=4", "--seed=-1"}, "--seed: \"-1\" is not a non-negative integer", ""},
      {{"submit", "dense", "M=4", "--repeat=x"}, "--repeat: \"x\" is not an integer", ""},
      {{"submit", "dense", "M=4", "--min-repeat-ms=fast"},
       "--min-repeat-ms: \"fast\" is not a "
       "number",
       ""},
      {{"submit", "dense", "M=4", "--trials"}, "tlmctl: --trials needs a value", "submit --help"},
      {{"submit", "dense", "--watch=yes"}, "tlmctl: --watch takes no value", "submit --help"},
      {{"submit", "dense", "--source"}, "tlmctl: unknown flag --source for submit", ""},
      {{"list", "--limit=ten"}, "tlmctl: --limit: \"ten\" is not an integer", "list --help"},
      {{"list", "--state=sleeping"}, "tlmctl: --state: unknown state \"sleeping\"", "list --help"},
      {{"list", "--state=running,"}, "tlmctl: --state: unknown state \"\"", "list --help"},
      {{"list", "extra"}, "tlmctl: list: unexpected argument \"extra\"", "list --help"},
      {{"import"}, "tlmctl: import: missing FILE", "import --help"},
      {{"export", "x"}, "tlmctl: TASK_ID: \"x\" is not an integer", "export --help"},
  };
  for (const Case& c : cases) {
    TlmctlRun r = Tlmctl(c.args, fake.address());
    INFO("args: " << ::Catch::Detail::stringify(c.args) << "\nerr: " << r.err);
    CHECK(r.code == kExitUsage);
    CHECK_THAT(r.err, Catch::Contains(c.message));
    if (!c.hint.empty()) CHECK_THAT(r.err, Catch::Contains(c.hint));
    CHECK(r.out.empty());
  }
  CHECK(fake.Requests().methods.empty());
}

TEST_CASE("without a command the usage goes to stderr") {
  TlmctlRun r = Tlmctl({}, "127.0.0.1:1");
  CHECK(r.code == kExitUsage);
  CHECK_THAT(r.err, Catch::Contains("Usage: tlmctl"));
  CHECK(r.out.empty());
}

TEST_CASE("defaults come from the environment") {
  std::map<std::string, std::string> env;
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  Endpoint plain = EndpointFromEnvironment(getenv);
  CHECK(plain.server == "127.0.0.1:50051");
  CHECK(plain.security.tls_ca_file.empty());
  CHECK(plain.security.token_file.empty());
  env["TLMD_SERVER"] = "tuner.example:7000";
  env["TLMD_TLS_CA"] = "/etc/ca.pem";
  env["TLMD_TOKEN_FILE"] = "";
  Endpoint set = EndpointFromEnvironment(getenv);
  CHECK(set.server == "tuner.example:7000");
  CHECK(set.security.tls_ca_file == "/etc/ca.pem");
  CHECK(set.security.token_file.empty());
}

}  // namespace
}  // namespace tlm::client

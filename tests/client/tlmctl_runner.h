// Runs tlmctl's command logic in-process with captured streams.
#ifndef TLMD_TESTS_CLIENT_TLMCTL_RUNNER_H_
#define TLMD_TESTS_CLIENT_TLMCTL_RUNNER_H_

#include <sstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/tlmctl_lib.h"

namespace tlm::testing {

struct TlmctlRun {
  int code = -1;
  std::string out;
  std::string err;
};

struct TlmctlOptions {
  // The default server, as if from TLMD_SERVER.
  std::string server;
  bool tty = false;
  std::string stdin_text;
  absl::Time now = absl::FromUnixSeconds(1700000000);
  // Generous: a reachable server connects at once, so only unreachable
  // servers wait this long.
  absl::Duration connect_timeout = absl::Seconds(10);
};

inline TlmctlRun RunTlmctlForTest(const std::vector<std::string>& args,
                                  const TlmctlOptions& options) {
  std::istringstream in(options.stdin_text);
  std::ostringstream out;
  std::ostringstream err;
  tlm::client::Console console{in, out, err, options.tty};
  const absl::Time now = options.now;
  console.now = [now] { return now; };
  console.connect_timeout = options.connect_timeout;
  tlm::client::Endpoint defaults;
  defaults.server = options.server;
  TlmctlRun run;
  run.code = tlm::client::RunTlmctl(args, defaults, console);
  run.out = out.str();
  run.err = err.str();
  return run;
}

}  // namespace tlm::testing

#endif  // TLMD_TESTS_CLIENT_TLMCTL_RUNNER_H_

// tlmctl's command logic, separate from main() so tests can drive it with
// their own streams, server address and clock.
//
// Command line: tlmctl [GLOBAL FLAGS] COMMAND [ARGS] [FLAGS]. The global
// flags (--server, --tls_ca, --token_file) are accepted before and after the
// command; every command has --help. Results go to `out`, errors to `err` as
// "tlmctl: <message>".
#ifndef TLMD_CLIENT_TLMCTL_LIB_H_
#define TLMD_CLIENT_TLMCTL_LIB_H_

#include <functional>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/credentials.h"

namespace tlm::client {

// Exit codes of tlmctl.
inline constexpr int kExitOk = 0;
// The server answered with an error, or the watched task did not succeed.
inline constexpr int kExitFailed = 1;
// Bad command line: unknown command or flag, missing argument, bad number.
inline constexpr int kExitUsage = 2;
// The server could not be reached, or did not answer in time.
inline constexpr int kExitUnreachable = 3;

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";

// Where tlmctl connects and how.
struct Endpoint {
  std::string server = kDefaultServer;
  ClientSecurity security;
};

// The defaults of --server, --tls_ca and --token_file from the environment
// variables TLMD_SERVER, TLMD_TLS_CA and TLMD_TOKEN_FILE; `getenv` returns
// nullptr for an unset variable. Unset or empty variables keep the built-in
// defaults.
Endpoint EndpointFromEnvironment(const std::function<const char*(const char*)>& getenv);

// What tlmctl reads from and writes to, and how it waits.
struct Console {
  std::istream& in;  // read by 'import -'
  std::ostream& out;
  std::ostream& err;
  // Whether `out` is a terminal: watch then redraws one progress line.
  bool out_is_tty = false;
  // Used for uptimes and ages.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // How long to wait for the server's connection before exiting 3.
  absl::Duration connect_timeout = absl::Seconds(5);
};

// Runs tlmctl with `args` (without the program name) and returns its exit
// code. `defaults` applies where --server, --tls_ca and --token_file are not
// given. Blocks for as long as the command does (watch: until the task ends).
int RunTlmctl(const std::vector<std::string>& args, const Endpoint& defaults, Console& console);

}  // namespace tlm::client

#endif  // TLMD_CLIENT_TLMCTL_LIB_H_

// tlmctl's command logic, separate from main() so tests can drive it.
#ifndef TLMD_CLIENT_TLMCTL_H_
#define TLMD_CLIENT_TLMCTL_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/credentials.h"
#include "tlm/v1/program.pb.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::client {

// Exit codes of tlmctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // the server reported an error, or the task failed
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitUnreachable = 3;  // no tlmd at the address

struct Terminal {
  std::ostream& out;
  std::ostream& err;
  bool out_is_tty = false;
};

// Where tlmctl connects and how.
struct Endpoint {
  std::string server = "127.0.0.1:50051";
  ClientSecurity security;
};

// Runs tlmctl with `args` (without the program name). `defaults` applies
// where --server, --tls_ca and --token_file are not given.
int RunTlmctl(const std::vector<std::string>& args, Terminal& terminal, const Endpoint& defaults);

// "OP NAME=INT..." plus an --epilogue list, as a Workload. Only the syntax is
// checked here; the server checks the meaning and names what is wrong.
absl::StatusOr<tlm::v1::Workload> ParseWorkloadSpec(const std::vector<std::string>& words,
                                                    const std::string& epilogue);

// "812 us", "1.23 ms", "2.05 s"; "-" for zero.
std::string FormatSeconds(double seconds);
// Floating-point operations of one run of the workload; 0 when unknown.
double WorkloadFlops(const tlm::v1::Workload& workload);
// "dense 64x48x32+bias+relu" style summary.
std::string WorkloadLabel(const tlm::v1::Workload& workload);
// One line of progress, e.g. "[#####-----] 16/32  failed 0  best 1.23 ms  12.3 GFLOP/s".
std::string ProgressLine(const tlm::v1::Task& task);

}  // namespace tlm::client

#endif  // TLMD_CLIENT_TLMCTL_H_

// Child processes for integration tests: the real tlmd, tlm-worker and
// tlmctl binaries, started from Bazel's runfiles.
#ifndef TLMD_TESTS_INTEGRATION_PROCESS_H_
#define TLMD_TESTS_INTEGRATION_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tlm::testing {

// Path of a binary of this workspace in the test's runfiles, e.g.
// RunfilePath("server/tlmd").
std::string RunfilePath(const std::string& relative);

// A fresh directory under the test's temporary directory.
std::string MakeTempDir(const std::string& name);

// A running child process; killed (SIGKILL) and reaped when destroyed.
class ChildProcess {
 public:
  // Starts argv[0] with stdout and stderr appended to `log_path`.
  // Aborts the test binary's REQUIRE on failure via an empty pid.
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  void Signal(int signal_number);
  // Exit code, or 128+signal when killed by one; nullopt on timeout.
  std::optional<int> Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a command to completion and captures its output.
CommandResult RunCommand(const std::vector<std::string>& argv);

// Waits until `path` exists and holds an integer; returns it, or 0 on timeout.
int WaitForPortFile(const std::string& path, absl::Duration timeout);

// Contents of a file ("" if unreadable).
std::string ReadFile(const std::string& path);

}  // namespace tlm::testing

#endif  // TLMD_TESTS_INTEGRATION_PROCESS_H_

// Measurement in a child process, so that a kernel that crashes, hangs or
// corrupts its process never takes the worker down.
//
// IsolatedBackend forwards each Measure call to a runner child over a socket
// (length-prefixed tlm.v1.RunnerRequest in, tlm.v1.MeasureResult out);
// Prefetch hints travel with the next Measure request, and the child passes
// them to its backend before measuring. The child
// lives across calls, keeping its inputs and device state. When the child dies
// during a call the result is ERROR_KIND_RUNTIME_DEVICE naming the signal or
// exit code; when a call outlives build_timeout_s + run_timeout_s (+ grace)
// the child is killed and the result is ERROR_KIND_RUN_TIMEOUT. When the
// child answers with ERROR_KIND_RUNTIME_DEVICE (e.g. a CUDA error that
// poisons its context) the result is passed on and the child is killed. In
// every case the next call starts a fresh child.
#ifndef TLMD_WORKER_ISOLATED_BACKEND_H_
#define TLMD_WORKER_ISOLATED_BACKEND_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "worker/backend.h"

namespace tlm::worker {

// Serves requests read from `in_fd` with `backend` (prefetch hints first,
// then the measurement, whose result is written to `out_fd`), until `in_fd`
// reaches end of file (OK) or an I/O error.
absl::Status ServeRunner(Backend& backend, int in_fd, int out_fd);

// A running runner child; killed and reaped on destruction.
class RunnerProcess {
 public:
  // Starts argv with one end of a socket pair as its stdin and stdout;
  // stderr is inherited.
  static absl::StatusOr<std::unique_ptr<RunnerProcess>> Start(const std::vector<std::string>& argv);
  ~RunnerProcess();
  RunnerProcess(const RunnerProcess&) = delete;
  RunnerProcess& operator=(const RunnerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Requests are written to, and results read from, this descriptor.
  int fd() const { return fd_; }
  // Kills the child (if running) and returns how it ended, e.g.
  // "killed by signal 11 (Segmentation fault)" or "exited with code 3".
  std::string KillAndDescribe();

 private:
  RunnerProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}

  pid_t pid_;
  int fd_;
  bool reaped_ = false;
};

class IsolatedBackend final : public Backend {
 public:
  // `local` answers name() and Capabilities() in this process; it never
  // measures. `runner_argv` starts a process serving ServeRunner on its
  // stdin/stdout with the same kind of backend.
  IsolatedBackend(std::unique_ptr<Backend> local, std::vector<std::string> runner_argv,
                  absl::Duration grace = absl::Seconds(5));

  std::string name() const override { return local_->name(); }
  tlm::v1::WorkerCapabilities Capabilities() const override { return local_->Capabilities(); }
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions& options) override;
  // Held until the next Measure call, which sends it to the runner first. A
  // runner that dies loses its hints; they cost only a later inline build.
  void Prefetch(const tlm::v1::Program& program, const tlm::v1::MeasureOptions& options) override;

  // Runner children started so far.
  int spawned() const { return spawned_; }

 private:
  const std::unique_ptr<Backend> local_;
  const std::vector<std::string> runner_argv_;
  const absl::Duration grace_;
  std::unique_ptr<RunnerProcess> runner_;
  std::vector<tlm::v1::MeasureJob> prefetch_;  // hints for the next request
  int spawned_ = 0;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_ISOLATED_BACKEND_H_

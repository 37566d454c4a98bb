#include "worker/isolated_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"
#include "tlm/v1/fleet.pb.h"
#include "tlm/v1/runner.pb.h"
#include "worker/timing.h"

extern char** environ;

namespace tlm::worker {
namespace {

// Frames larger than this are refused: a corrupted stream, not a result.
constexpr uint32_t kMaxFrameBytes = 64u << 20;

// Writes to a socket without raising SIGPIPE when the peer is gone; plain
// write() for other descriptors.
bool WriteAll(int fd, const char* data, size_t size) {
  bool socket = true;
  while (size > 0) {
    ssize_t n = socket ? send(fd, data, size, MSG_NOSIGNAL) : write(fd, data, size);
    if (n < 0 && errno == ENOTSOCK) {
      socket = false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `size` bytes, waiting at most until `deadline`.
// nullopt: end of file or error; false: the deadline passed.
std::optional<bool> ReadAll(int fd, char* data, size_t size, absl::Time deadline) {
  while (size > 0) {
    if (deadline != absl::InfiniteFuture()) {
      const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (wait_ms <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(wait_ms, 1000)));
      if (r < 0 && errno != EINTR) return std::nullopt;
      if (r <= 0) continue;
    }
    const ssize_t n = read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool WriteFrame(int fd, const google::protobuf::Message& message) {
  const std::string body = message.SerializeAsString();
  const uint32_t size = static_cast<uint32_t>(body.size());
  const char header[4] = {static_cast<char>(size & 0xff), static_cast<char>((size >> 8) & 0xff),
                          static_cast<char>((size >> 16) & 0xff),
                          static_cast<char>((size >> 24) & 0xff)};
  return WriteAll(fd, header, 4) && WriteAll(fd, body.data(), body.size());
}

enum class ReadOutcome { kOk, kClosed, kTimedOut, kMalformed };

ReadOutcome ReadFrame(int fd, google::protobuf::Message& message, absl::Time deadline) {
  unsigned char header[4];
  std::optional<bool> got = ReadAll(fd, reinterpret_cast<char*>(header), 4, deadline);
  if (!got.has_value()) return ReadOutcome::kClosed;
  if (!*got) return ReadOutcome::kTimedOut;
  const uint32_t size =
      header[0] | (header[1] << 8) | (header[2] << 16) | (static_cast<uint32_t>(header[3]) << 24);
  if (size > kMaxFrameBytes) return ReadOutcome::kMalformed;
  std::string body(size, '\0');
  got = ReadAll(fd, body.data(), size, deadline);
  if (!got.has_value()) return ReadOutcome::kClosed;
  if (!*got) return ReadOutcome::kTimedOut;
  return message.ParseFromString(body) ? ReadOutcome::kOk : ReadOutcome::kMalformed;
}

tlm::v1::MeasureResult Failure(tlm::v1::ErrorKind kind, const std::string& message) {
  tlm::v1::MeasureResult r;
  r.set_error_kind(kind);
  r.set_error_stage("run");
  r.set_error_message(message);
  return r;
}

}  // namespace

absl::Status ServeRunner(Backend& backend, int in_fd, int out_fd) {
  tlm::v1::RunnerRequest request;
  while (true) {
    switch (ReadFrame(in_fd, request, absl::InfiniteFuture())) {
      case ReadOutcome::kOk:
        break;
      case ReadOutcome::kClosed:
        return absl::OkStatus();
      default:
        return absl::DataLossError("malformed request frame");
    }
    for (const tlm::v1::MeasureJob& ahead : request.prefetch()) {
      backend.Prefetch(ahead.program(), ahead.options());
    }
    if (!request.has_measure()) continue;
    const tlm::v1::MeasureResult result =
        backend.Measure(request.measure().program(), request.measure().options());
    if (!WriteFrame(out_fd, result)) return absl::UnavailableError("cannot write the result");
  }
}

absl::StatusOr<std::unique_ptr<RunnerProcess>> RunnerProcess::Start(
    const std::vector<std::string>& argv) {
  // One stream socket both ways: the parent's writes to a dead child fail
  // with EPIPE instead of raising SIGPIPE.
  int ends[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    return absl::InternalError(absl::StrCat("socketpair: ", strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, ends[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, ends[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(ends[1]);
  if (rc != 0) {
    close(ends[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start runner ", argv[0], ": ", strerror(rc)));
  }
  return std::unique_ptr<RunnerProcess>(new RunnerProcess(pid, ends[0]));
}

RunnerProcess::~RunnerProcess() {
  close(fd_);
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string RunnerProcess::KillAndDescribe() {
  int status = 0;
  // A child that is already gone is reaped as it ended; one still running is killed.
  if (waitpid(pid_, &status, WNOHANG) == 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  reaped_ = true;
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return absl::StrCat("exited with code ", WEXITSTATUS(status));
}

IsolatedBackend::IsolatedBackend(std::unique_ptr<Backend> local,
                                 std::vector<std::string> runner_argv, absl::Duration grace)
    : local_(std::move(local)), runner_argv_(std::move(runner_argv)), grace_(grace) {}

void IsolatedBackend::Prefetch(const tlm::v1::Program& program,
                               const tlm::v1::MeasureOptions& options) {
  tlm::v1::MeasureJob& ahead = prefetch_.emplace_back();
  *ahead.mutable_program() = program;
  *ahead.mutable_options() = options;
}

tlm::v1::MeasureResult IsolatedBackend::Measure(const tlm::v1::Program& program,
                                                const tlm::v1::MeasureOptions& raw_options) {
  const tlm::v1::MeasureOptions options = WithDefaults(raw_options);
  tlm::v1::RunnerRequest request;
  *request.mutable_measure()->mutable_program() = program;
  *request.mutable_measure()->mutable_options() = options;
  // Hints go with the request: the runner starts them before measuring.
  for (tlm::v1::MeasureJob& ahead : prefetch_) request.add_prefetch()->Swap(&ahead);
  prefetch_.clear();

  // A child that died since the last call is replaced before the request.
  for (int tries = 0; tries < 2; ++tries) {
    if (runner_ == nullptr) {
      absl::StatusOr<std::unique_ptr<RunnerProcess>> started = RunnerProcess::Start(runner_argv_);
      if (!started.ok()) {
        return Failure(tlm::v1::ERROR_KIND_UNKNOWN, std::string(started.status().message()));
      }
      runner_ = std::move(*started);
      ++spawned_;
      spdlog::debug("runner {} started", runner_->pid());
    }
    if (WriteFrame(runner_->fd(), request)) break;
    spdlog::warn("runner {} is gone ({}); starting another", runner_->pid(),
                 runner_->KillAndDescribe());
    runner_.reset();
    if (tries == 1) return Failure(tlm::v1::ERROR_KIND_UNKNOWN, "cannot reach a runner process");
  }

  const absl::Duration budget =
      absl::Seconds(options.build_timeout_s() + options.run_timeout_s()) + grace_;
  tlm::v1::MeasureResult result;
  const ReadOutcome outcome = ReadFrame(runner_->fd(), result, absl::Now() + budget);
  if (outcome == ReadOutcome::kOk) {
    if (result.error_kind() == tlm::v1::ERROR_KIND_RUNTIME_DEVICE) {
      // The device state of the child may be unusable (a poisoned CUDA
      // context): the next call starts from a fresh child.
      spdlog::warn("runner {} reported a device error; replacing it ({})", runner_->pid(),
                   runner_->KillAndDescribe());
      runner_.reset();
    }
    return result;
  }

  const pid_t pid = runner_->pid();
  const std::string how = runner_->KillAndDescribe();
  runner_.reset();
  if (outcome == ReadOutcome::kTimedOut) {
    spdlog::warn("runner {} exceeded {} on one program; killed", pid, absl::FormatDuration(budget));
    return Failure(tlm::v1::ERROR_KIND_RUN_TIMEOUT,
                   absl::StrCat("no result within ", absl::FormatDuration(budget),
                                " (build + run timeouts + grace); the runner was killed"));
  }
  spdlog::warn("runner {} died measuring a program: {}", pid, how);
  return Failure(
      tlm::v1::ERROR_KIND_RUNTIME_DEVICE,
      absl::StrCat("the kernel's process ", how,
                   outcome == ReadOutcome::kMalformed ? " after a malformed reply" : ""));
}

}  // namespace tlm::worker

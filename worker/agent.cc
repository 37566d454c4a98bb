#include "worker/agent.h"

#include <unistd.h>

#include <deque>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "program/version.h"
#include "spdlog/spdlog.h"

namespace tlm::worker {
namespace {

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown-host";
  return buf;
}

// Jobs handed from the stream reader to the measuring thread.
class JobQueue {
 public:
  void Push(tlm::v1::MeasureJob job) {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
  }
  // Blocks for the next job; nullopt once closed. Appends to `ahead` the
  // jobs queued behind it that no earlier Pop has reported.
  std::optional<tlm::v1::MeasureJob> Pop(std::vector<tlm::v1::MeasureJob>* ahead) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !jobs_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (closed_) return std::nullopt;
    tlm::v1::MeasureJob job = std::move(jobs_.front());
    jobs_.pop_front();
    if (reported_ > 0) --reported_;
    for (size_t i = reported_; i < jobs_.size(); ++i) ahead->push_back(jobs_[i]);
    reported_ = jobs_.size();
    return job;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

 private:
  absl::Mutex mu_;
  std::deque<tlm::v1::MeasureJob> jobs_ ABSL_GUARDED_BY(mu_);
  size_t reported_ ABSL_GUARDED_BY(mu_) = 0;  // jobs at the front already in an `ahead`
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

Agent::Agent(AgentOptions options, Backend* backend)
    : options_(std::move(options)), backend_(backend) {}

tlm::v1::RegisterRequest Agent::Registration() const {
  tlm::v1::RegisterRequest request;
  request.set_name(options_.name.empty() ? Hostname() + ":" + backend_->name() : options_.name);
  tlm::v1::WorkerCapabilities* caps = request.mutable_capabilities();
  *caps = backend_->Capabilities();
  caps->set_max_in_flight(options_.max_in_flight);
  caps->set_hostname(Hostname());
  caps->set_version(kVersion);
  return request;
}

void Agent::Shutdown() {
  shutdown_.Notify();
  absl::MutexLock lock(&mu_);
  if (active_context_ != nullptr) active_context_->TryCancel();
}

absl::Status Agent::Run() {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options_.server_address, options_.credentials);
  std::unique_ptr<tlm::v1::Fleet::Stub> stub = tlm::v1::Fleet::NewStub(channel);
  std::mt19937_64 rng(std::random_device{}());
  absl::Duration backoff = options_.initial_backoff;
  int failures = 0;
  while (!shutdown_.HasBeenNotified()) {
    if (Serve(*stub)) {
      backoff = options_.initial_backoff;
      failures = 0;
    }
    if (shutdown_.HasBeenNotified()) break;
    const absl::Duration wait = backoff * std::uniform_real_distribution<double>(0.8, 1.2)(rng);
    if (failures++ == 0) {
      spdlog::warn("no connection to tlmd at {}; retrying with backoff (next in {})",
                   options_.server_address, absl::FormatDuration(wait));
    } else {
      spdlog::debug("still no connection to {}; next try in {}", options_.server_address,
                    absl::FormatDuration(wait));
    }
    shutdown_.WaitForNotificationWithTimeout(wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  spdlog::info("agent stopped after {} jobs on {} connections", jobs_done_.load(),
               sessions_.load());
  return absl::OkStatus();
}

bool Agent::Serve(tlm::v1::Fleet::Stub& stub) {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_.HasBeenNotified()) return false;
    active_context_ = &context;
  }
  std::unique_ptr<grpc::ClientReaderWriter<tlm::v1::WorkerMessage, tlm::v1::ServerMessage>> stream =
      stub.Connect(&context);
  absl::Mutex write_mu;
  auto write = [&](const tlm::v1::WorkerMessage& message) {
    absl::MutexLock lock(&write_mu);
    return stream->Write(message);
  };

  bool registered = false;
  tlm::v1::WorkerMessage hello;
  *hello.mutable_register_() = Registration();
  tlm::v1::ServerMessage first;
  if (write(hello) && stream->Read(&first) && first.has_registered()) {
    registered = true;
    ++sessions_;
    const tlm::v1::RegisterResponse& reg = first.registered();
    spdlog::info("registered with tlmd at {} as {} ({}, {} in flight)", options_.server_address,
                 reg.worker_id(), backend_->name(), options_.max_in_flight);
    tlm::v1::WorkerMessage credit;
    credit.mutable_credit()->set_credits(options_.max_in_flight);
    write(credit);

    JobQueue queue;
    absl::Notification stream_done;
    std::thread measurer([&] {
      std::vector<tlm::v1::MeasureJob> ahead;
      while (std::optional<tlm::v1::MeasureJob> job = queue.Pop(&ahead)) {
        // The backend may build the jobs behind this one while it is timed.
        for (const tlm::v1::MeasureJob& next : ahead) backend_->Prefetch(next.program(), next.options());
        ahead.clear();
        tlm::v1::WorkerMessage message;
        tlm::v1::JobResult* result = message.mutable_result();
        result->set_job_id(job->job_id());
        result->set_lease_id(job->lease_id());
        *result->mutable_result() = backend_->Measure(job->program(), job->options());
        spdlog::debug("job {} (attempt {}): {} median {:.3f} ms", job->job_id(), job->attempt(),
                      tlm::v1::ErrorKind_Name(result->result().error_kind()),
                      result->result().median_seconds() * 1e3);
        tlm::v1::WorkerMessage again;
        again.mutable_credit()->set_credits(1);
        if (!write(message) || !write(again)) break;
        ++jobs_done_;
      }
    });
    const absl::Duration interval = absl::Milliseconds(std::max(10, reg.heartbeat_interval_ms()));
    std::thread heartbeat([&] {
      while (!stream_done.WaitForNotificationWithTimeout(interval)) {
        tlm::v1::WorkerMessage beat;
        beat.mutable_heartbeat()->set_unix_ms(absl::ToUnixMillis(absl::Now()));
        if (!write(beat)) break;
      }
    });

    tlm::v1::ServerMessage message;
    while (stream->Read(&message)) {
      if (message.has_job()) queue.Push(std::move(*message.mutable_job()));
    }
    stream_done.Notify();
    queue.Close();
    context.TryCancel();  // fails the writes of a measurement still running
    heartbeat.join();
    measurer.join();
  }
  const grpc::Status status = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    active_context_ = nullptr;
  }
  if (!shutdown_.HasBeenNotified() && registered) {
    spdlog::warn("stream to tlmd closed: {} {}", static_cast<int>(status.error_code()),
                 status.error_message());
  } else if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    spdlog::error("tlmd rejected this worker: {}", status.error_message());
  } else if (!registered && !status.ok()) {
    spdlog::debug("cannot register with {}: {}", options_.server_address, status.error_message());
  }
  return registered;
}

}  // namespace tlm::worker

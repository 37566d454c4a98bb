// The worker's side of tlm.v1.Fleet: one stream to tlmd, kept up for as long
// as the worker runs.
//
// On each connection the agent registers, grants max_in_flight credits,
// measures the jobs it receives one at a time with its backend (telling it,
// through Backend::Prefetch, of the jobs queued behind the one it measures),
// returns each result (echoing job and lease ids) followed by a new credit,
// and sends heartbeats at the interval the server asks for. When the stream breaks it
// reconnects with exponential backoff and jitter; jobs received on a broken
// stream are dropped (the server requeues them).
#ifndef TLMD_WORKER_AGENT_H_
#define TLMD_WORKER_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tlm/v1/fleet.grpc.pb.h"
#include "worker/backend.h"

namespace tlm::worker {

struct AgentOptions {
  std::string server_address = "127.0.0.1:50051";
  std::string name;  // shown by `tlmctl workers`
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  int max_in_flight = 1;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
};

class Agent {
 public:
  // `backend` must outlive the agent.
  Agent(AgentOptions options, Backend* backend);

  // Serves until Shutdown; returns OK then.
  absl::Status Run();
  // Makes Run return soon: the current measurement finishes, nothing new
  // starts. Thread-safe; may be called before Run.
  void Shutdown();

  int64_t jobs_done() const { return jobs_done_; }
  // Connections on which the server accepted the registration.
  int64_t sessions() const { return sessions_; }

 private:
  // One connection from connect to the end of its stream. Returns whether
  // the server accepted the registration.
  bool Serve(tlm::v1::Fleet::Stub& stub);
  tlm::v1::RegisterRequest Registration() const;

  const AgentOptions options_;
  Backend* const backend_;
  absl::Notification shutdown_;
  absl::Mutex mu_;
  grpc::ClientContext* active_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<int64_t> jobs_done_{0};
  std::atomic<int64_t> sessions_{0};
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_AGENT_H_

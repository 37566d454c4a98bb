// A client of tlmd: the Tuning and Admin services with absl::Status errors.
#ifndef TLMD_CLIENT_CLIENT_H_
#define TLMD_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tlm/v1/admin.grpc.pb.h"
#include "tlm/v1/tuning.grpc.pb.h"

namespace tlm::client {

// A connection to tlmd's Tuning and Admin services.
//
// Errors are the server's gRPC status as an absl::Status with the same code
// and message. UNAVAILABLE (the server cannot be reached) and
// DEADLINE_EXCEEDED (it did not answer in time) also name the address.
// Unary calls carry a deadline of call_timeout (default 30 s); the streams
// (WatchTask, WatchSession, ExportRecords) have none.
//
// Thread-safe once constructed: calls may run concurrently from several
// threads. set_call_timeout must not race with calls.
class Client {
 public:
  // Opens a channel to `address` (HOST:PORT) and waits up to `timeout` for it
  // to connect; UNAVAILABLE naming the address when it does not. Plaintext
  // unless `credentials` says otherwise (see client/credentials.h).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const std::string& address, absl::Duration timeout,
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials());

  void set_call_timeout(absl::Duration timeout) { call_timeout_ = timeout; }
  absl::Duration call_timeout() const { return call_timeout_; }
  const std::string& address() const { return address_; }

  absl::StatusOr<tlm::v1::Task> SubmitTask(const tlm::v1::SubmitTaskRequest& request);
  absl::StatusOr<tlm::v1::Task> GetTask(int64_t task_id);
  // Calls on_event for each event, in order, on the calling thread. Returns
  // OK when the server ends the stream normally or when on_event returns false
  // (the stream is then cancelled); the stream's error otherwise.
  absl::Status WatchTask(int64_t task_id,
                         const std::function<bool(const tlm::v1::TaskEvent&)>& on_event);
  absl::StatusOr<tlm::v1::BestProgram> GetBest(int64_t task_id);
  absl::StatusOr<std::vector<tlm::v1::Task>> ListTasks(
      int limit, const std::vector<tlm::v1::TaskState>& states);
  absl::StatusOr<tlm::v1::Task> CancelTask(int64_t task_id);
  absl::StatusOr<tlm::v1::Task> ExtendTask(int64_t task_id, int32_t more_trials);
  // Calls on_record for each exported record (all tasks when task_ids is
  // empty), in the server's order, on the calling thread.
  absl::Status ExportRecords(const std::vector<int64_t>& task_ids,
                             const std::function<void(const tlm::v1::Record&)>& on_record);
  // Sends every record, then returns the server's answer; the server stores
  // all of them or none.
  absl::StatusOr<tlm::v1::ImportRecordsResponse> ImportRecords(
      const std::vector<tlm::v1::Record>& records);
  absl::StatusOr<tlm::v1::Session> StartSession(const tlm::v1::StartSessionRequest& request);
  absl::StatusOr<tlm::v1::Session> GetSession(int64_t session_id);
  absl::StatusOr<std::vector<tlm::v1::Session>> ListSessions(int limit);
  // As WatchTask: on_session for every update, on the calling thread.
  absl::Status WatchSession(int64_t session_id,
                            const std::function<bool(const tlm::v1::Session&)>& on_session);
  absl::StatusOr<tlm::v1::Session> CancelSession(int64_t session_id);
  absl::StatusOr<tlm::v1::ServerStatus> GetStatus();
  absl::StatusOr<std::vector<tlm::v1::WorkerInfo>> ListWorkers();

 private:
  Client(std::string address, std::shared_ptr<grpc::Channel> channel);
  // Sets the deadline of a unary call.
  void Prepare(grpc::ClientContext& context) const;
  // The one conversion from grpc::Status: same code and message, plus the
  // address when the code says the server was not reachable or not answering.
  absl::Status FromGrpc(const grpc::Status& status) const;

  const std::string address_;
  std::unique_ptr<tlm::v1::Tuning::Stub> tuning_;
  std::unique_ptr<tlm::v1::Admin::Stub> admin_;
  absl::Duration call_timeout_ = absl::Seconds(30);
};

}  // namespace tlm::client

#endif  // TLMD_CLIENT_CLIENT_H_

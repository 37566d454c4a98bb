#include "client/client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tlm::client {

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const std::string& address, absl::Duration timeout,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(address, credentials);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat("the server at ", address, " is not reachable (no ",
                                               "connection within ", absl::FormatDuration(timeout),
                                               ")"));
  }
  return std::unique_ptr<Client>(new Client(address, std::move(channel)));
}

Client::Client(std::string address, std::shared_ptr<grpc::Channel> channel)
    : address_(std::move(address)),
      tuning_(tlm::v1::Tuning::NewStub(channel)),
      admin_(tlm::v1::Admin::NewStub(channel)) {}

void Client::Prepare(grpc::ClientContext& context) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
}

absl::Status Client::FromGrpc(const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(
        absl::StrCat("the server at ", address_, " is not reachable: ", status.error_message()));
  }
  if (code == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the server at ", address_, " did not answer in time: ", status.error_message()));
  }
  return absl::Status(code, status.error_message());
}

absl::StatusOr<tlm::v1::Task> Client::SubmitTask(const tlm::v1::SubmitTaskRequest& request) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::Task task;
  if (absl::Status s = FromGrpc(tuning_->SubmitTask(&context, request, &task)); !s.ok()) return s;
  return task;
}

absl::StatusOr<tlm::v1::Task> Client::GetTask(int64_t task_id) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::GetTaskRequest request;
  request.set_task_id(task_id);
  tlm::v1::Task task;
  if (absl::Status s = FromGrpc(tuning_->GetTask(&context, request, &task)); !s.ok()) return s;
  return task;
}

absl::Status Client::WatchTask(int64_t task_id,
                               const std::function<bool(const tlm::v1::TaskEvent&)>& on_event) {
  grpc::ClientContext context;
  tlm::v1::WatchTaskRequest request;
  request.set_task_id(task_id);
  std::unique_ptr<grpc::ClientReader<tlm::v1::TaskEvent>> reader =
      tuning_->WatchTask(&context, request);
  tlm::v1::TaskEvent event;
  while (reader->Read(&event)) {
    if (!on_event(event)) {
      context.TryCancel();
      reader->Finish();
      return absl::OkStatus();
    }
  }
  return FromGrpc(reader->Finish());
}

absl::StatusOr<tlm::v1::BestProgram> Client::GetBest(int64_t task_id) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::GetBestRequest request;
  request.set_task_id(task_id);
  tlm::v1::BestProgram best;
  if (absl::Status s = FromGrpc(tuning_->GetBest(&context, request, &best)); !s.ok()) return s;
  return best;
}

absl::StatusOr<std::vector<tlm::v1::Task>> Client::ListTasks(
    int limit, const std::vector<tlm::v1::TaskState>& states) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::ListTasksRequest request;
  request.set_limit(limit);
  for (tlm::v1::TaskState s : states) request.add_states(s);
  tlm::v1::ListTasksResponse response;
  if (absl::Status s = FromGrpc(tuning_->ListTasks(&context, request, &response)); !s.ok()) {
    return s;
  }
  return std::vector<tlm::v1::Task>(response.tasks().begin(), response.tasks().end());
}

absl::StatusOr<tlm::v1::Task> Client::CancelTask(int64_t task_id) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::CancelTaskRequest request;
  request.set_task_id(task_id);
  tlm::v1::Task task;
  if (absl::Status s = FromGrpc(tuning_->CancelTask(&context, request, &task)); !s.ok()) return s;
  return task;
}

absl::StatusOr<tlm::v1::Task> Client::ExtendTask(int64_t task_id, int32_t more_trials) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::ExtendTaskRequest request;
  request.set_task_id(task_id);
  request.set_more_trials(more_trials);
  tlm::v1::Task task;
  if (absl::Status s = FromGrpc(tuning_->ExtendTask(&context, request, &task)); !s.ok()) return s;
  return task;
}

absl::Status Client::ExportRecords(const std::vector<int64_t>& task_ids,
                                   const std::function<void(const tlm::v1::Record&)>& on_record) {
  grpc::ClientContext context;
  tlm::v1::ExportRecordsRequest request;
  for (int64_t id : task_ids) request.add_task_ids(id);
  std::unique_ptr<grpc::ClientReader<tlm::v1::Record>> reader =
      tuning_->ExportRecords(&context, request);
  tlm::v1::Record record;
  while (reader->Read(&record)) on_record(record);
  return FromGrpc(reader->Finish());
}

absl::StatusOr<tlm::v1::Session> Client::StartSession(
    const tlm::v1::StartSessionRequest& request) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::Session session;
  if (absl::Status s = FromGrpc(tuning_->StartSession(&context, request, &session)); !s.ok()) {
    return s;
  }
  return session;
}

absl::StatusOr<tlm::v1::Session> Client::GetSession(int64_t session_id) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::GetSessionRequest request;
  request.set_session_id(session_id);
  tlm::v1::Session session;
  if (absl::Status s = FromGrpc(tuning_->GetSession(&context, request, &session)); !s.ok()) {
    return s;
  }
  return session;
}

absl::StatusOr<std::vector<tlm::v1::Session>> Client::ListSessions(int limit) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::ListSessionsRequest request;
  request.set_limit(limit);
  tlm::v1::ListSessionsResponse response;
  if (absl::Status s = FromGrpc(tuning_->ListSessions(&context, request, &response)); !s.ok()) {
    return s;
  }
  return std::vector<tlm::v1::Session>(response.sessions().begin(), response.sessions().end());
}

absl::Status Client::WatchSession(
    int64_t session_id, const std::function<bool(const tlm::v1::Session&)>& on_session) {
  grpc::ClientContext context;
  tlm::v1::WatchSessionRequest request;
  request.set_session_id(session_id);
  std::unique_ptr<grpc::ClientReader<tlm::v1::Session>> reader =
      tuning_->WatchSession(&context, request);
  tlm::v1::Session session;
  while (reader->Read(&session)) {
    if (!on_session(session)) {
      context.TryCancel();
      reader->Finish();
      return absl::OkStatus();
    }
  }
  return FromGrpc(reader->Finish());
}

absl::StatusOr<tlm::v1::Session> Client::CancelSession(int64_t session_id) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::CancelSessionRequest request;
  request.set_session_id(session_id);
  tlm::v1::Session session;
  if (absl::Status s = FromGrpc(tuning_->CancelSession(&context, request, &session)); !s.ok()) {
    return s;
  }
  return session;
}

absl::StatusOr<tlm::v1::ImportRecordsResponse> Client::ImportRecords(
    const std::vector<tlm::v1::Record>& records) {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::ImportRecordsResponse response;
  std::unique_ptr<grpc::ClientWriter<tlm::v1::Record>> writer =
      tuning_->ImportRecords(&context, &response);
  for (const tlm::v1::Record& r : records) {
    if (!writer->Write(r)) break;
  }
  writer->WritesDone();
  if (absl::Status s = FromGrpc(writer->Finish()); !s.ok()) return s;
  return response;
}

absl::StatusOr<tlm::v1::ServerStatus> Client::GetStatus() {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::ServerStatus status;
  if (absl::Status s = FromGrpc(admin_->GetStatus(&context, {}, &status)); !s.ok()) return s;
  return status;
}

absl::StatusOr<std::vector<tlm::v1::WorkerInfo>> Client::ListWorkers() {
  grpc::ClientContext context;
  Prepare(context);
  tlm::v1::ListWorkersResponse response;
  if (absl::Status s = FromGrpc(admin_->ListWorkers(&context, {}, &response)); !s.ok()) return s;
  return std::vector<tlm::v1::WorkerInfo>(response.workers().begin(), response.workers().end());
}

}  // namespace tlm::client

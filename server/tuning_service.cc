#include "server/tuning_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/grpc_status.h"
#include "server/records.h"

namespace tlm::server {
namespace {

constexpr int kDefaultListLimit = 50;
constexpr int kMaxListLimit = 1000;

// `what` is "task" or "session": INVALID_ARGUMENT "task_id: must be a task
// id (1 or more), got 0".
grpc::Status CheckId(absl::string_view what, int64_t id) {
  if (id < 1) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat(what, "_id: must be a ", what, " id (1 or more), got ", id));
  }
  return grpc::Status::OK;
}

// What a watcher of a session is told about: a round starting or ending, or
// the session ending.
bool SessionMoved(const tlm::v1::Session& before, const tlm::v1::Session& now) {
  if (before.state() != now.state() || before.rounds_size() != now.rounds_size()) return true;
  return now.rounds_size() > 0 && before.rounds(before.rounds_size() - 1).ended_unix_ms() !=
                                      now.rounds(now.rounds_size() - 1).ended_unix_ms();
}

// The rows a List call returns: the default for 0, at most kMaxListLimit;
// INVALID_ARGUMENT for a negative request.
grpc::Status ListLimit(int32_t requested, int* limit) {
  if (requested < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("limit: must not be negative, got ", requested));
  }
  *limit = requested == 0 ? kDefaultListLimit : std::min(requested, kMaxListLimit);
  return grpc::Status::OK;
}

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status TuningService::SubmitTask(grpc::ServerContext*,
                                       const tlm::v1::SubmitTaskRequest* request,
                                       tlm::v1::Task* response) {
  return Reply(tuner_->Submit(*request), response);
}

grpc::Status TuningService::GetTask(grpc::ServerContext*, const tlm::v1::GetTaskRequest* request,
                                    tlm::v1::Task* response) {
  if (grpc::Status s = CheckId("task", request->task_id()); !s.ok()) return s;
  return Reply(tuner_->Get(request->task_id()), response);
}

grpc::Status TuningService::WatchTask(grpc::ServerContext* context,
                                      const tlm::v1::WatchTaskRequest* request,
                                      grpc::ServerWriter<tlm::v1::TaskEvent>* writer) {
  if (grpc::Status s = CheckId("task", request->task_id()); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<TaskWatch>> watch = tuner_->Watch(request->task_id());
  if (!watch.ok()) return ToGrpcStatus(watch.status());
  while (!(*watch)->done()) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    if (closing_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "tlmd is shutting down");
    std::optional<tlm::v1::TaskEvent> event = (*watch)->Next(absl::Milliseconds(200));
    if (event.has_value() && !writer->Write(*event)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status TuningService::GetBest(grpc::ServerContext*, const tlm::v1::GetBestRequest* request,
                                    tlm::v1::BestProgram* response) {
  if (grpc::Status s = CheckId("task", request->task_id()); !s.ok()) return s;
  absl::StatusOr<tlm::v1::Trial> best = tuner_->Best(request->task_id());
  if (!best.ok()) return ToGrpcStatus(best.status());
  response->set_task_id(request->task_id());
  *response->mutable_trial() = std::move(*best);
  return grpc::Status::OK;
}

grpc::Status TuningService::ListTasks(grpc::ServerContext*,
                                      const tlm::v1::ListTasksRequest* request,
                                      tlm::v1::ListTasksResponse* response) {
  int limit = 0;
  if (grpc::Status s = ListLimit(request->limit(), &limit); !s.ok()) return s;
  std::vector<tlm::v1::TaskState> states;
  for (int s : request->states()) {
    if (!tlm::v1::TaskState_IsValid(s) || s == tlm::v1::TASK_STATE_UNSPECIFIED) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("states: unknown task state ", s));
    }
    states.push_back(static_cast<tlm::v1::TaskState>(s));
  }
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks = tuner_->List(limit, states);
  if (!tasks.ok()) return ToGrpcStatus(tasks.status());
  for (tlm::v1::Task& t : *tasks) *response->add_tasks() = std::move(t);
  return grpc::Status::OK;
}

grpc::Status TuningService::CancelTask(grpc::ServerContext*,
                                       const tlm::v1::CancelTaskRequest* request,
                                       tlm::v1::Task* response) {
  if (grpc::Status s = CheckId("task", request->task_id()); !s.ok()) return s;
  return Reply(tuner_->Cancel(request->task_id()), response);
}

grpc::Status TuningService::ExtendTask(grpc::ServerContext*,
                                       const tlm::v1::ExtendTaskRequest* request,
                                       tlm::v1::Task* response) {
  if (grpc::Status s = CheckId("task", request->task_id()); !s.ok()) return s;
  return Reply(tuner_->Extend(request->task_id(), request->more_trials()), response);
}

grpc::Status TuningService::ExportRecords(grpc::ServerContext* context,
                                          const tlm::v1::ExportRecordsRequest* request,
                                          grpc::ServerWriter<tlm::v1::Record>* writer) {
  std::vector<int64_t> ids(request->task_ids().begin(), request->task_ids().end());
  for (int64_t id : ids) {
    if (grpc::Status s = CheckId("task", id); !s.ok()) return s;
  }
  bool cancelled = false;
  absl::Status status =
      tlm::server::ExportRecords(*store_, ids, [&](const tlm::v1::Record& record) {
        cancelled = context->IsCancelled() || !writer->Write(record);
        return !cancelled;
      });
  if (cancelled) return grpc::Status::CANCELLED;
  return ToGrpcStatus(status);
}

grpc::Status TuningService::ImportRecords(grpc::ServerContext*,
                                          grpc::ServerReader<tlm::v1::Record>* reader,
                                          tlm::v1::ImportRecordsResponse* response) {
  std::vector<tlm::v1::Record> records;
  tlm::v1::Record record;
  while (reader->Read(&record)) records.push_back(std::move(record));
  return Reply(tlm::server::ImportRecords(*store_, records, absl::ToUnixMillis(absl::Now())),
               response);
}

grpc::Status TuningService::StartSession(grpc::ServerContext*,
                                         const tlm::v1::StartSessionRequest* request,
                                         tlm::v1::Session* response) {
  return Reply(sessions_->StartSession(*request), response);
}

grpc::Status TuningService::GetSession(grpc::ServerContext*,
                                       const tlm::v1::GetSessionRequest* request,
                                       tlm::v1::Session* response) {
  if (grpc::Status s = CheckId("session", request->session_id()); !s.ok()) return s;
  return Reply(sessions_->Get(request->session_id()), response);
}

grpc::Status TuningService::ListSessions(grpc::ServerContext*,
                                         const tlm::v1::ListSessionsRequest* request,
                                         tlm::v1::ListSessionsResponse* response) {
  int limit = 0;
  if (grpc::Status s = ListLimit(request->limit(), &limit); !s.ok()) return s;
  absl::StatusOr<std::vector<tlm::v1::Session>> sessions = sessions_->List(limit);
  if (!sessions.ok()) return ToGrpcStatus(sessions.status());
  for (tlm::v1::Session& s : *sessions) *response->add_sessions() = std::move(s);
  return grpc::Status::OK;
}

grpc::Status TuningService::WatchSession(grpc::ServerContext* context,
                                         const tlm::v1::WatchSessionRequest* request,
                                         grpc::ServerWriter<tlm::v1::Session>* writer) {
  if (grpc::Status s = CheckId("session", request->session_id()); !s.ok()) return s;
  absl::StatusOr<tlm::v1::Session> last = sessions_->Get(request->session_id());
  if (!last.ok()) return ToGrpcStatus(last.status());
  if (!writer->Write(*last)) return grpc::Status::CANCELLED;
  // Sessions move at the pace of measurements: looking a few times a second
  // is prompt enough and costs one small read.
  while (last->state() == tlm::v1::SESSION_STATE_RUNNING) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    if (closing_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "tlmd is shutting down");
    absl::SleepFor(absl::Milliseconds(100));
    absl::StatusOr<tlm::v1::Session> now = sessions_->Get(request->session_id());
    if (!now.ok()) return ToGrpcStatus(now.status());
    if (!SessionMoved(*last, *now)) continue;
    last = *std::move(now);
    if (!writer->Write(*last)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status TuningService::CancelSession(grpc::ServerContext*,
                                          const tlm::v1::CancelSessionRequest* request,
                                          tlm::v1::Session* response) {
  if (grpc::Status s = CheckId("session", request->session_id()); !s.ok()) return s;
  return Reply(sessions_->Cancel(request->session_id()), response);
}

}  // namespace tlm::server

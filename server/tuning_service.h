// tlm.v1.Tuning over gRPC: a thin translator onto the Tuner.
#ifndef TLMD_SERVER_TUNING_SERVICE_H_
#define TLMD_SERVER_TUNING_SERVICE_H_

#include <atomic>

#include "server/session_runner.h"
#include "server/store.h"
#include "server/tuner.h"
#include "tlm/v1/tuning.grpc.pb.h"

namespace tlm::server {

class TuningService final : public tlm::v1::Tuning::Service {
 public:
  // `tuner`, `sessions` and `store` must outlive the service.
  TuningService(Tuner* tuner, SessionRunner* sessions, Store* store)
      : tuner_(tuner), sessions_(sessions), store_(store) {}

  // Ends every WatchTask and WatchSession stream promptly (used at shutdown).
  void CloseStreams() { closing_ = true; }

  grpc::Status SubmitTask(grpc::ServerContext* context, const tlm::v1::SubmitTaskRequest* request,
                          tlm::v1::Task* response) override;
  grpc::Status GetTask(grpc::ServerContext* context, const tlm::v1::GetTaskRequest* request,
                       tlm::v1::Task* response) override;
  grpc::Status WatchTask(grpc::ServerContext* context, const tlm::v1::WatchTaskRequest* request,
                         grpc::ServerWriter<tlm::v1::TaskEvent>* writer) override;
  grpc::Status GetBest(grpc::ServerContext* context, const tlm::v1::GetBestRequest* request,
                       tlm::v1::BestProgram* response) override;
  grpc::Status ListTasks(grpc::ServerContext* context, const tlm::v1::ListTasksRequest* request,
                         tlm::v1::ListTasksResponse* response) override;
  grpc::Status CancelTask(grpc::ServerContext* context, const tlm::v1::CancelTaskRequest* request,
                          tlm::v1::Task* response) override;
  grpc::Status ExtendTask(grpc::ServerContext* context, const tlm::v1::ExtendTaskRequest* request,
                          tlm::v1::Task* response) override;
  grpc::Status ExportRecords(grpc::ServerContext* context,
                             const tlm::v1::ExportRecordsRequest* request,
                             grpc::ServerWriter<tlm::v1::Record>* writer) override;
  grpc::Status ImportRecords(grpc::ServerContext* context,
                             grpc::ServerReader<tlm::v1::Record>* reader,
                             tlm::v1::ImportRecordsResponse* response) override;
  grpc::Status StartSession(grpc::ServerContext* context,
                            const tlm::v1::StartSessionRequest* request,
                            tlm::v1::Session* response) override;
  grpc::Status GetSession(grpc::ServerContext* context, const tlm::v1::GetSessionRequest* request,
                          tlm::v1::Session* response) override;
  grpc::Status ListSessions(grpc::ServerContext* context,
                            const tlm::v1::ListSessionsRequest* request,
                            tlm::v1::ListSessionsResponse* response) override;
  grpc::Status WatchSession(grpc::ServerContext* context,
                            const tlm::v1::WatchSessionRequest* request,
                            grpc::ServerWriter<tlm::v1::Session>* writer) override;
  grpc::Status CancelSession(grpc::ServerContext* context,
                             const tlm::v1::CancelSessionRequest* request,
                             tlm::v1::Session* response) override;

 private:
  Tuner* const tuner_;
  SessionRunner* const sessions_;
  Store* const store_;
  std::atomic<bool> closing_{false};
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_TUNING_SERVICE_H_

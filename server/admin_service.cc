#include "server/admin_service.h"

#include "server/grpc_status.h"

namespace tlm::server {

grpc::Status AdminService::GetStatus(grpc::ServerContext*, const tlm::v1::GetStatusRequest*,
                                     tlm::v1::ServerStatus* response) {
  absl::StatusOr<StoreCounts> counts = store_->Counts();
  if (!counts.ok()) return ToGrpcStatus(counts.status());
  response->set_version(version_);
  response->set_started_unix_ms(started_unix_ms_);
  response->set_database_path(store_->path());
  response->set_schema_version(store_->schema_version());
  response->set_num_tasks(counts->tasks);
  response->set_num_measurements(counts->measurements);
  for (tlm::v1::QueueStatus& q : dispatcher_->Queues()) *response->add_queues() = std::move(q);
  response->set_num_workers(static_cast<int32_t>(dispatcher_->Workers().size()));
  return grpc::Status::OK;
}

grpc::Status AdminService::ListWorkers(grpc::ServerContext*, const tlm::v1::ListWorkersRequest*,
                                       tlm::v1::ListWorkersResponse* response) {
  for (tlm::v1::WorkerInfo& w : dispatcher_->Workers()) *response->add_workers() = std::move(w);
  return grpc::Status::OK;
}

}  // namespace tlm::server

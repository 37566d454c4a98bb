// tlm.v1.Admin over gRPC: server and fleet state.
#ifndef TLMD_SERVER_ADMIN_SERVICE_H_
#define TLMD_SERVER_ADMIN_SERVICE_H_

#include <cstdint>
#include <string>

#include "server/dispatcher.h"
#include "server/sqlite_store.h"
#include "tlm/v1/admin.grpc.pb.h"

namespace tlm::server {

class AdminService final : public tlm::v1::Admin::Service {
 public:
  // `store` and `dispatcher` must outlive the service.
  AdminService(SqliteStore* store, Dispatcher* dispatcher, std::string version,
               int64_t started_unix_ms)
      : store_(store),
        dispatcher_(dispatcher),
        version_(std::move(version)),
        started_unix_ms_(started_unix_ms) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const tlm::v1::GetStatusRequest* request,
                         tlm::v1::ServerStatus* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const tlm::v1::ListWorkersRequest* request,
                           tlm::v1::ListWorkersResponse* response) override;

 private:
  SqliteStore* const store_;
  Dispatcher* const dispatcher_;
  const std::string version_;
  const int64_t started_unix_ms_;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_ADMIN_SERVICE_H_

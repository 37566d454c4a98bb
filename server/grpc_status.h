// The one place where absl::Status becomes grpc::Status.
#ifndef TLMD_SERVER_GRPC_STATUS_H_
#define TLMD_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tlm::server {

// Same code (the two enums share numbering) and message.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace tlm::server

#endif  // TLMD_SERVER_GRPC_STATUS_H_

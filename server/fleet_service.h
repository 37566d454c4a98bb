// tlm.v1.Fleet over gRPC: each worker's stream, translated onto the Dispatcher.
#ifndef TLMD_SERVER_FLEET_SERVICE_H_
#define TLMD_SERVER_FLEET_SERVICE_H_

#include <atomic>

#include "server/dispatcher.h"
#include "tlm/v1/fleet.grpc.pb.h"

namespace tlm::server {

class FleetService final : public tlm::v1::Fleet::Service {
 public:
  // `dispatcher` must outlive the service.
  explicit FleetService(Dispatcher* dispatcher) : dispatcher_(dispatcher) {}

  // Ends every worker stream promptly (used at shutdown, after draining).
  void CloseStreams() { closing_ = true; }

  // The calling thread writes jobs; a second thread reads the worker's
  // messages. Both end when the worker goes away, the dispatcher drops the
  // worker, or CloseStreams is called; the worker's leases are then requeued.
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<tlm::v1::ServerMessage, tlm::v1::WorkerMessage>* stream) override;

 private:
  Dispatcher* const dispatcher_;
  std::atomic<bool> closing_{false};
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_FLEET_SERVICE_H_

#include "server/fleet_service.h"

#include <thread>

#include "absl/synchronization/mutex.h"
#include "server/grpc_status.h"
#include "spdlog/spdlog.h"

namespace tlm::server {

grpc::Status FleetService::Connect(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<tlm::v1::ServerMessage, tlm::v1::WorkerMessage>* stream) {
  tlm::v1::WorkerMessage first;
  if (!stream->Read(&first)) return grpc::Status::CANCELLED;
  if (first.kind_case() != tlm::v1::WorkerMessage::kRegister) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message on a Fleet stream must be register");
  }
  absl::StatusOr<std::shared_ptr<WorkerSession>> session = dispatcher_->Connect(first.register_());
  if (!session.ok()) return ToGrpcStatus(session.status());
  const std::string worker_id = (*session)->worker_id();
  spdlog::info("worker {} connected: {} from {} ({}, {})", worker_id, first.register_().name(),
               context->peer(), first.register_().capabilities().target().kind(),
               first.register_().capabilities().backend());

  absl::Mutex write_mu;
  auto write = [&](const tlm::v1::ServerMessage& message) {
    absl::MutexLock lock(&write_mu);
    return stream->Write(message);
  };
  tlm::v1::ServerMessage registered;
  *registered.mutable_registered() = dispatcher_->Registration(worker_id);
  if (!write(registered)) {
    dispatcher_->Disconnect(worker_id);
    return grpc::Status::CANCELLED;
  }

  std::atomic<bool> reader_done{false};
  std::thread reader([&] {
    tlm::v1::WorkerMessage message;
    while (stream->Read(&message)) {
      switch (message.kind_case()) {
        case tlm::v1::WorkerMessage::kCredit:
          dispatcher_->Grant(worker_id, message.credit().credits());
          break;
        case tlm::v1::WorkerMessage::kResult:
          dispatcher_->Complete(worker_id, message.result());
          break;
        case tlm::v1::WorkerMessage::kHeartbeat:
          dispatcher_->Heartbeat(worker_id);
          break;
        default:
          spdlog::warn("worker {} sent an unexpected message (kind {}); ignored", worker_id,
                       static_cast<int>(message.kind_case()));
      }
    }
    reader_done = true;
  });

  while (!reader_done && !closing_ && !context->IsCancelled() && !(*session)->closed()) {
    std::optional<tlm::v1::MeasureJob> job = (*session)->NextJob(absl::Milliseconds(200));
    if (!job.has_value()) continue;
    tlm::v1::ServerMessage message;
    *message.mutable_job() = std::move(*job);
    if (!write(message)) break;
  }
  dispatcher_->Disconnect(worker_id);
  context->TryCancel();  // unblocks the reader if the worker is still connected
  reader.join();
  spdlog::info("worker {} disconnected", worker_id);
  return closing_ ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "tlmd is shutting down")
                  : grpc::Status::OK;
}

}  // namespace tlm::server

// An in-process stand-in for tlmd's Tuning and Admin services, for tests of
// the client layer: it answers from a script the test sets and records the
// requests it received. Listens on 127.0.0.1 on a free port.
#ifndef TLMD_TESTS_CLIENT_FAKE_TLMD_H_
#define TLMD_TESTS_CLIENT_FAKE_TLMD_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tlm/v1/admin.grpc.pb.h"
#include "tlm/v1/tuning.grpc.pb.h"

namespace tlm::testing {

// What the fake answers. Every RPC answers with errors[method] when that is
// set ("SubmitTask", "WatchTask", ...), else with the scripted response.
struct FakeScript {
  std::map<std::string, grpc::Status> errors;
  tlm::v1::Task submit_response;
  // GetTask and CancelTask.
  tlm::v1::Task task;
  // WatchTask: sent in order, then the stream ends with watch_end.
  std::vector<tlm::v1::TaskEvent> events;
  grpc::Status watch_end;
  // WatchTask: after the events, keep the stream open until the client
  // cancels it (bounded by 10 s).
  bool watch_hold_open = false;
  tlm::v1::BestProgram best;
  std::vector<tlm::v1::Task> tasks;
  std::vector<tlm::v1::Record> records;
  tlm::v1::ImportRecordsResponse import_response;
  tlm::v1::ServerStatus status;
  // GetStatus waits for the client to give up (deadline or cancel) before
  // answering, bounded by 10 s.
  bool status_hangs = false;
  std::vector<tlm::v1::WorkerInfo> workers;
};

// The requests the fake received, in order.
struct FakeRequests {
  std::vector<std::string> methods;
  std::vector<tlm::v1::SubmitTaskRequest> submits;
  std::vector<int64_t> task_ids;  // of GetTask, WatchTask, GetBest and CancelTask, in order
  std::vector<tlm::v1::ListTasksRequest> lists;
  std::vector<tlm::v1::ExportRecordsRequest> exports;
  std::vector<tlm::v1::Record> imported;
  // Whether a held-open watch or a hanging GetStatus saw the client cancel.
  bool saw_cancel = false;
};

class FakeTlmd {
 public:
  // Starts serving; REQUIREs that the server started.
  FakeTlmd();
  ~FakeTlmd();
  FakeTlmd(const FakeTlmd&) = delete;
  FakeTlmd& operator=(const FakeTlmd&) = delete;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // Edits the script under the fake's lock.
  void Script(const std::function<void(FakeScript&)>& edit);
  // A copy of what was received so far.
  FakeRequests Requests() const;

 private:
  class TuningImpl;
  class AdminImpl;

  mutable absl::Mutex mu_;
  FakeScript script_ ABSL_GUARDED_BY(mu_);
  FakeRequests requests_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<TuningImpl> tuning_;
  std::unique_ptr<AdminImpl> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// An address on 127.0.0.1 where nothing listens.
std::string ClosedAddress();

}  // namespace tlm::testing

#endif  // TLMD_TESTS_CLIENT_FAKE_TLMD_H_

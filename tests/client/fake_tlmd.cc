#include "tests/client/fake_tlmd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tlm::testing {
namespace {

// Waits until the call is cancelled (client deadline or cancel), at most 10 s.
bool WaitForCancel(grpc::ServerContext* context) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!context->IsCancelled() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(2));
  return context->IsCancelled();
}

}  // namespace

class FakeTlmd::TuningImpl final : public tlm::v1::Tuning::Service {
 public:
  explicit TuningImpl(FakeTlmd* fake) : fake_(fake) {}

  grpc::Status SubmitTask(grpc::ServerContext*, const tlm::v1::SubmitTaskRequest* request,
                          tlm::v1::Task* response) override {
    absl::MutexLock lock(&fake_->mu_);
    fake_->requests_.methods.push_back("SubmitTask");
    fake_->requests_.submits.push_back(*request);
    if (auto e = Error("SubmitTask")) return *e;
    *response = fake_->script_.submit_response;
    return grpc::Status::OK;
  }

  grpc::Status GetTask(grpc::ServerContext*, const tlm::v1::GetTaskRequest* request,
                       tlm::v1::Task* response) override {
    absl::MutexLock lock(&fake_->mu_);
    Record("GetTask", request->task_id());
    if (auto e = Error("GetTask")) return *e;
    *response = fake_->script_.task;
    return grpc::Status::OK;
  }

  grpc::Status WatchTask(grpc::ServerContext* context, const tlm::v1::WatchTaskRequest* request,
                         grpc::ServerWriter<tlm::v1::TaskEvent>* writer) override {
    std::vector<tlm::v1::TaskEvent> events;
    grpc::Status end;
    bool hold_open = false;
    {
      absl::MutexLock lock(&fake_->mu_);
      Record("WatchTask", request->task_id());
      if (auto e = Error("WatchTask")) return *e;
      events = fake_->script_.events;
      end = fake_->script_.watch_end;
      hold_open = fake_->script_.watch_hold_open;
    }
    for (const tlm::v1::TaskEvent& event : events) {
      if (!writer->Write(event)) break;
    }
    if (hold_open && WaitForCancel(context)) {
      absl::MutexLock lock(&fake_->mu_);
      fake_->requests_.saw_cancel = true;
    }
    return end;
  }

  grpc::Status GetBest(grpc::ServerContext*, const tlm::v1::GetBestRequest* request,
                       tlm::v1::BestProgram* response) override {
    absl::MutexLock lock(&fake_->mu_);
    Record("GetBest", request->task_id());
    if (auto e = Error("GetBest")) return *e;
    *response = fake_->script_.best;
    return grpc::Status::OK;
  }

  grpc::Status ListTasks(grpc::ServerContext*, const tlm::v1::ListTasksRequest* request,
                         tlm::v1::ListTasksResponse* response) override {
    absl::MutexLock lock(&fake_->mu_);
    fake_->requests_.methods.push_back("ListTasks");
    fake_->requests_.lists.push_back(*request);
    if (auto e = Error("ListTasks")) return *e;
    for (const tlm::v1::Task& t : fake_->script_.tasks) *response->add_tasks() = t;
    return grpc::Status::OK;
  }

  grpc::Status CancelTask(grpc::ServerContext*, const tlm::v1::CancelTaskRequest* request,
                          tlm::v1::Task* response) override {
    absl::MutexLock lock(&fake_->mu_);
    Record("CancelTask", request->task_id());
    if (auto e = Error("CancelTask")) return *e;
    *response = fake_->script_.task;
    return grpc::Status::OK;
  }

  grpc::Status ExportRecords(grpc::ServerContext*, const tlm::v1::ExportRecordsRequest* request,
                             grpc::ServerWriter<tlm::v1::Record>* writer) override {
    std::vector<tlm::v1::Record> records;
    {
      absl::MutexLock lock(&fake_->mu_);
      fake_->requests_.methods.push_back("ExportRecords");
      fake_->requests_.exports.push_back(*request);
      if (auto e = Error("ExportRecords")) return *e;
      records = fake_->script_.records;
    }
    for (const tlm::v1::Record& r : records) writer->Write(r);
    return grpc::Status::OK;
  }

  grpc::Status ImportRecords(grpc::ServerContext*, grpc::ServerReader<tlm::v1::Record>* reader,
                             tlm::v1::ImportRecordsResponse* response) override {
    std::vector<tlm::v1::Record> records;
    tlm::v1::Record record;
    while (reader->Read(&record)) records.push_back(record);
    absl::MutexLock lock(&fake_->mu_);
    fake_->requests_.methods.push_back("ImportRecords");
    for (const tlm::v1::Record& r : records) fake_->requests_.imported.push_back(r);
    if (auto e = Error("ImportRecords")) return *e;
    *response = fake_->script_.import_response;
    return grpc::Status::OK;
  }

 private:
  void Record(const char* method, int64_t task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fake_->mu_) {
    fake_->requests_.methods.push_back(method);
    fake_->requests_.task_ids.push_back(task_id);
  }
  std::optional<grpc::Status> Error(const std::string& method)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fake_->mu_) {
    auto it = fake_->script_.errors.find(method);
    if (it == fake_->script_.errors.end()) return std::nullopt;
    return it->second;
  }

  FakeTlmd* const fake_;
};

class FakeTlmd::AdminImpl final : public tlm::v1::Admin::Service {
 public:
  explicit AdminImpl(FakeTlmd* fake) : fake_(fake) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const tlm::v1::GetStatusRequest*,
                         tlm::v1::ServerStatus* response) override {
    bool hangs = false;
    {
      absl::MutexLock lock(&fake_->mu_);
      fake_->requests_.methods.push_back("GetStatus");
      hangs = fake_->script_.status_hangs;
    }
    if (hangs && WaitForCancel(context)) {
      absl::MutexLock lock(&fake_->mu_);
      fake_->requests_.saw_cancel = true;
      return grpc::Status(grpc::StatusCode::CANCELLED, "client gave up");
    }
    absl::MutexLock lock(&fake_->mu_);
    auto it = fake_->script_.errors.find("GetStatus");
    if (it != fake_->script_.errors.end()) return it->second;
    *response = fake_->script_.status;
    return grpc::Status::OK;
  }

  grpc::Status ListWorkers(grpc::ServerContext*, const tlm::v1::ListWorkersRequest*,
                           tlm::v1::ListWorkersResponse* response) override {
    absl::MutexLock lock(&fake_->mu_);
    fake_->requests_.methods.push_back("ListWorkers");
    auto it = fake_->script_.errors.find("ListWorkers");
    if (it != fake_->script_.errors.end()) return it->second;
    for (const tlm::v1::WorkerInfo& w : fake_->script_.workers) *response->add_workers() = w;
    return grpc::Status::OK;
  }

 private:
  FakeTlmd* const fake_;
};

FakeTlmd::FakeTlmd()
    : tuning_(std::make_unique<TuningImpl>(this)), admin_(std::make_unique<AdminImpl>(this)) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(tuning_.get());
  builder.RegisterService(admin_.get());
  server_ = builder.BuildAndStart();
  REQUIRE(server_ != nullptr);
  REQUIRE(port > 0);
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeTlmd::~FakeTlmd() {
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  server_->Wait();
}

void FakeTlmd::Script(const std::function<void(FakeScript&)>& edit) {
  absl::MutexLock lock(&mu_);
  edit(script_);
}

FakeRequests FakeTlmd::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::string ClosedAddress() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t length = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
}

}  // namespace tlm::testing

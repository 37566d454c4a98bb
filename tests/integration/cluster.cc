#include "tests/integration/cluster.h"

#include <signal.h>
#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "program/workload.h"

namespace tlm::testing {

Cluster::Cluster() : dir_(MakeTempDir("cluster")), db_path_(dir_ + "/var/tlmd.db") {}

Cluster::~Cluster() {
  workers_.clear();  // SIGKILL, reaped
  if (server_ != nullptr) StopServer();
}

bool Cluster::StartServer(const std::vector<std::string>& extra_flags) {
  const std::string port_file = dir_ + "/port";
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {RunfilePath("server/tlmd"), "--listen=127.0.0.1:0",
                                   "--db=" + db_path_,         "--port_file=" + port_file,
                                   "--heartbeat_ms=500",       "--log_level=debug"};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  server_ = std::make_unique<ChildProcess>(argv, dir_ + "/tlmd.log");
  const int port = WaitForPortFile(port_file, absl::Seconds(30));
  if (port == 0) return false;
  address_ = absl::StrCat("127.0.0.1:", port);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(address_, credentials_);
  tuning_ = tlm::v1::Tuning::NewStub(channel);
  admin_ = tlm::v1::Admin::NewStub(channel);
  return true;
}

void Cluster::UseTls(const std::string& ca_file, const std::string& token_file) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(ca_file);
  const std::string token(absl::StripAsciiWhitespace(ReadFile(token_file)));
  credentials_ = grpc::CompositeChannelCredentials(grpc::SslCredentials(options),
                                                   grpc::AccessTokenCredentials(token));
  worker_flags_ = {"--tls_ca=" + ca_file, "--token_file=" + token_file};
}

int Cluster::StopServer() {
  server_->Signal(SIGTERM);
  std::optional<int> code = server_->Wait(absl::Seconds(60));
  server_.reset();
  return code.value_or(-1);
}

size_t Cluster::StartWorker(const std::string& name, const std::vector<std::string>& extra_flags) {
  std::vector<std::string> argv = {RunfilePath("worker/tlm-worker"), "--server=" + address_,
                                   "--backend=cpu-ref", "--name=" + name, "--log_level=debug"};
  argv.insert(argv.end(), worker_flags_.begin(), worker_flags_.end());
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  workers_.push_back(std::make_unique<ChildProcess>(argv, dir_ + "/" + name + ".log"));
  return workers_.size() - 1;
}

bool Cluster::WaitForWorkers(int count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    tlm::v1::ListWorkersResponse response;
    if (admin_->ListWorkers(&context, {}, &response).ok() && response.workers_size() == count) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

tlm::v1::Task Cluster::WatchToEnd(int64_t task_id, int* events) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(240));
  tlm::v1::WatchTaskRequest request;
  request.set_task_id(task_id);
  std::unique_ptr<grpc::ClientReader<tlm::v1::TaskEvent>> reader =
      tuning_->WatchTask(&context, request);
  tlm::v1::TaskEvent event;
  tlm::v1::Task last;
  int count = 0;
  while (reader->Read(&event)) {
    last = event.task();
    ++count;
  }
  reader->Finish();
  if (events != nullptr) *events = count;
  return last;
}

std::string Cluster::Logs() const {
  std::string logs = absl::StrCat("--- tlmd.log\n", ReadFile(dir_ + "/tlmd.log"));
  for (const char* name : {"w1", "w2"}) {
    absl::StrAppend(&logs, "--- ", name, ".log\n", ReadFile(absl::StrCat(dir_, "/", name, ".log")));
  }
  return logs;
}

tlm::v1::Workload Dense(int64_t m, int64_t n, int64_t k) {
  return program::WorkloadToProto(program::DenseWorkload(m, n, k));
}

bool MakeSelfSignedCertificate(const std::string& cert_file, const std::string& key_file) {
  const CommandResult r =
      RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                  key_file, "-out", cert_file, "-days", "1", "-subj", "/CN=localhost", "-addext",
                  "subjectAltName=IP:127.0.0.1,DNS:localhost"});
  return r.exit_code == 0;
}

int64_t QueryInt(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int64_t value = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return value;
}

}  // namespace tlm::testing

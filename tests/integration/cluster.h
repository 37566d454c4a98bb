// A real tlmd with real tlm-workers on 127.0.0.1, for integration tests.
#ifndef TLMD_TESTS_INTEGRATION_CLUSTER_H_
#define TLMD_TESTS_INTEGRATION_CLUSTER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/process.h"
#include "tlm/v1/admin.grpc.pb.h"
#include "tlm/v1/tuning.grpc.pb.h"

namespace tlm::testing {

class Cluster {
 public:
  // A fresh directory holding the database and the processes' logs.
  Cluster();
  ~Cluster();

  // Makes the test's stubs and the workers started afterwards use TLS with
  // this CA and send this bearer token. Call before StartServer.
  void UseTls(const std::string& ca_file, const std::string& token_file);

  // Starts tlmd on an ephemeral port (again, after StopServer, on the same
  // database). Returns false if it did not come up.
  bool StartServer(const std::vector<std::string>& extra_flags = {});
  // SIGTERM; returns tlmd's exit code (or -1 on timeout).
  int StopServer();
  ChildProcess& server() { return *server_; }

  // Starts a cpu-ref worker; returns its index.
  size_t StartWorker(const std::string& name, const std::vector<std::string>& extra_flags = {});
  ChildProcess& worker(size_t index) { return *workers_[index]; }
  // Waits until the server lists `count` connected workers.
  bool WaitForWorkers(int count);

  tlm::v1::Tuning::Stub& tuning() { return *tuning_; }
  tlm::v1::Admin::Stub& admin() { return *admin_; }
  const std::string& address() const { return address_; }
  const std::string& db_path() const { return db_path_; }
  const std::string& dir() const { return dir_; }

  // Follows WatchTask until the stream ends; returns the last task seen.
  tlm::v1::Task WatchToEnd(int64_t task_id, int* events = nullptr);
  // Logs of every process, for failure messages.
  std::string Logs() const;

 private:
  std::string dir_;
  std::string db_path_;
  std::string address_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_ = grpc::InsecureChannelCredentials();
  std::vector<std::string> worker_flags_;
  std::unique_ptr<ChildProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<tlm::v1::Tuning::Stub> tuning_;
  std::unique_ptr<tlm::v1::Admin::Stub> admin_;
};

// A dense workload message.
tlm::v1::Workload Dense(int64_t m, int64_t n, int64_t k);

// Writes a self-signed certificate for 127.0.0.1 and its key (PEM) with
// openssl; returns false if openssl failed.
bool MakeSelfSignedCertificate(const std::string& cert_file, const std::string& key_file);

// Runs one integer query against a SQLite file (read-only); -1 on error.
int64_t QueryInt(const std::string& db_path, const std::string& sql);

}  // namespace tlm::testing

#endif  // TLMD_TESTS_INTEGRATION_CLUSTER_H_

// Store on an embedded SQLite file in WAL mode.
#ifndef TLMD_SERVER_SQLITE_STORE_H_
#define TLMD_SERVER_SQLITE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

struct sqlite3;

namespace tlm::server {

// Schema version this code writes; Open migrates older files up to it.
inline constexpr int kSchemaVersion = 1;

// One connection shared under a mutex. Writes use synchronous=FULL, so an
// acknowledged write survives a crash of the process or the machine.
class SqliteStore final : public Store {
 public:
  // Opens or creates the file (and missing parent directories) and migrates
  // it. FAILED_PRECONDITION for a file written by a newer schema; an error
  // naming the path for a file that is not a SQLite database.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  const std::string& path() const { return path_; }
  int schema_version() const { return kSchemaVersion; }

  absl::StatusOr<tlm::v1::Task> CreateTask(const tlm::v1::SubmitTaskRequest& request,
                                           int64_t now_unix_ms) override;
  absl::Status SetTaskState(int64_t task_id, tlm::v1::TaskState state, const std::string& message,
                            int64_t now_unix_ms) override;
  absl::StatusOr<tlm::v1::Task> GetTask(int64_t task_id) override;
  absl::StatusOr<std::vector<tlm::v1::Task>> ListTasks(
      int limit, const std::vector<tlm::v1::TaskState>& states) override;
  absl::StatusOr<AddedProgram> AddProgram(int64_t task_id,
                                          const tlm::v1::Program& program) override;
  absl::Status RecordMeasurement(const MeasurementRecord& record) override;
  absl::StatusOr<tlm::v1::Trial> GetBest(int64_t task_id) override;
  absl::StatusOr<std::vector<tlm::v1::Trial>> ListTrials(int64_t task_id) override;
  absl::StatusOr<std::vector<StoredProgram>> ListUnmeasuredPrograms(int64_t task_id) override;
  absl::StatusOr<std::vector<std::string>> ProgramHashes(int64_t task_id) override;
  absl::StatusOr<StoreCounts> Counts() override;

 private:
  SqliteStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<tlm::v1::Task>> QueryTasks(const std::string& where,
                                                        const std::vector<int64_t>& args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<tlm::v1::Trial>> QueryTrials(const std::string& tail, int64_t task_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckTaskExists(int64_t task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_SQLITE_STORE_H_

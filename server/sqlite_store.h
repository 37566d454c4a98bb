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
inline constexpr int kSchemaVersion = 3;

// Closes a SQLite connection (the deleter of SqliteStore's connection).
struct SqliteConnectionCloser {
  void operator()(sqlite3* db) const;
};

// One connection, used under a mutex by every method. The file is in WAL mode
// with synchronous=FULL, so a write that returned OK survives a crash of the
// process or of the machine. Other connections to the file (a backup, a
// second reader) wait up to a few seconds for a lock; a write that still
// cannot get one fails with UNAVAILABLE and changes nothing.
//
// Errors from SQLite name the file and map to: UNAVAILABLE (busy, I/O),
// RESOURCE_EXHAUSTED (disk full), DATA_LOSS (corrupt file), FAILED_PRECONDITION
// (not a database, read-only), INTERNAL (anything else).
class SqliteStore final : public Store {
 public:
  // Opens or creates the file (creating missing parent directories) and
  // migrates it to kSchemaVersion, each migration in its own transaction.
  // FAILED_PRECONDITION, naming the path, for a file that is not a SQLite
  // database, a SQLite database that is not a tlmd dataset, or a dataset
  // whose schema version is newer than kSchemaVersion (such files are left
  // untouched: nothing is written before the version is checked).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // Schema version of the open file (always kSchemaVersion after Open).
  int schema_version() const { return schema_version_; }

  using Store::CreateTask;
  absl::StatusOr<tlm::v1::Task> CreateTask(const tlm::v1::SubmitTaskRequest& request,
                                           int64_t now_unix_ms, const std::string& key) override;
  absl::StatusOr<std::optional<tlm::v1::Task>> FindTask(const std::string& key) override;
  absl::Status SetTaskState(int64_t task_id, tlm::v1::TaskState state, const std::string& message,
                            int64_t now_unix_ms) override;
  absl::Status SetNumTrials(int64_t task_id, int32_t num_trials, int64_t now_unix_ms) override;
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
  absl::StatusOr<int64_t> CreateSession(const tlm::v1::Session& session) override;
  absl::Status UpdateSession(const tlm::v1::Session& session) override;
  absl::StatusOr<tlm::v1::Session> GetSession(int64_t session_id) override;
  absl::StatusOr<std::vector<tlm::v1::Session>> ListSessions(
      int limit, const std::vector<tlm::v1::SessionState>& states) override;

 private:
  using Connection = std::unique_ptr<sqlite3, SqliteConnectionCloser>;

  SqliteStore(std::string path, Connection db, int schema_version)
      : path_(std::move(path)), schema_version_(schema_version), db_(std::move(db)) {}

  absl::StatusOr<std::vector<tlm::v1::Task>> QueryTasks(const std::string& where,
                                                        const std::vector<int64_t>& args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every trial of the task in measurement order, or (best_only) the fastest
  // successful one; with their repeats.
  absl::StatusOr<std::vector<tlm::v1::Trial>> QueryTrials(int64_t task_id, bool best_only)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckTaskExists(int64_t task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `where` (with ORDER BY and LIMIT) binds `args` in order.
  absl::StatusOr<std::vector<tlm::v1::Session>> QuerySessions(const std::string& where,
                                                              const std::vector<int64_t>& args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const int schema_version_;
  absl::Mutex mu_;
  const Connection db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_SQLITE_STORE_H_

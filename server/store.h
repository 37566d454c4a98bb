// The dataset: tasks, programs and measurements.
//
// Contract for every implementation: all methods are thread-safe; a write
// either happens whole or not at all; a method that returns OK has made its
// write durable (a crash afterwards loses nothing it acknowledged). Failures
// are statuses, never exceptions: NOT_FOUND for unknown ids (as documented
// per method), UNAVAILABLE for a transient storage problem worth retrying,
// other codes for storage that needs an operator.
#ifndef TLMD_SERVER_STORE_H_
#define TLMD_SERVER_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tlm/v1/program.pb.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::server {

struct AddedProgram {
  int64_t program_id = 0;
  bool inserted = false;  // false: the task already held this hash
};

struct StoredProgram {
  int64_t program_id = 0;
  int64_t task_id = 0;
  tlm::v1::Program program;
};

struct MeasurementRecord {
  int64_t program_id = 0;
  std::string worker_id;  // empty when the dispatcher gave up on the program
  int32_t attempt = 0;
  tlm::v1::MeasureResult result;
  int64_t measured_unix_ms = 0;
};

struct StoreCounts {
  int64_t tasks = 0;
  int64_t programs = 0;
  int64_t measurements = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Stores a new TASK_STATE_RUNNING task for an already validated request;
  // returns it as GetTask would. Equal workloads (same op, parameters in any
  // order, epilogue, dtype) and equal targets are stored once and shared; a
  // task's workload is returned as it was first stored.
  // A non-empty `key` names the task for its creator (a session's
  // "session/<id>/<slot>/<role>"): keys are unique, ALREADY_EXISTS when one
  // is taken, and FindTask finds the task by it after a restart.
  virtual absl::StatusOr<tlm::v1::Task> CreateTask(const tlm::v1::SubmitTaskRequest& request,
                                                   int64_t now_unix_ms, const std::string& key) = 0;
  // A task without a key.
  absl::StatusOr<tlm::v1::Task> CreateTask(const tlm::v1::SubmitTaskRequest& request,
                                           int64_t now_unix_ms) {
    return CreateTask(request, now_unix_ms, "");
  }
  // The task created with `key`, or nullopt.
  virtual absl::StatusOr<std::optional<tlm::v1::Task>> FindTask(const std::string& key) = 0;
  // Sets state, message and updated time. NOT_FOUND for an unknown task.
  virtual absl::Status SetTaskState(int64_t task_id, tlm::v1::TaskState state,
                                    const std::string& message, int64_t now_unix_ms) = 0;
  // Sets the task's trial count and updated time. NOT_FOUND for an unknown
  // task.
  virtual absl::Status SetNumTrials(int64_t task_id, int32_t num_trials, int64_t now_unix_ms) = 0;
  // The task with its progress: trials_done counts stored measurements,
  // trials_failed those with an error, best_seconds the smallest successful
  // median (0 when none). NOT_FOUND "task 12 not found".
  virtual absl::StatusOr<tlm::v1::Task> GetTask(int64_t task_id) = 0;
  // At most `limit` tasks (no limit when <= 0), newest first; an empty
  // `states` means every state.
  virtual absl::StatusOr<std::vector<tlm::v1::Task>> ListTasks(
      int limit, const std::vector<tlm::v1::TaskState>& states) = 0;

  // Programs are unique per task by hash: storing one again returns the
  // existing id with inserted=false and changes nothing. NOT_FOUND for an
  // unknown task.
  virtual absl::StatusOr<AddedProgram> AddProgram(int64_t task_id,
                                                  const tlm::v1::Program& program) = 0;
  // A program is measured at most once: a second record is ALREADY_EXISTS
  // and the stored one is kept. NOT_FOUND for an unknown program.
  virtual absl::Status RecordMeasurement(const MeasurementRecord& record) = 0;

  // Fastest successful measurement (smallest median) with every repeat;
  // NOT_FOUND when there is none or the task is unknown.
  virtual absl::StatusOr<tlm::v1::Trial> GetBest(int64_t task_id) = 0;
  // Every measured program of the task, in the order results were stored.
  // This and the methods below: NOT_FOUND for an unknown task.
  virtual absl::StatusOr<std::vector<tlm::v1::Trial>> ListTrials(int64_t task_id) = 0;
  // Programs of the task without a measurement, in insertion order.
  virtual absl::StatusOr<std::vector<StoredProgram>> ListUnmeasuredPrograms(int64_t task_id) = 0;
  // Hashes of every program of the task, in insertion order.
  virtual absl::StatusOr<std::vector<std::string>> ProgramHashes(int64_t task_id) = 0;
  // Rows in the whole dataset.
  virtual absl::StatusOr<StoreCounts> Counts() = 0;

  // Stores a new session as given (its id field is ignored) and returns its
  // id.
  virtual absl::StatusOr<int64_t> CreateSession(const tlm::v1::Session& session) = 0;
  // Replaces the stored session of the same id. NOT_FOUND "session 3 not
  // found".
  virtual absl::Status UpdateSession(const tlm::v1::Session& session) = 0;
  // NOT_FOUND "session 3 not found".
  virtual absl::StatusOr<tlm::v1::Session> GetSession(int64_t session_id) = 0;
  // At most `limit` sessions (no limit when <= 0), newest first; an empty
  // `states` means every state.
  virtual absl::StatusOr<std::vector<tlm::v1::Session>> ListSessions(
      int limit, const std::vector<tlm::v1::SessionState>& states) = 0;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_STORE_H_

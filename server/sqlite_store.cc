#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace tlm::server {

void SqliteConnectionCloser::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

namespace {

// Ordered migrations: kMigrations[v - 1] takes a file from schema version
// v - 1 to v. Each runs in its own transaction together with the version bump.
constexpr const char* kMigrations[] = {
    // Version 1: workloads, targets, tasks, programs, measurements.
    R"sql(
CREATE TABLE workloads (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,      -- canonical form: op, params by name, epilogue, dtype
  op TEXT NOT NULL,
  spec BLOB NOT NULL             -- serialized tlm.v1.Workload, as first submitted
);
CREATE TABLE targets (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  device TEXT NOT NULL,
  UNIQUE (kind, device)
);
CREATE TABLE tasks (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  workload_id INTEGER NOT NULL REFERENCES workloads (id),
  target_id INTEGER NOT NULL REFERENCES targets (id),
  num_trials INTEGER NOT NULL,
  sampler TEXT NOT NULL,
  seed INTEGER NOT NULL,         -- the uint64 seed's bit pattern
  measure BLOB NOT NULL,         -- serialized tlm.v1.MeasureOptions
  state INTEGER NOT NULL,        -- tlm.v1.TaskState
  message TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE INDEX tasks_by_state ON tasks (state, id);
CREATE INDEX tasks_by_workload ON tasks (workload_id);
CREATE TABLE programs (
  id INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES tasks (id),
  hash TEXT NOT NULL,
  text TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  UNIQUE (task_id, hash)
);
CREATE TABLE measurements (
  id INTEGER PRIMARY KEY,
  program_id INTEGER NOT NULL UNIQUE REFERENCES programs (id),
  worker_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  error_kind INTEGER NOT NULL,   -- tlm.v1.ErrorKind
  error_stage TEXT NOT NULL,
  error_message TEXT NOT NULL,
  median_seconds REAL NOT NULL,
  number INTEGER NOT NULL,
  build_seconds REAL NOT NULL,
  run_seconds REAL NOT NULL,
  max_abs_error REAL NOT NULL,
  source TEXT NOT NULL,
  measured_ms INTEGER NOT NULL
);
CREATE TABLE measurement_repeats (
  measurement_id INTEGER NOT NULL REFERENCES measurements (id),
  idx INTEGER NOT NULL,
  seconds REAL NOT NULL,
  PRIMARY KEY (measurement_id, idx)
) WITHOUT ROWID;
)sql",
    // Version 2: sessions (a network tuned in rounds within one budget).
    R"sql(
CREATE TABLE sessions (
  id INTEGER PRIMARY KEY,
  state INTEGER NOT NULL,        -- tlm.v1.SessionState
  spec BLOB NOT NULL,            -- serialized tlm.v1.Session
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_state ON sessions (state, id);
)sql",
    // Version 3: a cuda task's device limits (empty for older tasks and cpu),
    // and the key a session creates its tasks under.
    R"sql(
ALTER TABLE tasks ADD COLUMN target_limits BLOB NOT NULL DEFAULT x'';  -- tlm.v1.TargetLimits
ALTER TABLE tasks ADD COLUMN key TEXT;                                  -- NULL: none
CREATE UNIQUE INDEX tasks_by_key ON tasks (key);
)sql",
};
constexpr int kKnownVersions = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersions == kSchemaVersion, "one migration per schema version");

// An error of `db` as a status whose message names the file.
absl::Status SqliteError(sqlite3* db, int rc) {
  const char* file = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  const std::string message =
      absl::StrCat("dataset ", file != nullptr && *file != '\0' ? file : "(unnamed)", ": ",
                   db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
      return absl::DataLossError(message);
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

// A prepared statement, finalized when it goes out of scope. The first
// failure of prepare, bind or step is kept: later calls do nothing and
// status() reports it.
class Statement {
 public:
  Statement(sqlite3* db, absl::string_view sql) : db_(db) {
    Check(sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int64_t v) { return Check(sqlite3_bind_int64(stmt_, ++next_, v)); }
  Statement& Bind(double v) { return Check(sqlite3_bind_double(stmt_, ++next_, v)); }
  Statement& Bind(const std::string& v) {
    return Check(sqlite3_bind_text(stmt_, ++next_, v.data(), static_cast<int>(v.size()),
                                   SQLITE_TRANSIENT));
  }
  Statement& BindBlob(const std::string& v) {
    return Check(sqlite3_bind_blob(stmt_, ++next_, v.data(), static_cast<int>(v.size()),
                                   SQLITE_TRANSIENT));
  }

  // True while a row is available; false at the end or after a failure.
  bool Step() {
    if (rc_ != SQLITE_OK || done_) return false;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) {
      done_ = true;
    } else {
      Check(rc);
    }
    return false;
  }
  // Steps through every row.
  absl::Status Run() {
    while (Step()) {
    }
    return status();
  }
  // Makes the statement ready to run again with new bindings.
  void Reset() {
    if (rc_ != SQLITE_OK) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    next_ = 0;
    done_ = false;
  }

  const absl::Status& status() const { return status_; }
  // Primary SQLite result code of the first failure; SQLITE_OK if none.
  int error_code() const { return rc_ & 0xff; }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }
  std::string Blob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }

 private:
  Statement& Check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) {
      rc_ = rc;
      status_ = SqliteError(db_, rc);
    }
    return *this;
  }

  sqlite3* const db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  absl::Status status_;
  int next_ = 0;
  bool done_ = false;
};

// Runs SQL that binds no values: fixed pragmas, transaction control, migrations.
absl::Status Exec(sqlite3* db, const char* sql) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, rc);
}

// A transaction that is rolled back unless committed. A write transaction
// takes the write lock up front (BEGIN IMMEDIATE), so it waits for other
// writers at its start rather than failing at commit. A read transaction
// gives its statements one snapshot and needs no commit.
class Transaction {
 public:
  enum class Mode { kRead, kWrite };

  Transaction(sqlite3* db, Mode mode) : db_(db) {
    status_ = Exec(db, mode == Mode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
  }
  ~Transaction() {
    // SQLite may already have rolled back after an I/O error or a full disk.
    if (status_.ok() && !committed_ && sqlite3_get_autocommit(db_) == 0) {
      (void)Exec(db_, "ROLLBACK");
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // OK when the transaction began.
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    absl::Status s = Exec(db_, "COMMIT");
    committed_ = s.ok();
    return s;
  }

 private:
  sqlite3* const db_;
  absl::Status status_;
  bool committed_ = false;
};

// Canonical, readable key of a workload: equal for workloads that mean the
// same (parameters in any order, unspecified dtype = float32).
std::string WorkloadKey(const tlm::v1::Workload& w) {
  std::map<std::string, int64_t> params;
  for (const tlm::v1::WorkloadParam& p : w.params()) params[p.name()] = p.value();
  std::vector<std::string> parts;
  for (const auto& [name, value] : params) parts.push_back(absl::StrCat(name, "=", value));
  const tlm::v1::DType dtype =
      w.dtype() == tlm::v1::DTYPE_UNSPECIFIED ? tlm::v1::DTYPE_FLOAT32 : w.dtype();
  return absl::StrCat(w.op(), " ", absl::StrJoin(parts, " "), " epilogue=",
                      w.epilogue().empty() ? "none" : absl::StrJoin(w.epilogue(), ","),
                      " dtype=", tlm::v1::DType_Name(dtype));
}

absl::Status SessionNotFound(int64_t session_id) {
  return absl::NotFoundError(absl::StrCat("session ", session_id, " not found"));
}

absl::Status TaskNotFound(int64_t task_id) {
  return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
}

// Reads the schema version of a file without writing to it: 0 for a new
// (empty) file. Refuses files that are not tlmd datasets.
absl::StatusOr<int> ReadSchemaVersion(sqlite3* db, const std::string& path) {
  bool has_tables = false;
  bool has_version_table = false;
  {
    Statement tables(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
    while (tables.Step()) {
      has_tables = true;
      if (tables.Text(0) == "schema_version") has_version_table = true;
    }
    if (tables.error_code() == SQLITE_NOTADB) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot open dataset ", path, ": it is not a SQLite database (", sqlite3_errmsg(db),
          ")"));
    }
    if (!tables.status().ok()) return tables.status();
  }
  if (!has_tables) return 0;
  if (!has_version_table) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open dataset ", path,
                     ": it is a SQLite database but not a tlmd dataset (no schema_version table)"));
  }
  Statement version(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!version.Step()) {
    if (!version.status().ok()) return version.status();
    return 0;
  }
  return static_cast<int>(version.Int(0));
}

absl::Status ConfigureConnection(sqlite3* db, const std::string& path) {
  {
    Statement wal(db, "PRAGMA journal_mode = WAL");
    if (!wal.Step()) {
      if (!wal.status().ok()) return wal.status();
      return absl::InternalError(absl::StrCat("dataset ", path, ": no answer to journal_mode"));
    }
    const std::string mode = absl::AsciiStrToLower(wal.Text(0));
    if (mode != "wal") {
      return absl::FailedPreconditionError(absl::StrCat(
          "dataset ", path, ": cannot switch to WAL journal mode (it stays ", mode, ")"));
    }
  }
  if (absl::Status s = Exec(db, "PRAGMA synchronous = FULL"); !s.ok()) return s;
  return Exec(db, "PRAGMA foreign_keys = ON");
}

// Applies the migrations after `from`, one transaction each. The version is
// read again inside each transaction, so a migration is applied once even if
// another process migrates the same file at the same time.
absl::Status Migrate(sqlite3* db, const std::string& path, int from) {
  for (int v = from + 1; v <= kSchemaVersion; ++v) {
    Transaction tx(db, Transaction::Mode::kWrite);
    if (!tx.status().ok()) return tx.status();
    if (absl::Status s =
            Exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        !s.ok()) {
      return s;
    }
    int current = 0;
    {
      Statement q(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
      if (!q.Step()) return q.status();
      current = static_cast<int>(q.Int(0));
    }
    if (current >= v) continue;
    if (absl::Status s = Exec(db, kMigrations[v - 1]); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("migrating dataset ", path, " to schema version ",
                                                 v, ": ", s.message()));
    }
    if (absl::Status s = Exec(db, "DELETE FROM schema_version"); !s.ok()) return s;
    {
      Statement bump(db, "INSERT INTO schema_version (version) VALUES (?)");
      if (absl::Status s = bump.Bind(int64_t{v}).Run(); !s.ok()) return s;
    }
    if (absl::Status s = tx.Commit(); !s.ok()) return s;
    spdlog::info("dataset {}: migrated to schema version {}", path, v);
  }
  return absl::OkStatus();
}

constexpr const char* kTaskColumns = R"sql(
  SELECT t.id, t.name, w.spec, g.kind, g.device, t.num_trials, t.sampler, t.seed, t.measure,
         t.state, t.message, t.created_ms, t.updated_ms,
         (SELECT COUNT(*) FROM programs p JOIN measurements m ON m.program_id = p.id
           WHERE p.task_id = t.id),
         (SELECT COUNT(*) FROM programs p JOIN measurements m ON m.program_id = p.id
           WHERE p.task_id = t.id AND m.error_kind != ?1),
         (SELECT MIN(m.median_seconds) FROM programs p JOIN measurements m ON m.program_id = p.id
           WHERE p.task_id = t.id AND m.error_kind = ?1),
         t.target_limits
  FROM tasks t JOIN workloads w ON w.id = t.workload_id JOIN targets g ON g.id = t.target_id
)sql";

tlm::v1::Task TaskFromRow(const Statement& row) {
  tlm::v1::Task t;
  t.set_id(row.Int(0));
  t.set_name(row.Text(1));
  t.mutable_workload()->ParseFromString(row.Blob(2));
  t.mutable_target()->set_kind(row.Text(3));
  t.mutable_target()->set_device(row.Text(4));
  t.set_num_trials(static_cast<int32_t>(row.Int(5)));
  t.set_sampler(row.Text(6));
  t.set_seed(static_cast<uint64_t>(row.Int(7)));
  t.mutable_measure()->ParseFromString(row.Blob(8));
  t.set_state(static_cast<tlm::v1::TaskState>(row.Int(9)));
  t.set_message(row.Text(10));
  t.set_created_unix_ms(row.Int(11));
  t.set_updated_unix_ms(row.Int(12));
  t.set_trials_done(static_cast<int32_t>(row.Int(13)));
  t.set_trials_failed(static_cast<int32_t>(row.Int(14)));
  t.set_best_seconds(row.IsNull(15) ? 0.0 : row.Double(15));
  if (const std::string limits = row.Blob(16); !limits.empty()) {
    t.mutable_target()->mutable_limits()->ParseFromString(limits);
  }
  return t;
}

// Measurements of one task (?1), joined with their programs.
constexpr const char* kTrialColumns = R"sql(
  SELECT m.id, p.id, p.text, p.hash, m.worker_id, m.measured_ms, m.error_kind, m.error_stage,
         m.error_message, m.median_seconds, m.number, m.build_seconds, m.run_seconds,
         m.max_abs_error, m.source
  FROM programs p JOIN measurements m ON m.program_id = p.id WHERE p.task_id = ?1
)sql";

tlm::v1::Trial TrialFromRow(const Statement& row) {
  tlm::v1::Trial t;
  t.set_program_id(row.Int(1));
  t.mutable_program()->set_text(row.Text(2));
  t.mutable_program()->set_hash(row.Text(3));
  t.set_worker_id(row.Text(4));
  t.set_measured_unix_ms(row.Int(5));
  tlm::v1::MeasureResult* r = t.mutable_result();
  r->set_error_kind(static_cast<tlm::v1::ErrorKind>(row.Int(6)));
  r->set_error_stage(row.Text(7));
  r->set_error_message(row.Text(8));
  r->set_median_seconds(row.Double(9));
  r->set_number(static_cast<int32_t>(row.Int(10)));
  r->set_build_seconds(row.Double(11));
  r->set_run_seconds(row.Double(12));
  r->set_max_abs_error(row.Double(13));
  r->set_source(row.Text(14));
  return t;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("the dataset path is empty");
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat("cannot create directory ",
                                                        parent.string(), " for dataset ", path,
                                                        ": ", ec.message()));
    }
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  Connection db(raw);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(raw, rc);
    return absl::Status(s.code(), absl::StrCat("cannot open dataset ", path, ": ",
                                               raw != nullptr ? sqlite3_errmsg(raw)
                                                              : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 5000);

  // Nothing is written before the version is known to be one this code reads.
  absl::StatusOr<int> version = ReadSchemaVersion(db.get(), path);
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("dataset ", path, " has schema version ", *version,
                     " but this tlmd knows versions up to ", kSchemaVersion,
                     "; open it with a newer tlmd"));
  }
  if (absl::Status s = ConfigureConnection(db.get(), path); !s.ok()) return s;
  if (absl::Status s = Migrate(db.get(), path, *version); !s.ok()) return s;
  return std::unique_ptr<SqliteStore>(new SqliteStore(path, std::move(db), kSchemaVersion));
}

absl::StatusOr<tlm::v1::Task> SqliteStore::CreateTask(const tlm::v1::SubmitTaskRequest& request,
                                                      int64_t now_unix_ms, const std::string& key) {
  absl::MutexLock lock(&mu_);
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::Mode::kWrite);
  if (!tx.status().ok()) return tx.status();
  int64_t workload_id = 0;
  {
    // The no-op update makes RETURNING yield the id of an existing row too.
    Statement workload(db,
                       "INSERT INTO workloads (key, op, spec) VALUES (?, ?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id");
    workload.Bind(WorkloadKey(request.workload()))
        .Bind(request.workload().op())
        .BindBlob(request.workload().SerializeAsString());
    if (!workload.Step()) return workload.status();
    workload_id = workload.Int(0);
  }
  int64_t target_id = 0;
  {
    Statement target(db,
                     "INSERT INTO targets (kind, device) VALUES (?, ?) "
                     "ON CONFLICT (kind, device) DO UPDATE SET kind = excluded.kind RETURNING id");
    target.Bind(request.target().kind()).Bind(request.target().device());
    if (!target.Step()) return target.status();
    target_id = target.Int(0);
  }
  if (!key.empty()) {
    Statement taken(db, "SELECT id FROM tasks WHERE key = ?");
    taken.Bind(key);
    if (taken.Step()) {
      return absl::AlreadyExistsError(
          absl::StrCat("task key \"", key, "\" is taken by task ", taken.Int(0)));
    }
    if (!taken.status().ok()) return taken.status();
  }
  int64_t task_id = 0;
  {
    Statement task(db,
                   "INSERT INTO tasks (name, workload_id, target_id, num_trials, sampler, seed, "
                   "measure, state, message, created_ms, updated_ms, target_limits, key) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, NULLIF(?, '')) RETURNING id");
    task.Bind(request.name())
        .Bind(workload_id)
        .Bind(target_id)
        .Bind(int64_t{request.num_trials()})
        .Bind(request.sampler())
        .Bind(static_cast<int64_t>(request.seed()))
        .BindBlob(request.measure().SerializeAsString())
        .Bind(int64_t{tlm::v1::TASK_STATE_RUNNING})
        .Bind(now_unix_ms)
        .Bind(now_unix_ms)
        .BindBlob(request.target().has_limits() ? request.target().limits().SerializeAsString()
                                                : std::string())
        .Bind(key);
    if (!task.Step()) return task.status();
    task_id = task.Int(0);
  }
  if (absl::Status s = tx.Commit(); !s.ok()) return s;
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks = QueryTasks("WHERE t.id = ?2", {task_id});
  if (!tasks.ok()) return tasks.status();
  if (tasks->empty()) return TaskNotFound(task_id);
  return std::move(tasks->front());
}

absl::Status SqliteStore::SetTaskState(int64_t task_id, tlm::v1::TaskState state,
                                       const std::string& message, int64_t now_unix_ms) {
  absl::MutexLock lock(&mu_);
  Statement update(db_.get(),
                   "UPDATE tasks SET state = ?, message = ?, updated_ms = ? WHERE id = ?");
  update.Bind(int64_t{state}).Bind(message).Bind(now_unix_ms).Bind(task_id);
  if (absl::Status s = update.Run(); !s.ok()) return s;
  if (sqlite3_changes(db_.get()) == 0) return TaskNotFound(task_id);
  return absl::OkStatus();
}

absl::Status SqliteStore::SetNumTrials(int64_t task_id, int32_t num_trials, int64_t now_unix_ms) {
  absl::MutexLock lock(&mu_);
  Statement update(db_.get(), "UPDATE tasks SET num_trials = ?, updated_ms = ? WHERE id = ?");
  update.Bind(int64_t{num_trials}).Bind(now_unix_ms).Bind(task_id);
  if (absl::Status s = update.Run(); !s.ok()) return s;
  if (sqlite3_changes(db_.get()) == 0) return TaskNotFound(task_id);
  return absl::OkStatus();
}

// `where` may use ?2, ?3, ... for `args` (?1 is ERROR_KIND_NONE).
absl::StatusOr<std::vector<tlm::v1::Task>> SqliteStore::QueryTasks(
    const std::string& where, const std::vector<int64_t>& args) {
  Statement q(db_.get(), absl::StrCat(kTaskColumns, where));
  q.Bind(int64_t{tlm::v1::ERROR_KIND_NONE});
  for (int64_t a : args) q.Bind(a);
  std::vector<tlm::v1::Task> tasks;
  while (q.Step()) tasks.push_back(TaskFromRow(q));
  if (!q.status().ok()) return q.status();
  return tasks;
}

absl::StatusOr<tlm::v1::Task> SqliteStore::GetTask(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks = QueryTasks("WHERE t.id = ?2", {task_id});
  if (!tasks.ok()) return tasks.status();
  if (tasks->empty()) return TaskNotFound(task_id);
  return std::move(tasks->front());
}

absl::StatusOr<std::optional<tlm::v1::Task>> SqliteStore::FindTask(const std::string& key) {
  absl::MutexLock lock(&mu_);
  int64_t task_id = 0;
  {
    Statement q(db_.get(), "SELECT id FROM tasks WHERE key = ?");
    q.Bind(key);
    if (!q.Step()) {
      if (!q.status().ok()) return q.status();
      return std::nullopt;
    }
    task_id = q.Int(0);
  }
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks = QueryTasks("WHERE t.id = ?2", {task_id});
  if (!tasks.ok()) return tasks.status();
  if (tasks->empty()) return TaskNotFound(task_id);
  return std::move(tasks->front());
}

absl::StatusOr<std::vector<tlm::v1::Task>> SqliteStore::ListTasks(
    int limit, const std::vector<tlm::v1::TaskState>& states) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> args;
  std::string where;
  if (!states.empty()) {
    std::vector<std::string> placeholders;
    for (tlm::v1::TaskState s : states) {
      args.push_back(s);
      placeholders.push_back(absl::StrCat("?", args.size() + 1));
    }
    where = absl::StrCat("WHERE t.state IN (", absl::StrJoin(placeholders, ", "), ") ");
  }
  args.push_back(limit > 0 ? limit : -1);  // a negative LIMIT means none
  return QueryTasks(absl::StrCat(where, "ORDER BY t.id DESC LIMIT ?", args.size() + 1), args);
}

absl::Status SqliteStore::CheckTaskExists(int64_t task_id) {
  Statement q(db_.get(), "SELECT 1 FROM tasks WHERE id = ?");
  q.Bind(task_id);
  if (q.Step()) return absl::OkStatus();
  if (!q.status().ok()) return q.status();
  return TaskNotFound(task_id);
}

absl::StatusOr<AddedProgram> SqliteStore::AddProgram(int64_t task_id,
                                                     const tlm::v1::Program& program) {
  absl::MutexLock lock(&mu_);
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::Mode::kWrite);
  if (!tx.status().ok()) return tx.status();
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  {
    Statement existing(db, "SELECT id FROM programs WHERE task_id = ? AND hash = ?");
    existing.Bind(task_id).Bind(program.hash());
    if (existing.Step()) return AddedProgram{existing.Int(0), false};
    if (!existing.status().ok()) return existing.status();
  }
  int64_t program_id = 0;
  {
    Statement insert(db,
                     "INSERT INTO programs (task_id, hash, text, created_ms) VALUES (?, ?, ?, ?) "
                     "RETURNING id");
    insert.Bind(task_id)
        .Bind(program.hash())
        .Bind(program.text())
        .Bind(absl::ToUnixMillis(absl::Now()));
    if (!insert.Step()) return insert.status();
    program_id = insert.Int(0);
  }
  if (absl::Status s = tx.Commit(); !s.ok()) return s;
  return AddedProgram{program_id, true};
}

absl::Status SqliteStore::RecordMeasurement(const MeasurementRecord& record) {
  absl::MutexLock lock(&mu_);
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::Mode::kWrite);
  if (!tx.status().ok()) return tx.status();
  {
    Statement program(db,
                      "SELECT m.id FROM programs p LEFT JOIN measurements m "
                      "ON m.program_id = p.id WHERE p.id = ?");
    program.Bind(record.program_id);
    if (!program.Step()) {
      if (!program.status().ok()) return program.status();
      return absl::NotFoundError(absl::StrCat("program ", record.program_id, " not found"));
    }
    if (!program.IsNull(0)) {
      return absl::AlreadyExistsError(
          absl::StrCat("program ", record.program_id, " already has a measurement"));
    }
  }
  const tlm::v1::MeasureResult& r = record.result;
  int64_t measurement_id = 0;
  {
    Statement insert(db,
                     "INSERT INTO measurements (program_id, worker_id, attempt, error_kind, "
                     "error_stage, error_message, median_seconds, number, build_seconds, "
                     "run_seconds, max_abs_error, source, measured_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id");
    insert.Bind(record.program_id)
        .Bind(record.worker_id)
        .Bind(int64_t{record.attempt})
        .Bind(int64_t{r.error_kind()})
        .Bind(r.error_stage())
        .Bind(r.error_message())
        .Bind(r.median_seconds())
        .Bind(int64_t{r.number()})
        .Bind(r.build_seconds())
        .Bind(r.run_seconds())
        .Bind(r.max_abs_error())
        .Bind(r.source())
        .Bind(record.measured_unix_ms);
    if (!insert.Step()) return insert.status();
    measurement_id = insert.Int(0);
  }
  {
    Statement repeat(
        db, "INSERT INTO measurement_repeats (measurement_id, idx, seconds) VALUES (?, ?, ?)");
    for (int i = 0; i < r.repeat_seconds_size(); ++i) {
      repeat.Reset();
      repeat.Bind(measurement_id).Bind(int64_t{i}).Bind(r.repeat_seconds(i));
      if (absl::Status s = repeat.Run(); !s.ok()) return s;
    }
  }
  return tx.Commit();
}

absl::StatusOr<std::vector<tlm::v1::Trial>> SqliteStore::QueryTrials(int64_t task_id,
                                                                     bool best_only) {
  sqlite3* db = db_.get();
  std::vector<tlm::v1::Trial> trials;
  absl::flat_hash_map<int64_t, size_t> by_measurement;
  {
    Statement q(db, absl::StrCat(kTrialColumns,
                                 best_only ? "AND m.error_kind = ?2 "
                                             "ORDER BY m.median_seconds, m.id LIMIT 1"
                                           : "ORDER BY m.id"));
    q.Bind(task_id);
    if (best_only) q.Bind(int64_t{tlm::v1::ERROR_KIND_NONE});
    while (q.Step()) {
      by_measurement[q.Int(0)] = trials.size();
      trials.push_back(TrialFromRow(q));
    }
    if (!q.status().ok()) return q.status();
  }
  if (trials.empty()) return trials;
  // One measurement: read its repeats directly; several: read the task's.
  Statement repeats(
      db, trials.size() == 1
              ? "SELECT measurement_id, seconds FROM measurement_repeats "
                "WHERE measurement_id = ? ORDER BY idx"
              : "SELECT r.measurement_id, r.seconds FROM programs p "
                "JOIN measurements m ON m.program_id = p.id "
                "JOIN measurement_repeats r ON r.measurement_id = m.id "
                "WHERE p.task_id = ? ORDER BY r.measurement_id, r.idx");
  repeats.Bind(trials.size() == 1 ? by_measurement.begin()->first : task_id);
  while (repeats.Step()) {
    auto it = by_measurement.find(repeats.Int(0));
    if (it == by_measurement.end()) continue;
    trials[it->second].mutable_result()->add_repeat_seconds(repeats.Double(1));
  }
  if (!repeats.status().ok()) return repeats.status();
  return trials;
}

absl::StatusOr<tlm::v1::Trial> SqliteStore::GetBest(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get(), Transaction::Mode::kRead);
  if (!tx.status().ok()) return tx.status();
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  absl::StatusOr<std::vector<tlm::v1::Trial>> best =
      QueryTrials(task_id, /*best_only=*/true);
  if (!best.ok()) return best.status();
  if (best->empty()) {
    return absl::NotFoundError(
        absl::StrCat("task ", task_id, " has no successful measurement yet"));
  }
  return std::move(best->front());
}

absl::StatusOr<std::vector<tlm::v1::Trial>> SqliteStore::ListTrials(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get(), Transaction::Mode::kRead);
  if (!tx.status().ok()) return tx.status();
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  return QueryTrials(task_id, /*best_only=*/false);
}

absl::StatusOr<std::vector<StoredProgram>> SqliteStore::ListUnmeasuredPrograms(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get(), Transaction::Mode::kRead);
  if (!tx.status().ok()) return tx.status();
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  Statement q(db_.get(),
              "SELECT p.id, p.text, p.hash FROM programs p LEFT JOIN measurements m "
              "ON m.program_id = p.id WHERE p.task_id = ? AND m.id IS NULL ORDER BY p.id");
  q.Bind(task_id);
  std::vector<StoredProgram> out;
  while (q.Step()) {
    StoredProgram p;
    p.program_id = q.Int(0);
    p.task_id = task_id;
    p.program.set_text(q.Text(1));
    p.program.set_hash(q.Text(2));
    out.push_back(std::move(p));
  }
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ProgramHashes(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get(), Transaction::Mode::kRead);
  if (!tx.status().ok()) return tx.status();
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  Statement q(db_.get(), "SELECT hash FROM programs WHERE task_id = ? ORDER BY id");
  q.Bind(task_id);
  std::vector<std::string> out;
  while (q.Step()) out.push_back(q.Text(0));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<StoreCounts> SqliteStore::Counts() {
  absl::MutexLock lock(&mu_);
  Statement q(db_.get(),
              "SELECT (SELECT COUNT(*) FROM tasks), (SELECT COUNT(*) FROM programs), "
              "(SELECT COUNT(*) FROM measurements)");
  if (!q.Step()) {
    if (!q.status().ok()) return q.status();
    return absl::InternalError("counting the dataset returned no row");
  }
  return StoreCounts{q.Int(0), q.Int(1), q.Int(2)};
}

absl::StatusOr<int64_t> SqliteStore::CreateSession(const tlm::v1::Session& session) {
  absl::MutexLock lock(&mu_);
  Statement insert(db_.get(),
                   "INSERT INTO sessions (state, spec, created_ms, updated_ms) VALUES (?, ?, ?, ?)");
  insert.Bind(int64_t{session.state()})
      .BindBlob(session.SerializeAsString())
      .Bind(session.created_unix_ms())
      .Bind(session.updated_unix_ms());
  if (absl::Status s = insert.Run(); !s.ok()) return s;
  return sqlite3_last_insert_rowid(db_.get());
}

absl::Status SqliteStore::UpdateSession(const tlm::v1::Session& session) {
  absl::MutexLock lock(&mu_);
  Statement update(db_.get(), "UPDATE sessions SET state = ?, spec = ?, updated_ms = ? WHERE id = ?");
  update.Bind(int64_t{session.state()})
      .BindBlob(session.SerializeAsString())
      .Bind(session.updated_unix_ms())
      .Bind(session.id());
  if (absl::Status s = update.Run(); !s.ok()) return s;
  if (sqlite3_changes(db_.get()) == 0) return SessionNotFound(session.id());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<tlm::v1::Session>> SqliteStore::QuerySessions(
    const std::string& where, const std::vector<int64_t>& args) {
  Statement q(db_.get(), absl::StrCat("SELECT id, spec FROM sessions ", where));
  for (int64_t a : args) q.Bind(a);
  std::vector<tlm::v1::Session> sessions;
  while (q.Step()) {
    tlm::v1::Session& session = sessions.emplace_back();
    if (!session.ParseFromString(q.Blob(1))) {
      return absl::DataLossError(
          absl::StrCat("dataset ", path_, ": session ", q.Int(0), " is not readable"));
    }
    session.set_id(q.Int(0));
  }
  if (!q.status().ok()) return q.status();
  return sessions;
}

absl::StatusOr<tlm::v1::Session> SqliteStore::GetSession(int64_t session_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<tlm::v1::Session>> found =
      QuerySessions("WHERE id = ?", {session_id});
  if (!found.ok()) return found.status();
  if (found->empty()) return SessionNotFound(session_id);
  return std::move(found->front());
}

absl::StatusOr<std::vector<tlm::v1::Session>> SqliteStore::ListSessions(
    int limit, const std::vector<tlm::v1::SessionState>& states) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> args;
  std::string where;
  if (!states.empty()) {
    std::vector<std::string> placeholders;
    for (tlm::v1::SessionState s : states) {
      args.push_back(s);
      placeholders.push_back("?");
    }
    where = absl::StrCat("WHERE state IN (", absl::StrJoin(placeholders, ", "), ") ");
  }
  args.push_back(limit > 0 ? limit : -1);  // a negative LIMIT means none
  return QuerySessions(absl::StrCat(where, "ORDER BY id DESC LIMIT ?"), args);
}

}  // namespace tlm::server

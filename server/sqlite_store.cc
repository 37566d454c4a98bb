#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace tlm::server {
namespace {

// Ordered migrations: kMigrations[v - 1] takes a file from version v-1 to v.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE workloads (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,      -- canonical form, for deduplication
  op TEXT NOT NULL,
  spec BLOB NOT NULL             -- serialized tlm.v1.Workload
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
  seed INTEGER NOT NULL,         -- uint64 bit pattern
  measure BLOB NOT NULL,         -- serialized tlm.v1.MeasureOptions
  state INTEGER NOT NULL,        -- tlm.v1.TaskState
  message TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE INDEX tasks_by_state ON tasks (state);
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
};
constexpr int kKnownVersions = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersions == kSchemaVersion, "one migration per schema version");

// A prepared statement; finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }

  Statement& Bind(int64_t v) {
    sqlite3_bind_int64(stmt_, ++next_, v);
    return *this;
  }
  Statement& Bind(double v) {
    sqlite3_bind_double(stmt_, ++next_, v);
    return *this;
  }
  Statement& Bind(const std::string& v) {
    sqlite3_bind_text(stmt_, ++next_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(const std::string& v) {
    sqlite3_bind_blob(stmt_, ++next_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }

  // Makes the statement ready to run again with new bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    next_ = 0;
    rc_ = SQLITE_OK;
  }

  // True while a row is available; false at the end or on error (see Done).
  bool Step() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW) return false;
    rc_ = sqlite3_step(stmt_);
    return rc_ == SQLITE_ROW;
  }
  // Runs a statement that returns no rows.
  absl::Status Run() {
    Step();
    return Done();
  }
  // OK when the last Step reached the end cleanly.
  absl::Status Done() const {
    if (rc_ == SQLITE_DONE || rc_ == SQLITE_ROW) return absl::OkStatus();
    if ((sqlite3_extended_errcode(db_) & 0xff) == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
    }
    return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }
  std::string Blob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
  int next_ = 0;
};

absl::Status Exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) == SQLITE_OK) {
    return absl::OkStatus();
  }
  absl::Status status = absl::InternalError(absl::StrCat("sqlite: ", error ? error : "?"));
  sqlite3_free(error);
  return status;
}

// A write transaction, rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { status_ = Exec(db, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (status_.ok() && !committed_) (void)Exec(db_, "ROLLBACK");
  }
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    absl::Status s = Exec(db_, "COMMIT");
    committed_ = s.ok();
    return s;
  }

 private:
  sqlite3* db_;
  absl::Status status_;
  bool committed_ = false;
};

// Canonical key of a workload: parameters sorted by name.
std::string WorkloadKey(const tlm::v1::Workload& w) {
  std::map<std::string, int64_t> params;
  for (const tlm::v1::WorkloadParam& p : w.params()) params[p.name()] = p.value();
  std::vector<std::string> parts;
  for (const auto& [name, value] : params) parts.push_back(absl::StrCat(name, "=", value));
  const int dtype = w.dtype() == tlm::v1::DTYPE_UNSPECIFIED ? tlm::v1::DTYPE_FLOAT32 : w.dtype();
  return absl::StrCat(w.op(), " ", absl::StrJoin(parts, " "),
                      " epilogue=", absl::StrJoin(w.epilogue(), ","),
                      " dtype=", tlm::v1::DType_Name(dtype));
}

absl::Status NotFound(const char* what, int64_t id) {
  return absl::NotFoundError(absl::StrCat(what, " ", id, " not found"));
}

constexpr const char* kTaskColumns = R"sql(
  SELECT t.id, t.name, w.spec, g.kind, g.device, t.num_trials, t.sampler, t.seed, t.measure,
         t.state, t.message, t.created_ms, t.updated_ms,
         (SELECT COUNT(*) FROM measurements m JOIN programs p ON p.id = m.program_id
           WHERE p.task_id = t.id),
         (SELECT COUNT(*) FROM measurements m JOIN programs p ON p.id = m.program_id
           WHERE p.task_id = t.id AND m.error_kind != 1),
         (SELECT MIN(m.median_seconds) FROM measurements m JOIN programs p ON p.id = m.program_id
           WHERE p.task_id = t.id AND m.error_kind = 1)
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
  t.set_best_seconds(row.Double(15));
  return t;
}

constexpr const char* kTrialColumns = R"sql(
  SELECT m.id, p.id, p.text, p.hash, m.worker_id, m.measured_ms, m.error_kind, m.error_stage,
         m.error_message, m.median_seconds, m.number, m.build_seconds, m.run_seconds,
         m.max_abs_error, m.source
  FROM measurements m JOIN programs p ON p.id = m.program_id WHERE p.task_id = ?
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
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create directory ", parent.string(), ": ", ec.message()));
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = absl::FailedPreconditionError(
        absl::StrCat("cannot open dataset ", path, ": ", sqlite3_errstr(rc)));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, db));
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma :
       {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"}) {
    if (absl::Status s = Exec(db, pragma); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot use dataset ", path, ": ", s.message()));
    }
  }
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->Migrate(); !s.ok()) return s;
  return store;
}

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

absl::Status SqliteStore::Migrate() {
  if (absl::Status s =
          Exec(db_, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use dataset ", path_, ": ", s.message()));
  }
  int version = 0;
  {
    Statement q(db_, "SELECT MAX(version) FROM schema_version");
    if (!q.status().ok()) return q.status();
    if (q.Step()) version = static_cast<int>(q.Int(0));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("dataset ", path_, " has schema version ",
                                                      version, " but this tlmd knows up to ",
                                                      kSchemaVersion, "; run a newer tlmd"));
  }
  for (int v = version + 1; v <= kSchemaVersion; ++v) {
    Transaction tx(db_);
    if (!tx.status().ok()) return tx.status();
    if (absl::Status s = Exec(db_, kMigrations[v - 1]); !s.ok()) {
      return absl::InternalError(
          absl::StrCat("migrating ", path_, " to schema version ", v, " failed: ", s.message()));
    }
    Statement bump(db_, "INSERT INTO schema_version (version) VALUES (?)");
    if (absl::Status s = bump.Bind(int64_t{v}).Run(); !s.ok()) return s;
    if (absl::Status s = tx.Commit(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<tlm::v1::Task> SqliteStore::CreateTask(const tlm::v1::SubmitTaskRequest& request,
                                                      int64_t now_unix_ms) {
  int64_t task_id = 0;
  {
    absl::MutexLock lock(&mu_);
    Transaction tx(db_);
    if (!tx.status().ok()) return tx.status();
    int64_t workload_id = 0;
    int64_t target_id = 0;
    {  // RETURNING statements must be finalized before the commit.
      Statement workload(db_,
                         "INSERT INTO workloads (key, op, spec) VALUES (?, ?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id");
      workload.Bind(WorkloadKey(request.workload()))
          .Bind(request.workload().op())
          .BindBlob(request.workload().SerializeAsString());
      if (!workload.Step()) return workload.Done();
      workload_id = workload.Int(0);
      Statement target(
          db_,
          "INSERT INTO targets (kind, device) VALUES (?, ?) "
          "ON CONFLICT (kind, device) DO UPDATE SET kind = excluded.kind RETURNING id");
      target.Bind(request.target().kind()).Bind(request.target().device());
      if (!target.Step()) return target.Done();
      target_id = target.Int(0);
    }
    Statement task(db_,
                   "INSERT INTO tasks (name, workload_id, target_id, num_trials, sampler, seed, "
                   "measure, state, message, created_ms, updated_ms) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)");
    task.Bind(request.name())
        .Bind(workload_id)
        .Bind(target_id)
        .Bind(int64_t{request.num_trials()})
        .Bind(request.sampler())
        .Bind(static_cast<int64_t>(request.seed()))
        .BindBlob(request.measure().SerializeAsString())
        .Bind(int64_t{tlm::v1::TASK_STATE_RUNNING})
        .Bind(now_unix_ms)
        .Bind(now_unix_ms);
    if (absl::Status s = task.Run(); !s.ok()) return s;
    task_id = sqlite3_last_insert_rowid(db_);
    if (absl::Status s = tx.Commit(); !s.ok()) return s;
  }
  return GetTask(task_id);
}

absl::Status SqliteStore::SetTaskState(int64_t task_id, tlm::v1::TaskState state,
                                       const std::string& message, int64_t now_unix_ms) {
  absl::MutexLock lock(&mu_);
  Statement update(db_, "UPDATE tasks SET state = ?, message = ?, updated_ms = ? WHERE id = ?");
  if (absl::Status s =
          update.Bind(int64_t{state}).Bind(message).Bind(now_unix_ms).Bind(task_id).Run();
      !s.ok()) {
    return s;
  }
  if (sqlite3_changes(db_) == 0) return NotFound("task", task_id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<tlm::v1::Task>> SqliteStore::QueryTasks(
    const std::string& where, const std::vector<int64_t>& args) {
  Statement q(db_, absl::StrCat(kTaskColumns, where));
  if (!q.status().ok()) return q.status();
  for (int64_t a : args) q.Bind(a);
  std::vector<tlm::v1::Task> tasks;
  while (q.Step()) tasks.push_back(TaskFromRow(q));
  if (absl::Status s = q.Done(); !s.ok()) return s;
  return tasks;
}

absl::StatusOr<tlm::v1::Task> SqliteStore::GetTask(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks = QueryTasks("WHERE t.id = ?", {task_id});
  if (!tasks.ok()) return tasks.status();
  if (tasks->empty()) return NotFound("task", task_id);
  return std::move(tasks->front());
}

absl::StatusOr<std::vector<tlm::v1::Task>> SqliteStore::ListTasks(
    int limit, const std::vector<tlm::v1::TaskState>& states) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> args(states.begin(), states.end());
  std::string where;
  if (!states.empty()) {
    where = absl::StrCat("WHERE t.state IN (",
                         absl::StrJoin(std::vector<std::string>(states.size(), "?"), ", "), ") ");
  }
  args.push_back(limit);
  return QueryTasks(absl::StrCat(where, "ORDER BY t.id DESC LIMIT ?"), args);
}

absl::Status SqliteStore::CheckTaskExists(int64_t task_id) {
  Statement q(db_, "SELECT 1 FROM tasks WHERE id = ?");
  q.Bind(task_id);
  if (q.Step()) return absl::OkStatus();
  if (absl::Status s = q.Done(); !s.ok()) return s;
  return NotFound("task", task_id);
}

absl::StatusOr<AddedProgram> SqliteStore::AddProgram(int64_t task_id,
                                                     const tlm::v1::Program& program) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  Statement insert(db_,
                   "INSERT INTO programs (task_id, hash, text, created_ms) "
                   "VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (task_id, hash) DO NOTHING RETURNING id");
  insert.Bind(task_id)
      .Bind(program.hash())
      .Bind(program.text())
      .Bind(absl::ToUnixMillis(absl::Now()));
  if (insert.Step()) return AddedProgram{insert.Int(0), true};
  if (absl::Status s = insert.Done(); !s.ok()) return s;
  Statement existing(db_, "SELECT id FROM programs WHERE task_id = ? AND hash = ?");
  existing.Bind(task_id).Bind(program.hash());
  if (existing.Step()) return AddedProgram{existing.Int(0), false};
  return existing.Done();
}

absl::Status SqliteStore::RecordMeasurement(const MeasurementRecord& record) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  if (!tx.status().ok()) return tx.status();
  {
    Statement program(db_, "SELECT 1 FROM programs WHERE id = ?");
    program.Bind(record.program_id);
    if (!program.Step()) {
      if (absl::Status s = program.Done(); !s.ok()) return s;
      return NotFound("program", record.program_id);
    }
  }
  const tlm::v1::MeasureResult& r = record.result;
  Statement insert(db_,
                   "INSERT INTO measurements (program_id, worker_id, attempt, error_kind, "
                   "error_stage, error_message, median_seconds, number, build_seconds, "
                   "run_seconds, max_abs_error, source, measured_ms) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
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
  if (absl::Status s = insert.Run(); !s.ok()) {
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(
          absl::StrCat("program ", record.program_id, " already has a measurement"));
    }
    return s;
  }
  const int64_t measurement_id = sqlite3_last_insert_rowid(db_);
  Statement repeat(
      db_, "INSERT INTO measurement_repeats (measurement_id, idx, seconds) VALUES (?, ?, ?)");
  for (int i = 0; i < r.repeat_seconds_size(); ++i) {
    repeat.Reset();
    if (absl::Status s =
            repeat.Bind(measurement_id).Bind(int64_t{i}).Bind(r.repeat_seconds(i)).Run();
        !s.ok()) {
      return s;
    }
  }
  return tx.Commit();
}

absl::StatusOr<std::vector<tlm::v1::Trial>> SqliteStore::QueryTrials(const std::string& tail,
                                                                     int64_t task_id) {
  Statement q(db_, absl::StrCat(kTrialColumns, tail));
  if (!q.status().ok()) return q.status();
  q.Bind(task_id);
  std::vector<std::pair<int64_t, tlm::v1::Trial>> rows;
  while (q.Step()) rows.emplace_back(q.Int(0), TrialFromRow(q));
  if (absl::Status s = q.Done(); !s.ok()) return s;
  std::vector<tlm::v1::Trial> trials;
  for (auto& [measurement_id, trial] : rows) {
    Statement repeats(
        db_, "SELECT seconds FROM measurement_repeats WHERE measurement_id = ? ORDER BY idx");
    repeats.Bind(measurement_id);
    while (repeats.Step()) trial.mutable_result()->add_repeat_seconds(repeats.Double(0));
    if (absl::Status s = repeats.Done(); !s.ok()) return s;
    trials.push_back(std::move(trial));
  }
  return trials;
}

absl::StatusOr<tlm::v1::Trial> SqliteStore::GetBest(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  absl::StatusOr<std::vector<tlm::v1::Trial>> best =
      QueryTrials("AND m.error_kind = 1 ORDER BY m.median_seconds, m.id LIMIT 1", task_id);
  if (!best.ok()) return best.status();
  if (best->empty()) {
    return absl::NotFoundError(
        absl::StrCat("task ", task_id, " has no successful measurement yet"));
  }
  return std::move(best->front());
}

absl::StatusOr<std::vector<tlm::v1::Trial>> SqliteStore::ListTrials(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  return QueryTrials("ORDER BY m.id", task_id);
}

absl::StatusOr<std::vector<StoredProgram>> SqliteStore::ListUnmeasuredPrograms(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  Statement q(db_,
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
  if (absl::Status s = q.Done(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ProgramHashes(int64_t task_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckTaskExists(task_id); !s.ok()) return s;
  Statement q(db_, "SELECT hash FROM programs WHERE task_id = ? ORDER BY id");
  q.Bind(task_id);
  std::vector<std::string> out;
  while (q.Step()) out.push_back(q.Text(0));
  if (absl::Status s = q.Done(); !s.ok()) return s;
  return out;
}

absl::StatusOr<StoreCounts> SqliteStore::Counts() {
  absl::MutexLock lock(&mu_);
  Statement q(db_,
              "SELECT (SELECT COUNT(*) FROM tasks), (SELECT COUNT(*) FROM programs), "
              "(SELECT COUNT(*) FROM measurements)");
  if (!q.Step()) return q.Done();
  return StoreCounts{q.Int(0), q.Int(1), q.Int(2)};
}

}  // namespace tlm::server

// SqliteStore on real files in a fresh directory per test.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "program/workload.h"
#include "server/sqlite_store.h"
#include "tests/temp_dir.h"

namespace tlm::server {
namespace {

using testing::TempDir;

tlm::v1::SubmitTaskRequest Request(int64_t m, const std::string& kind = "cpu") {
  tlm::v1::SubmitTaskRequest r;
  r.set_name("t");
  *r.mutable_workload() = program::WorkloadToProto(program::DenseWorkload(m, 8, 8));
  r.mutable_target()->set_kind(kind);
  r.set_num_trials(10);
  r.set_sampler("random");
  r.set_seed(0xfedcba9876543210ULL);
  r.mutable_measure()->set_repeat(5);
  return r;
}

tlm::v1::Program Prog(const std::string& text) {
  tlm::v1::Program p;
  p.set_text(text);
  p.set_hash("h:" + text);
  return p;
}

MeasurementRecord Ok(int64_t program_id, double seconds) {
  MeasurementRecord r;
  r.program_id = program_id;
  r.worker_id = "w-1";
  r.attempt = 1;
  r.result.set_error_kind(tlm::v1::ERROR_KIND_NONE);
  r.result.add_repeat_seconds(seconds * 1.1);
  r.result.add_repeat_seconds(seconds);
  r.result.add_repeat_seconds(seconds * 0.9);
  r.result.set_median_seconds(seconds);
  r.result.set_number(4);
  r.result.set_source("loop nest");
  r.measured_unix_ms = 1000;
  return r;
}

MeasurementRecord Failed(int64_t program_id) {
  MeasurementRecord r;
  r.program_id = program_id;
  r.worker_id = "w-2";
  r.attempt = 2;
  r.result.set_error_kind(tlm::v1::ERROR_KIND_WRONG_ANSWER);
  r.result.set_error_stage("check");
  r.result.set_error_message("C[0, 0] differs");
  r.result.set_median_seconds(0.0);
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs statements on the file through a connection of the test's own.
void Exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  INFO(message);
  REQUIRE(rc == SQLITE_OK);
}

// First column of the first row of `sql`, read through a second connection.
std::string Pragma(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string value;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    value = text != nullptr ? reinterpret_cast<const char*>(text) : "NULL";
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

TEST_CASE("a new file gets schema version 3 in WAL mode, in a created directory") {
  TempDir dir;
  const std::string path = dir.file("nested/deeper/tlmd.db");
  auto store = SqliteStore::Open(path);
  REQUIRE(store.ok());
  CHECK((*store)->schema_version() == 3);
  CHECK(Pragma(path, "SELECT MAX(version) FROM schema_version") == "3");
  CHECK(Pragma(path, "PRAGMA journal_mode") == "wal");
}

TEST_CASE("reopening keeps tasks, programs and measurements") {
  TempDir dir;
  const std::string path = dir.file("tlmd.db");
  int64_t task_id = 0;
  int64_t program_id = 0;
  {
    auto store = SqliteStore::Open(path);
    REQUIRE(store.ok());
    tlm::v1::Task task = (*store)->CreateTask(Request(16), 5).value();
    task_id = task.id();
    program_id = (*store)->AddProgram(task_id, Prog("p1")).value().program_id;
    REQUIRE((*store)->RecordMeasurement(Ok(program_id, 0.25)).ok());
  }
  auto store = SqliteStore::Open(path);
  REQUIRE(store.ok());
  tlm::v1::Task task = (*store)->GetTask(task_id).value();
  CHECK(task.state() == tlm::v1::TASK_STATE_RUNNING);
  CHECK(task.seed() == 0xfedcba9876543210ULL);
  CHECK(task.measure().repeat() == 5);
  CHECK(task.workload().params(0).value() == 16);
  CHECK(task.trials_done() == 1);
  CHECK(task.best_seconds() == 0.25);
  tlm::v1::Trial best = (*store)->GetBest(task_id).value();
  CHECK(best.program_id() == program_id);
  CHECK(best.result().repeat_seconds_size() == 3);
  CHECK(best.result().repeat_seconds(2) == Approx(0.225));
  CHECK(best.result().source() == "loop nest");
  CHECK(best.worker_id() == "w-1");
}

// What migration 3 added, removed again.
constexpr char kUndoVersion3[] =
    "DROP INDEX tasks_by_key; ALTER TABLE tasks DROP COLUMN key;"
    "ALTER TABLE tasks DROP COLUMN target_limits;";

TEST_CASE("a version-1 file migrates to sessions and keeps its tasks") {
  TempDir dir;
  const std::string path = dir.file("v1.db");
  int64_t task_id = 0;
  {
    auto store = SqliteStore::Open(path);
    REQUIRE(store.ok());
    task_id = (*store)->CreateTask(Request(16), 5).value().id();
  }
  // What a file written before sessions existed looks like.
  Exec(path,
       absl::StrCat(kUndoVersion3, "DROP TABLE sessions; UPDATE schema_version SET version = 1;"));
  REQUIRE(Pragma(path, "SELECT MAX(version) FROM schema_version") == "1");
  auto store = SqliteStore::Open(path);
  REQUIRE(store.ok());
  CHECK((*store)->schema_version() == 3);
  CHECK((*store)->GetTask(task_id).value().workload().params(0).value() == 16);
  tlm::v1::Session session;
  session.set_state(tlm::v1::SESSION_STATE_RUNNING);
  CHECK((*store)->CreateSession(session).ok());
}

TEST_CASE("a task's target limits are stored; tasks of a version-2 file have none") {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  int64_t old_task = 0;
  {
    auto store = SqliteStore::Open(path);
    REQUIRE(store.ok());
    old_task = (*store)->CreateTask(Request(16, "cuda"), 5).value().id();
  }
  Exec(path, absl::StrCat(kUndoVersion3, "UPDATE schema_version SET version = 2;"));
  auto store = SqliteStore::Open(path);
  REQUIRE(store.ok());
  CHECK((*store)->schema_version() == 3);
  const tlm::v1::Task before = (*store)->GetTask(old_task).value();
  CHECK(before.target().kind() == "cuda");
  CHECK_FALSE(before.target().has_limits());

  tlm::v1::SubmitTaskRequest request = Request(32, "cuda");
  request.mutable_target()->mutable_limits()->set_max_threads_per_block(256);
  request.mutable_target()->mutable_limits()->set_max_shared_bytes_per_block(101376);
  request.mutable_target()->mutable_limits()->set_max_registers_per_block(65536);
  const int64_t id = (*store)->CreateTask(request, 6).value().id();
  const tlm::v1::Task task = (*store)->GetTask(id).value();
  CHECK(task.target().limits().max_threads_per_block() == 256);
  CHECK(task.target().limits().max_shared_bytes_per_block() == 101376);
  CHECK(task.target().limits().max_registers_per_block() == 65536);
  // Same kind and device: one targets row for both tasks.
  CHECK(Pragma(path, "SELECT COUNT(*) FROM targets") == "1");
}

TEST_CASE("a task's key is unique and finds it") {
  TempDir dir;
  auto store = SqliteStore::Open(dir.file("keys.db"));
  REQUIRE(store.ok());
  CHECK_FALSE((*store)->FindTask("session/1/0/tuned").value().has_value());
  const int64_t keyed = (*store)->CreateTask(Request(16), 1, "session/1/0/tuned").value().id();
  (*store)->CreateTask(Request(16), 2).value();  // no key: any number of them
  (*store)->CreateTask(Request(16), 3).value();
  const std::optional<tlm::v1::Task> found = (*store)->FindTask("session/1/0/tuned").value();
  REQUIRE(found.has_value());
  CHECK(found->id() == keyed);
  const absl::StatusOr<tlm::v1::Task> again = (*store)->CreateTask(Request(32), 4, "session/1/0/tuned");
  CHECK(absl::IsAlreadyExists(again.status()));
  CHECK_THAT(std::string(again.status().message()), Catch::Contains("taken by task"));
  CHECK((*store)->Counts()->tasks == 3);
}

TEST_CASE("sessions are stored whole, replaced, listed newest first and filtered by state") {
  TempDir dir;
  auto store = SqliteStore::Open(dir.file("tlmd.db"));
  REQUIRE(store.ok());
  tlm::v1::Session session;
  session.set_state(tlm::v1::SESSION_STATE_RUNNING);
  session.mutable_request()->set_network("bert_tiny");
  session.add_tasks()->set_name("qkv");
  session.set_created_unix_ms(7);
  const int64_t first = (*store)->CreateSession(session).value();
  const int64_t second = (*store)->CreateSession(session).value();
  CHECK(second == first + 1);

  tlm::v1::Session got = (*store)->GetSession(first).value();
  CHECK(got.id() == first);
  CHECK(got.request().network() == "bert_tiny");
  CHECK(got.tasks(0).name() == "qkv");
  CHECK(got.created_unix_ms() == 7);

  got.set_state(tlm::v1::SESSION_STATE_SUCCEEDED);
  got.mutable_tasks(0)->set_task_id(12);
  REQUIRE((*store)->UpdateSession(got).ok());
  CHECK((*store)->GetSession(first).value().tasks(0).task_id() == 12);

  std::vector<tlm::v1::Session> all = (*store)->ListSessions(0, {}).value();
  REQUIRE(all.size() == 2);
  CHECK(all[0].id() == second);
  std::vector<tlm::v1::Session> running =
      (*store)->ListSessions(0, {tlm::v1::SESSION_STATE_RUNNING}).value();
  REQUIRE(running.size() == 1);
  CHECK(running[0].id() == second);
  CHECK((*store)->ListSessions(1, {}).value().size() == 1);

  CHECK((*store)->GetSession(99).status().message() == "session 99 not found");
  got.set_id(99);
  CHECK(absl::IsNotFound((*store)->UpdateSession(got)));
}

TEST_CASE("a file from a newer schema is refused and left as it was") {
  TempDir dir;
  const std::string path = dir.file("future.db");
  Exec(path,
       "CREATE TABLE schema_version (version INTEGER NOT NULL);"
       "INSERT INTO schema_version VALUES (99);");
  const std::string before = ReadFile(path);
  REQUIRE_FALSE(before.empty());
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains("schema version 99"));
  CHECK_THAT(std::string(store.status().message()), Catch::Contains("up to 3"));
  CHECK(Pragma(path, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'tasks'") == "0");
  CHECK(Pragma(path, "SELECT MAX(version) FROM schema_version") == "99");
  CHECK(ReadFile(path) == before);
  CHECK(Pragma(path, "PRAGMA journal_mode") == "delete");
}

TEST_CASE("a SQLite file of another program is refused and left as it was") {
  TempDir dir;
  const std::string path = dir.file("other.db");
  Exec(path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');");
  const std::string before = ReadFile(path);
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains(path));
  CHECK_THAT(std::string(store.status().message()), Catch::Contains("not a tlmd dataset"));
  CHECK(ReadFile(path) == before);
}

TEST_CASE("a file that is not a database gives an error naming it") {
  TempDir dir;
  const std::string path = dir.file("garbage.db");
  std::ofstream(path) << std::string(4096, 'x');
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains(path));
  CHECK_THAT(std::string(store.status().message()), Catch::Contains("not a SQLite database"));
  CHECK(ReadFile(path) == std::string(4096, 'x'));
}

TEST_CASE("workloads and targets are shared between tasks") {
  TempDir dir;
  const std::string path = dir.file("tlmd.db");
  auto store = std::move(SqliteStore::Open(path).value());
  store->CreateTask(Request(16), 1).value();
  store->CreateTask(Request(16), 2).value();
  store->CreateTask(Request(32), 3).value();
  store->CreateTask(Request(32, "cuda"), 4).value();
  // The same workload written differently: parameters reordered, dtype explicit.
  tlm::v1::SubmitTaskRequest reordered = Request(16);
  std::reverse(reordered.mutable_workload()->mutable_params()->begin(),
               reordered.mutable_workload()->mutable_params()->end());
  reordered.mutable_workload()->set_dtype(tlm::v1::DTYPE_FLOAT32);
  tlm::v1::Task same = store->CreateTask(reordered, 5).value();
  // A different epilogue is a different workload.
  tlm::v1::SubmitTaskRequest relu = Request(16);
  *relu.mutable_workload() = program::WorkloadToProto(program::DenseWorkload(16, 8, 8, {program::Epilogue::kRelu}));
  tlm::v1::Task with_relu = store->CreateTask(relu, 6).value();
  CHECK(with_relu.workload().epilogue_size() == 1);
  CHECK(Pragma(path, "SELECT COUNT(*) FROM workloads") == "3");
  CHECK(Pragma(path, "SELECT COUNT(*) FROM targets") == "2");
  CHECK(store->Counts()->tasks == 6);
  CHECK(Pragma(path, "SELECT COUNT(DISTINCT workload_id) FROM tasks WHERE id IN (1, 2, 5)") == "1");
  CHECK(program::WorkloadFromProto(same.workload()).value() ==
        program::WorkloadFromProto(reordered.workload()).value());
}

TEST_CASE("programs are unique per task by hash") {
  TempDir dir;
  auto store = std::move(SqliteStore::Open(dir.file("tlmd.db")).value());
  const int64_t t1 = store->CreateTask(Request(16), 1)->id();
  const int64_t t2 = store->CreateTask(Request(16), 1)->id();
  AddedProgram a = store->AddProgram(t1, Prog("p")).value();
  AddedProgram again = store->AddProgram(t1, Prog("p")).value();
  AddedProgram other_task = store->AddProgram(t2, Prog("p")).value();
  CHECK(a.inserted);
  CHECK_FALSE(again.inserted);
  CHECK(again.program_id == a.program_id);
  CHECK(other_task.inserted);
  CHECK(other_task.program_id != a.program_id);
  CHECK(store->Counts()->programs == 2);
  CHECK(store->ProgramHashes(t1).value() == std::vector<std::string>{"h:p"});
  CHECK(absl::IsNotFound(store->AddProgram(999, Prog("q")).status()));
}

TEST_CASE("a program is measured at most once") {
  TempDir dir;
  auto store = std::move(SqliteStore::Open(dir.file("tlmd.db")).value());
  const int64_t task = store->CreateTask(Request(16), 1)->id();
  const int64_t program = store->AddProgram(task, Prog("p"))->program_id;
  REQUIRE(store->RecordMeasurement(Ok(program, 0.5)).ok());
  MeasurementRecord later = Failed(program);
  later.result.add_repeat_seconds(9.0);
  absl::Status second = store->RecordMeasurement(later);
  CHECK(absl::IsAlreadyExists(second));
  CHECK(store->Counts()->measurements == 1);
  std::vector<tlm::v1::Trial> trials = store->ListTrials(task).value();
  REQUIRE(trials.size() == 1);
  CHECK(trials[0].result().error_kind() == tlm::v1::ERROR_KIND_NONE);
  CHECK(trials[0].result().median_seconds() == 0.5);
  CHECK(trials[0].worker_id() == "w-1");
  CHECK(trials[0].result().repeat_seconds_size() == 3);
  CHECK(trials[0].result().repeat_seconds(0) == Approx(0.55));
  CHECK(absl::IsNotFound(store->RecordMeasurement(Ok(12345, 0.1))));
}

TEST_CASE("a measurement that fails half-way leaves nothing behind") {
  TempDir dir;
  const std::string path = dir.file("tlmd.db");
  auto store = std::move(SqliteStore::Open(path).value());
  const int64_t task = store->CreateTask(Request(16), 1)->id();
  const int64_t program = store->AddProgram(task, Prog("p"))->program_id;
  // The third repeat row is refused, after the measurement row and two repeats went in.
  Exec(path,
       "CREATE TRIGGER refuse_third BEFORE INSERT ON measurement_repeats WHEN NEW.idx = 2 "
       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  absl::Status failed = store->RecordMeasurement(Ok(program, 0.5));
  CHECK_FALSE(failed.ok());
  CHECK_THAT(std::string(failed.message()), Catch::Contains("injected failure"));
  CHECK(store->Counts()->measurements == 0);
  CHECK(Pragma(path, "SELECT COUNT(*) FROM measurement_repeats") == "0");
  CHECK(store->ListUnmeasuredPrograms(task)->size() == 1);

  Exec(path, "DROP TRIGGER refuse_third");
  REQUIRE(store->RecordMeasurement(Ok(program, 0.5)).ok());
  CHECK(store->ListTrials(task)->at(0).result().repeat_seconds_size() == 3);
}

TEST_CASE("progress, best and unmeasured programs of a task") {
  TempDir dir;
  auto store = std::move(SqliteStore::Open(dir.file("tlmd.db")).value());
  const int64_t task = store->CreateTask(Request(16), 1)->id();
  CHECK(absl::IsNotFound(store->GetBest(task).status()));
  std::vector<int64_t> ids;
  for (const char* text : {"a", "b", "c", "d", "e"}) {
    ids.push_back(store->AddProgram(task, Prog(text))->program_id);
  }
  REQUIRE(store->RecordMeasurement(Ok(ids[0], 0.30)).ok());
  REQUIRE(store->RecordMeasurement(Failed(ids[1])).ok());  // median 0 must not count as best
  REQUIRE(store->RecordMeasurement(Ok(ids[3], 0.20)).ok());

  tlm::v1::Task t = store->GetTask(task).value();
  CHECK(t.trials_done() == 3);
  CHECK(t.trials_failed() == 1);
  CHECK(t.best_seconds() == 0.20);
  tlm::v1::Trial best = store->GetBest(task).value();
  CHECK(best.program_id() == ids[3]);
  CHECK(best.program().text() == "d");
  CHECK(best.program().hash() == "h:d");
  CHECK(best.result().median_seconds() == 0.20);
  CHECK(best.result().repeat_seconds_size() == 3);
  CHECK(best.result().number() == 4);
  CHECK(best.measured_unix_ms() == 1000);

  std::vector<tlm::v1::Trial> trials = store->ListTrials(task).value();
  REQUIRE(trials.size() == 3);
  CHECK(trials[1].result().error_kind() == tlm::v1::ERROR_KIND_WRONG_ANSWER);
  CHECK(trials[1].result().error_message() == "C[0, 0] differs");
  CHECK(trials[1].worker_id() == "w-2");

  std::vector<StoredProgram> unmeasured = store->ListUnmeasuredPrograms(task).value();
  REQUIRE(unmeasured.size() == 2);
  CHECK(unmeasured[0].program_id == ids[2]);
  CHECK(unmeasured[0].task_id == task);
  CHECK(unmeasured[1].program.text() == "e");
  CHECK(unmeasured[1].program.hash() == "h:e");
  CHECK(store->ProgramHashes(task).value() ==
        std::vector<std::string>{"h:a", "h:b", "h:c", "h:d", "h:e"});

  // Only failures: no best, best_seconds stays 0.
  const int64_t failing = store->CreateTask(Request(16), 2)->id();
  REQUIRE(store->RecordMeasurement(Failed(store->AddProgram(failing, Prog("x"))->program_id)).ok());
  CHECK(store->GetTask(failing)->trials_failed() == 1);
  CHECK(store->GetTask(failing)->best_seconds() == 0.0);
  absl::Status none = store->GetBest(failing).status();
  CHECK(absl::IsNotFound(none));
  CHECK(std::string(none.message()) ==
        "task " + std::to_string(failing) + " has no successful measurement yet");
}

TEST_CASE("tasks list newest first and filter by state; unknown ids are NOT_FOUND") {
  TempDir dir;
  auto store = std::move(SqliteStore::Open(dir.file("tlmd.db")).value());
  for (int i = 0; i < 4; ++i) REQUIRE(store->CreateTask(Request(8 + i), i).ok());
  REQUIRE(store->SetTaskState(2, tlm::v1::TASK_STATE_SUCCEEDED, "", 10).ok());
  REQUIRE(store->SetTaskState(3, tlm::v1::TASK_STATE_CANCELLED, "by test", 11).ok());
  std::vector<tlm::v1::Task> all = store->ListTasks(10, {}).value();
  REQUIRE(all.size() == 4);
  CHECK(all[0].id() == 4);
  CHECK(all[3].id() == 1);
  CHECK(store->ListTasks(2, {}).value().size() == 2);
  CHECK(store->ListTasks(0, {}).value().size() == 4);
  std::vector<tlm::v1::Task> running = store->ListTasks(10, {tlm::v1::TASK_STATE_RUNNING}).value();
  REQUIRE(running.size() == 2);
  CHECK(running[0].id() == 4);
  CHECK(running[1].id() == 1);
  std::vector<tlm::v1::Task> ended =
      store->ListTasks(10, {tlm::v1::TASK_STATE_SUCCEEDED, tlm::v1::TASK_STATE_CANCELLED}).value();
  REQUIRE(ended.size() == 2);
  CHECK(ended[0].message() == "by test");
  CHECK(ended[0].updated_unix_ms() == 11);
  CHECK(absl::IsNotFound(store->GetTask(77).status()));
  CHECK(std::string(store->GetTask(77).status().message()) == "task 77 not found");
  CHECK(absl::IsNotFound(store->SetTaskState(77, tlm::v1::TASK_STATE_FAILED, "", 1)));
  CHECK(absl::IsNotFound(store->ListTrials(77).status()));
  CHECK(absl::IsNotFound(store->GetBest(77).status()));
  CHECK(absl::IsNotFound(store->ListUnmeasuredPrograms(77).status()));
  CHECK(absl::IsNotFound(store->ProgramHashes(77).status()));
  CHECK(absl::IsNotFound(store->AddProgram(77, Prog("p")).status()));
}

TEST_CASE("concurrent writers keep counts exact") {
  TempDir dir;
  auto store = std::move(SqliteStore::Open(dir.file("tlmd.db")).value());
  const int64_t task = store->CreateTask(Request(16), 1)->id();
  std::atomic<int> unexpected{0};
  std::atomic<int> inserted{0};
  std::atomic<int> recorded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        // Every thread adds the same 50 programs and tries to measure each of them.
        absl::StatusOr<AddedProgram> added = store->AddProgram(task, Prog(std::to_string(i)));
        if (!added.ok()) {
          ++unexpected;
          continue;
        }
        if (added->inserted) ++inserted;
        absl::Status s = store->RecordMeasurement(Ok(added->program_id, 0.001 * (i + 1 + t)));
        if (s.ok()) {
          ++recorded;
        } else if (!absl::IsAlreadyExists(s)) {
          ++unexpected;
        }
        if (!store->GetTask(task).ok()) ++unexpected;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(unexpected == 0);
  CHECK(inserted == 50);
  CHECK(recorded == 50);
  CHECK(store->Counts()->programs == 50);
  CHECK(store->Counts()->measurements == 50);
  CHECK(store->GetTask(task)->trials_done() == 50);
}

}  // namespace
}  // namespace tlm::server

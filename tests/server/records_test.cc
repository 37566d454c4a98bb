// Export and import between two real SQLite datasets.
#include "server/records.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "absl/container/flat_hash_set.h"

#include "program/program.h"
#include "program/sampler.h"
#include "server/sqlite_store.h"
#include "tests/temp_dir.h"

namespace tlm::server {
namespace {

using testing::TempDir;

// A store with one task of `n` measured programs of dense m x 8 x 8.
int64_t AddTask(Store& store, int64_t m, int n, double first_latency) {
  tlm::v1::SubmitTaskRequest request;
  request.set_name("source");
  *request.mutable_workload() = program::WorkloadToProto(program::DenseWorkload(m, 8, 8, {program::Epilogue::kRelu}));
  request.mutable_target()->set_kind("cpu");
  request.set_num_trials(n);
  const int64_t task = store.CreateTask(request, 1)->id();
  const program::Sketch sketch =
      *program::Sketch::Make(program::DenseWorkload(m, 8, 8, {program::Epilogue::kRelu}), "cpu");
  std::mt19937_64 rng(m);
  absl::flat_hash_set<std::string> hashes;
  for (int i = 0; i < n; ++i) {
    tlm::v1::Program program = program::ProgramToProto(program::SampleProgram(sketch, rng));
    while (!hashes.insert(program.hash()).second) {
      program = program::ProgramToProto(program::SampleProgram(sketch, rng));
    }
    const int64_t id = store.AddProgram(task, program)->program_id;
    MeasurementRecord r;
    r.program_id = id;
    r.worker_id = "w-9";
    r.attempt = 1;
    r.result.set_error_kind(i == 1 ? tlm::v1::ERROR_KIND_WRONG_ANSWER : tlm::v1::ERROR_KIND_NONE);
    r.result.set_median_seconds(i == 1 ? 0 : first_latency / (i + 1));
    r.result.add_repeat_seconds(first_latency / (i + 1));
    r.measured_unix_ms = 100 + i;
    REQUIRE(store.RecordMeasurement(r).ok());
  }
  return task;
}

std::vector<tlm::v1::Record> ExportAll(Store& store, const std::vector<int64_t>& ids = {}) {
  std::vector<tlm::v1::Record> out;
  REQUIRE(ExportRecords(store, ids, [&](const tlm::v1::Record& r) {
            out.push_back(r);
            return true;
          }).ok());
  return out;
}

TEST_CASE("records exported from one dataset import into another with the same results") {
  TempDir dir;
  auto source = std::move(SqliteStore::Open(dir.file("a.db")).value());
  const int64_t t1 = AddTask(*source, 16, 5, 1.0);
  AddTask(*source, 32, 3, 2.0);
  std::vector<tlm::v1::Record> records = ExportAll(*source);
  REQUIRE(records.size() == 8);
  CHECK(records[0].task_id() == t1);  // oldest task first
  CHECK(records[0].format_version() == 1);
  CHECK(records[0].worker_id() == "w-9");
  CHECK(ExportAll(*source, {t1}).size() == 5);
  CHECK(
      absl::IsNotFound(ExportRecords(*source, {77}, [](const tlm::v1::Record&) { return true; })));

  auto target = std::move(SqliteStore::Open(dir.file("b.db")).value());
  records.push_back(records[0]);  // a duplicate is stored once
  absl::StatusOr<tlm::v1::ImportRecordsResponse> imported = ImportRecords(*target, records, 5);
  REQUIRE(imported.ok());
  CHECK(imported->imported() == 8);
  CHECK(imported->duplicates() == 1);
  REQUIRE(imported->task_ids_size() == 2);
  tlm::v1::Task copy = target->GetTask(imported->task_ids(0)).value();
  tlm::v1::Task original = source->GetTask(t1).value();
  CHECK(copy.state() == tlm::v1::TASK_STATE_SUCCEEDED);
  CHECK(copy.trials_done() == 5);
  CHECK(copy.num_trials() == 5);
  CHECK(copy.trials_failed() == 1);
  CHECK(copy.best_seconds() == original.best_seconds());
  CHECK(target->GetBest(copy.id())->program().text() == source->GetBest(t1)->program().text());
  CHECK(target->GetBest(copy.id())->measured_unix_ms() == source->GetBest(t1)->measured_unix_ms());
}

TEST_CASE("one bad record rejects the import and stores nothing") {
  TempDir dir;
  auto source = std::move(SqliteStore::Open(dir.file("a.db")).value());
  AddTask(*source, 16, 4, 1.0);
  const std::vector<tlm::v1::Record> good = ExportAll(*source);
  auto target = std::move(SqliteStore::Open(dir.file("b.db")).value());

  struct Case {
    const char* what;
    std::function<void(tlm::v1::Record&)> spoil;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"version", [](auto& r) { r.set_format_version(2); }, "record 2: format_version: expected 1"},
      {"workload", [](auto& r) { r.mutable_workload()->mutable_params(2)->set_value(0); },
       "record 2: workload.params: K must be at least 1"},
      {"hash", [](auto& r) { r.mutable_program()->set_hash("0000000000000000"); },
       "record 2: program: program.hash"},
      {"other workload", [](auto& r) { r.mutable_workload()->mutable_params(0)->set_value(32); },
       "record 2: program: its text describes a different workload"},
      {"error kind", [](auto& r) { r.mutable_result()->clear_error_kind(); },
       "record 2: result.error_kind"},
      {"latency", [](auto& r) { r.mutable_result()->set_median_seconds(-1); },
       "record 2: result.median_seconds"},
      {"target", [](auto& r) { r.clear_target(); }, "record 2: target.kind: missing"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    std::vector<tlm::v1::Record> records = good;
    c.spoil(records[2]);
    absl::StatusOr<tlm::v1::ImportRecordsResponse> r = ImportRecords(*target, records, 1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(r.status().message()), Catch::StartsWith(c.message));
  }
  CHECK(target->Counts()->tasks == 0);
  CHECK(target->Counts()->programs == 0);
}

}  // namespace
}  // namespace tlm::server

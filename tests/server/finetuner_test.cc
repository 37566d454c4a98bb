#include "server/finetuner.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "catch2/catch.hpp"
#include "models/trainer.h"
#include "program/program.h"
#include "program/sampler.h"
#include "server/sqlite_store.h"
#include "tests/temp_dir.h"

namespace tlm::server {
namespace {

// Two dense tasks in a real SQLite file, each with three measured programs:
// two successes and a failure faster than both.
struct Dataset {
  testing::TempDir dir;
  std::unique_ptr<SqliteStore> store = *SqliteStore::Open(dir.file("tlmd.db"));
  std::vector<program::Program> fastest;  // per task, oldest task first
  std::vector<program::Program> all;

  Dataset() {
    std::mt19937_64 rng(9);
    for (int64_t m : {16, 32}) {
      const program::Workload w = program::DenseWorkload(m, 16, 16);
      tlm::v1::SubmitTaskRequest r;
      r.set_name("t");
      *r.mutable_workload() = program::WorkloadToProto(w);
      r.mutable_target()->set_kind("cpu");
      r.set_num_trials(3);
      r.set_sampler("tlm");
      const int64_t task = store->CreateTask(r, 1000)->id();
      const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
      absl::flat_hash_set<std::string> seen;
      std::vector<program::Program> programs;
      while (programs.size() < 3) {
        program::Program p = program::SampleProgram(sketch, rng);
        if (seen.insert(program::Print(p)).second) programs.push_back(p);
      }
      for (size_t i = 0; i < programs.size(); ++i) {
        const int64_t id = store->AddProgram(task, program::ProgramToProto(programs[i]))->program_id;
        MeasurementRecord rec;
        rec.program_id = id;
        rec.worker_id = "w";
        rec.attempt = 1;
        if (i == 2) {
          rec.result.set_error_kind(tlm::v1::ERROR_KIND_RUN_TIMEOUT);
        } else {
          rec.result.set_error_kind(tlm::v1::ERROR_KIND_NONE);
          rec.result.set_median_seconds(i == 1 ? 0.001 : 0.002);
          rec.result.add_repeat_seconds(rec.result.median_seconds());
        }
        REQUIRE(store->RecordMeasurement(rec).ok());
        all.push_back(programs[i]);
      }
      fastest.push_back(programs[1]);
    }
  }
};

std::vector<std::string> Texts(const std::vector<program::Program>& programs) {
  std::vector<std::string> out;
  for (const program::Program& p : programs) out.push_back(program::Print(p));
  return out;
}

std::shared_ptr<const models::Model> TinyModel(const std::vector<program::Program>& corpus) {
  models::ModelConfig c;
  c.d_model = 32;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_ff = 64;
  c.max_len = 96;
  return std::make_shared<const models::Model>(
      *models::Model::Create(c, models::CorpusTokenizer(corpus), 1));
}

tlm::v1::MeasureResult Result(tlm::v1::ErrorKind kind) {
  tlm::v1::MeasureResult r;
  r.set_error_kind(kind);
  return r;
}

TEST_CASE("the fine-tuning set is the fastest successful program of every workload") {
  Dataset d;
  absl::StatusOr<std::vector<program::Program>> best = BestPrograms(*d.store);
  REQUIRE(best.ok());
  REQUIRE(Texts(*best) == Texts(d.fastest));

  // A baseline task of the first workload, slower than its tuned best, adds
  // nothing; once it is faster, it replaces that workload's program.
  const program::Program untuned =
      *program::DefaultProgram(d.fastest[0].workload, d.fastest[0].target);
  tlm::v1::SubmitTaskRequest r;
  r.set_name("baseline");
  *r.mutable_workload() = program::WorkloadToProto(untuned.workload);
  r.mutable_target()->set_kind("cpu");
  r.set_num_trials(1);
  r.set_sampler("default");
  const int64_t task = d.store->CreateTask(r, 2000)->id();
  MeasurementRecord rec;
  rec.program_id = d.store->AddProgram(task, program::ProgramToProto(untuned))->program_id;
  rec.worker_id = "w";
  rec.attempt = 1;
  rec.result.set_error_kind(tlm::v1::ERROR_KIND_NONE);
  rec.result.set_median_seconds(0.5);
  REQUIRE(d.store->RecordMeasurement(rec).ok());
  REQUIRE(Texts(*BestPrograms(*d.store)) == Texts(d.fastest));

  const int64_t faster = d.store->CreateTask(r, 3000)->id();
  rec.program_id = d.store->AddProgram(faster, program::ProgramToProto(untuned))->program_id;
  rec.result.set_median_seconds(0.0001);
  REQUIRE(d.store->RecordMeasurement(rec).ok());
  REQUIRE(Texts(*BestPrograms(*d.store)) == Texts({untuned, d.fastest[1]}));
}

TEST_CASE("after a round of results the fine-tuned model is written and has learned the best") {
  Dataset d;
  ModelSlot slot;
  slot.Publish(TinyModel(d.all));
  FineTuner::Options o;
  o.results_per_round = 3;
  o.train.steps = 150;
  o.train.learning_rate = 3e-3;
  o.train.batch_size = 2;
  o.checkpoint_path = d.dir.file("model.tlm");
  FineTuner tuner(d.store.get(), &slot, o);

  // Failures do not count towards a round.
  for (int i = 0; i < 5; ++i) tuner.OnResult(Result(tlm::v1::ERROR_KIND_RUN_TIMEOUT));
  tuner.OnResult(Result(tlm::v1::ERROR_KIND_NONE));
  tuner.OnResult(Result(tlm::v1::ERROR_KIND_NONE));
  absl::SleepFor(absl::Milliseconds(300));
  REQUIRE(tuner.rounds() == 0);
  tuner.OnResult(Result(tlm::v1::ERROR_KIND_NONE));
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (tuner.rounds() < 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  REQUIRE(tuner.rounds() == 1);

  absl::StatusOr<models::Model> tuned = models::Model::Load(o.checkpoint_path);
  REQUIRE(tuned.ok());
  REQUIRE(tuned->metadata().at("online_sft").rfind("round 1: 2 programs, 150 steps", 0) == 0);
  // The model in use was not touched; the new one writes each task's best greedily.
  REQUIRE(slot.version() == 1);
  models::GenerateOptions greedy;
  greedy.temperature = 0;
  for (const program::Program& best : d.fastest) {
    const program::Sketch sketch = *program::Sketch::Make(best.workload, "cpu");
    REQUIRE(Texts(*tuned->Generate(sketch, 1, greedy)) == Texts({best}));
  }
}

}  // namespace
}  // namespace tlm::server

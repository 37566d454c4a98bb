#include "server/tlm_sampler.h"

#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "absl/time/clock.h"
#include "catch2/catch.hpp"
#include "models/trainer.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/temp_dir.h"

namespace tlm::server {
namespace {

std::shared_ptr<const models::Model> TinyModel(uint64_t seed, const std::string& tag = "") {
  const program::Workload w = program::DenseWorkload(16, 16, 16);
  std::mt19937_64 rng(1);
  const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
  std::vector<program::Program> corpus;
  for (int i = 0; i < 8; ++i) corpus.push_back(program::SampleProgram(sketch, rng));
  models::ModelConfig c;
  c.d_model = 16;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_ff = 32;
  c.max_len = 96;
  models::Model m = *models::Model::Create(c, models::CorpusTokenizer(corpus), seed);
  m.metadata()["tag"] = tag;
  return std::make_shared<const models::Model>(std::move(m));
}

TEST_CASE("tlm is refused without a model and offered with one") {
  ModelSlot slot;
  SamplerRegistry registry;
  AddTlmSampler(registry, &slot, {});
  REQUIRE(registry.names() == std::vector<std::string>{"random", "evolutionary", "default", "tlm"});
  const program::Workload w = program::DenseWorkload(16, 16, 16);
  absl::StatusOr<std::unique_ptr<Sampler>> none = registry.Make("tlm", w, "cpu", 1);
  REQUIRE(none.status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(std::string(none.status().message()).find("--model") != std::string::npos);

  slot.Publish(TinyModel(1));
  absl::StatusOr<std::unique_ptr<Sampler>> sampler = registry.Make("tlm", w, "cpu", 1);
  REQUIRE(sampler.ok());
  absl::flat_hash_set<std::string> seen;
  for (int round = 0; round < 3; ++round) {
    const std::vector<program::Program> batch = (*sampler)->Propose(16, seen);
    REQUIRE(batch.size() == 16);
    for (const program::Program& p : batch) {
      REQUIRE(program::ValidateProgram(p).ok());
      REQUIRE(seen.insert(program::ProgramHash(p)).second);
    }
  }
}

TEST_CASE("a task whose program does not fit the model is refused") {
  ModelSlot slot;
  slot.Publish(TinyModel(1));
  SamplerRegistry registry;
  AddTlmSampler(registry, &slot, {});
  const program::Workload conv = *program::MakeWorkload(
      "conv2d_nchw", {{"N", 1}, {"C", 8}, {"H", 14}, {"W", 14}, {"F", 16}, {"KH", 3}, {"KW", 3},
                      {"P", 1}}, {program::Epilogue::kBias, program::Epilogue::kRelu});
  absl::StatusOr<std::unique_ptr<Sampler>> s = registry.Make("tlm", conv, "cpu", 1);
  REQUIRE(s.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(s.status().message()).find("max_len 96") != std::string::npos);
}

TEST_CASE("the tlm sampler exhausts a small space exactly, with random search's help") {
  ModelSlot slot;
  slot.Publish(TinyModel(2));
  SamplerRegistry registry;
  AddTlmSampler(registry, &slot, {});
  const program::Workload w = program::DenseWorkload(2, 2, 2);
  std::unique_ptr<Sampler> sampler = *registry.Make("tlm", w, "cpu", 3);
  const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
  std::vector<int64_t> prefix;
  std::function<size_t()> count = [&]() -> size_t {
    if (prefix.size() == sketch.slots().size()) return 1;
    size_t n = 0;
    for (int64_t v : sketch.Candidates(prefix.size(), prefix)) {
      prefix.push_back(v);
      n += count();
      prefix.pop_back();
    }
    return n;
  };
  const size_t size = count();
  absl::flat_hash_set<std::string> seen;
  while (true) {
    const std::vector<program::Program> batch = sampler->Propose(50, seen);
    for (const program::Program& p : batch) {
      REQUIRE(seen.insert(program::ProgramHash(p)).second);
    }
    if (batch.size() < 50) break;
  }
  INFO(size << " programs in the space");
  REQUIRE(seen.size() == size);
}

TEST_CASE("publishing swaps the model; a holder of the old one keeps it") {
  ModelSlot slot;
  REQUIRE(slot.Get() == nullptr);
  REQUIRE(slot.Publish(TinyModel(1, "first")) == 1);
  const std::shared_ptr<const models::Model> in_flight = slot.Get();
  REQUIRE(slot.Publish(TinyModel(2, "second")) == 2);
  REQUIRE(slot.Get()->metadata().at("tag") == "second");
  REQUIRE(in_flight->metadata().at("tag") == "first");
  const program::Sketch sketch = *program::Sketch::Make(program::DenseWorkload(16, 16, 16), "cpu");
  REQUIRE(in_flight->Generate(sketch, 4, {})->size() == 4);
}

TEST_CASE("a replaced checkpoint file is picked up; a broken one is not") {
  testing::TempDir dir;
  const std::string path = dir.file("model.tlm");
  REQUIRE(TinyModel(1, "first")->Save(path).ok());
  ModelSlot slot;
  REQUIRE(slot.PublishFile(path).ok());
  CheckpointWatcher watcher(path, &slot, absl::Milliseconds(10));
  auto wait_for_version = [&](int64_t v) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (slot.version() < v && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    return slot.version();
  };

  REQUIRE(TinyModel(2, "second")->Save(path).ok());
  REQUIRE(wait_for_version(2) == 2);
  REQUIRE(slot.Get()->metadata().at("tag") == "second");

  std::ofstream(path, std::ios::trunc) << "not a checkpoint";
  absl::SleepFor(absl::Milliseconds(200));
  REQUIRE(slot.version() == 2);
  REQUIRE(slot.Get()->metadata().at("tag") == "second");
  REQUIRE(slot.PublishFile(path).code() == absl::StatusCode::kDataLoss);

  REQUIRE(TinyModel(3, "third")->Save(path).ok());
  REQUIRE(wait_for_version(3) == 3);
  REQUIRE(slot.Get()->metadata().at("tag") == "third");
}

}  // namespace
}  // namespace tlm::server

#include "models/model.h"

#include <c10/util/Exception.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "catch2/catch.hpp"
#include "models/model_impl.h"
#include "models/trainer.h"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"
#include "tests/temp_dir.h"

namespace tlm::models {
namespace {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.d_model = 32;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_ff = 64;
  c.max_len = 160;
  return c;
}

std::vector<program::Program> Corpus(int per_sketch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<program::Program> out;
  for (const program::Workload& w : testing::SmallWorkloads()) {
    for (const std::string& target : program::TargetKinds()) {
      const program::Sketch sketch = *program::Sketch::Make(w, target);
      for (int i = 0; i < per_sketch; ++i) out.push_back(program::SampleProgram(sketch, rng));
    }
  }
  return out;
}

Model TinyModel(uint64_t seed = 7) {
  return *Model::Create(TinyConfig(), CorpusTokenizer(Corpus(2, 1)), seed);
}

std::vector<std::string> Texts(const std::vector<program::Program>& programs) {
  std::vector<std::string> out;
  for (const program::Program& p : programs) out.push_back(program::Print(p));
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Recomputes the trailing FNV-1a 64 checksum after an edit.
std::string Resealed(std::string bytes) {
  bytes.resize(bytes.size() - 8);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((h >> (8 * i)) & 0xff));
  return bytes;
}

TEST_CASE("constrained decoding yields only valid programs, for every op and target") {
  const Model model = TinyModel();
  for (const program::Workload& w : testing::SmallWorkloads()) {
    for (const std::string& target : program::TargetKinds()) {
      const program::Sketch sketch = *program::Sketch::Make(w, target);
      GenerateOptions o;
      o.seed = 11;
      absl::StatusOr<std::vector<program::Program>> programs = model.Generate(sketch, 1000, o);
      REQUIRE(programs.ok());
      REQUIRE(programs->size() == 1000);
      for (const program::Program& p : *programs) {
        INFO(program::WorkloadSummary(w) << " on " << target << ": " << program::Print(p));
        REQUIRE(program::ValidateProgram(p).ok());
        const absl::StatusOr<program::Program> parsed = program::Parse(program::Print(p));
        INFO(parsed.status());
        REQUIRE(parsed.ok());
      }
    }
  }
}

TEST_CASE("a tiny model overfits four programs and reproduces them greedily") {
  std::mt19937_64 rng(5);
  std::vector<program::Program> four;
  const std::vector<program::Workload> workloads = testing::SmallWorkloads();
  for (int i : {0, 2, 3, 8}) {
    four.push_back(program::SampleProgram(*program::Sketch::Make(workloads[i], "cpu"), rng));
  }
  Model model = *Model::Create(TinyConfig(), CorpusTokenizer(four), 3);
  const double before = model.Evaluate(four)->loss;
  TrainOptions o;
  o.steps = 300;
  o.batch_size = 4;
  o.learning_rate = 3e-3;
  o.warmup_steps = 20;
  o.log_every = 100;
  absl::StatusOr<TrainReport> report = Train(model, four, o);
  REQUIRE(report.ok());
  REQUIRE(report->curve.size() == 3);
  const double after = model.Evaluate(four)->loss;
  INFO("loss before " << before << ", after " << after);
  REQUIRE(after < 0.05);
  REQUIRE(after < before / 10);
  GenerateOptions greedy;
  greedy.temperature = 0;
  for (const program::Program& p : four) {
    const program::Sketch sketch = *program::Sketch::Make(p.workload, p.target);
    absl::StatusOr<std::vector<program::Program>> out = model.Generate(sketch, 3, greedy);
    REQUIRE(out.ok());
    for (const program::Program& g : *out) REQUIRE(program::Print(g) == program::Print(p));
  }
}

TEST_CASE("values beyond the number tokens are drawn, scored as the largest number token") {
  const Model model = TinyModel();
  // 2053 is prime and above the number tokens (0..1024): the j axis splits
  // only as 1 x 2053, and the model has a token for 1 alone.
  const program::Sketch sketch = *program::Sketch::Make(program::DenseWorkload(1, 2053, 16), "cpu");
  auto with_2053 = [](const std::vector<program::Program>& programs) {
    return std::count_if(programs.begin(), programs.end(), [](const program::Program& p) {
      return std::find(p.decisions.begin(), p.decisions.end(), 2053) != p.decisions.end();
    });
  };
  GenerateOptions o;
  o.seed = 3;
  absl::StatusOr<std::vector<program::Program>> plain = model.Generate(sketch, 32, o);
  REQUIRE(plain.ok());
  REQUIRE_FALSE(plain->empty());
  REQUIRE(with_2053(*plain) > 0);
  for (const program::Program& p : *plain) REQUIRE(program::ValidateProgram(p).ok());
  o.explore = 0.5;
  absl::StatusOr<std::vector<program::Program>> explored = model.Generate(sketch, 32, o);
  REQUIRE(explored.ok());
  REQUIRE(with_2053(*explored) > 0);
  for (const program::Program& p : *explored) REQUIRE(program::ValidateProgram(p).ok());
}

TEST_CASE("generation with the KV cache equals generation without it") {
  const Model model = TinyModel();
  for (const program::Workload& w : testing::SmallWorkloads()) {
    const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
    GenerateOptions with;
    with.seed = 99;
    with.batch_size = 8;
    GenerateOptions without = with;
    without.use_kv_cache = false;
    REQUIRE(Texts(*model.Generate(sketch, 16, with)) ==
            Texts(*model.Generate(sketch, 16, without)));
  }
}

TEST_CASE("the KV cache computes the same logits as a full forward") {
  Model model = TinyModel();
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = torch::randint(5, 200, {3, 20}, torch::kLong);
  const torch::Tensor full = model.impl().net->forward(tokens);
  KvCache cache;
  torch::Tensor pieces = model.impl().net->forward(tokens.slice(1, 0, 12), &cache);
  for (int64_t i = 12; i < 20; ++i) {
    pieces = torch::cat({pieces, model.impl().net->forward(tokens.slice(1, i, i + 1), &cache)}, 1);
  }
  REQUIRE(cache.length() == 20);
  REQUIRE(torch::allclose(full, pieces, 1e-4, 1e-5));
}

TEST_CASE("excluded and repeated programs are skipped; a small space runs out") {
  const Model model = TinyModel();
  const program::Workload w = testing::SmallWorkloads()[10];  // add 8x16 + relu
  const program::Sketch sketch = *program::Sketch::Make(w, "cpu");
  absl::flat_hash_set<std::string> exclude;
  GenerateOptions o;
  o.exclude = &exclude;
  const std::vector<program::Program> first = *model.Generate(sketch, 20, o);
  REQUIRE(first.size() == 20);
  for (const program::Program& p : first) {
    REQUIRE(exclude.insert(program::ProgramHash(p)).second);  // no repeats
  }
  o.seed = 2;
  const std::vector<program::Program> second = *model.Generate(sketch, 20, o);
  for (const program::Program& p : second) {
    REQUIRE_FALSE(exclude.contains(program::ProgramHash(p)));
  }
  // Ask for far more than the space holds: fewer come back, all distinct.
  o.max_attempts_per_program = 2;
  const std::vector<program::Program> many = *model.Generate(sketch, 2000, o);
  REQUIRE(many.size() < 2000);
  absl::flat_hash_set<std::string> hashes;
  for (const program::Program& p : many) {
    REQUIRE(hashes.insert(program::ProgramHash(p)).second);
    REQUIRE_FALSE(exclude.contains(program::ProgramHash(p)));
  }
}

TEST_CASE("a prompt longer than max_len is refused") {
  ModelConfig c = TinyConfig();
  c.max_len = 16;
  const Model model = *Model::Create(c, Tokenizer(), 1);
  const program::Sketch sketch = *program::Sketch::Make(testing::SmallWorkloads()[3], "cpu");
  absl::StatusOr<std::vector<program::Program>> out = model.Generate(sketch, 1, {});
  REQUIRE(out.status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(out.status().message().find("max_len 16") != std::string::npos);
}

TEST_CASE("bad configs are refused naming the field") {
  ModelConfig c = TinyConfig();
  c.n_head = 3;
  REQUIRE(Model::Create(c, Tokenizer(), 1).status().message().find("n_head") != std::string::npos);
  c = TinyConfig();
  c.max_len = 0;
  REQUIRE(Model::Create(c, Tokenizer(), 1).status().message().find("max_len") != std::string::npos);
}

TEST_CASE("a checkpoint round-trips config, vocabulary, metadata and weights") {
  testing::TempDir dir;
  Model model = TinyModel();
  model.metadata()["trained_on"] = "bert_tiny cpu, 10 steps";
  REQUIRE(model.Save(dir.file("m.tlm")).ok());
  absl::StatusOr<Model> back = Model::Load(dir.file("m.tlm"));
  INFO(back.status());
  REQUIRE(back.ok());
  REQUIRE(back->config() == model.config());
  REQUIRE(back->tokenizer().Serialize() == model.tokenizer().Serialize());
  REQUIRE(back->metadata() == model.metadata());
  REQUIRE(back->num_parameters() == model.num_parameters());
  const program::Sketch sketch = *program::Sketch::Make(testing::SmallWorkloads()[0], "cpu");
  GenerateOptions o;
  o.seed = 5;
  REQUIRE(Texts(*back->Generate(sketch, 32, o)) == Texts(*model.Generate(sketch, 32, o)));
  REQUIRE(Describe(*back).find("trained_on: bert_tiny cpu, 10 steps") != std::string::npos);
}

TEST_CASE("wrong, truncated, corrupted or mismatched checkpoints give clear errors") {
  testing::TempDir dir;
  const Model model = TinyModel();
  const std::string path = dir.file("m.tlm");
  REQUIRE(model.Save(path).ok());
  const std::string good = ReadFile(path);
  auto load_error = [&](const std::string& bytes) {
    WriteFile(dir.file("bad.tlm"), bytes);
    absl::StatusOr<Model> m = Model::Load(dir.file("bad.tlm"));
    REQUIRE_FALSE(m.ok());
    REQUIRE(m.status().message().find(dir.file("bad.tlm")) != std::string::npos);
    return std::string(m.status().message());
  };

  REQUIRE(Model::Load(dir.file("missing.tlm")).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(load_error("").find("wrong magic") != std::string::npos);
  REQUIRE(load_error("PK\x03\x04 not ours").find("wrong magic") != std::string::npos);
  REQUIRE(load_error(good.substr(0, good.size() / 2)).find("truncated") != std::string::npos);
  REQUIRE(load_error(good.substr(0, 10)).find("truncated") != std::string::npos);
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x40;
  REQUIRE(load_error(flipped).find("checksum") != std::string::npos);
  std::string version = good;
  version[8] = 9;
  REQUIRE(load_error(version).find("format version 9") != std::string::npos);

  // A config that does not fit the weights (d_model 32 -> 16).
  std::string mismatched = good;
  const size_t at = mismatched.find("d_model 32");
  REQUIRE(at != std::string::npos);
  mismatched.replace(at, 10, "d_model 16");
  REQUIRE(load_error(Resealed(mismatched)).find("has shape") != std::string::npos);

  // Weights that are not a libtorch archive: libtorch throws, Load returns.
  std::string garbage = good;
  const size_t weights = garbage.find("PK\x03\x04");
  REQUIRE(weights != std::string::npos);
  for (size_t i = weights; i < weights + 64; ++i) garbage[i] = 'x';
  REQUIRE(load_error(Resealed(garbage)).find("libtorch") != std::string::npos);

  // The good file is still good.
  REQUIRE(Model::Load(path).ok());
}

TEST_CASE("a libtorch exception becomes a status") {
  const absl::Status s = CatchTorch("reshaping", [] {
    torch::ones({2}).view({3});
    return absl::OkStatus();
  });
  INFO(s);
  REQUIRE(s.code() == absl::StatusCode::kInternal);
  REQUIRE(s.message().find("reshaping: libtorch:") != std::string::npos);
}

TEST_CASE("pretraining lowers the held-out loss") {
  const std::vector<program::Program> train = Corpus(30, 21);
  const std::vector<program::Program> held_out = Corpus(5, 22);
  Model model = *Model::Create(TinyConfig(), CorpusTokenizer(train), 4);
  const double before = model.Evaluate(held_out)->loss;
  TrainOptions o;
  o.steps = 150;
  o.batch_size = 16;
  o.learning_rate = 3e-3;
  o.log_every = 50;
  REQUIRE(Train(model, train, o).ok());
  const double after = model.Evaluate(held_out)->loss;
  INFO("held-out loss before " << before << ", after " << after);
  REQUIRE(after < before * 0.7);
}

TEST_CASE("training refuses bad options and saves periodic checkpoints") {
  testing::TempDir dir;
  Model model = TinyModel();
  const std::vector<program::Program> corpus = Corpus(1, 3);
  TrainOptions o;
  o.steps = 0;
  REQUIRE(Train(model, corpus, o).status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(Train(model, {}, TrainOptions{}).status().code() == absl::StatusCode::kInvalidArgument);
  o.steps = 4;
  o.checkpoint_every = 2;
  REQUIRE_FALSE(Train(model, corpus, o).ok());  // no path
  o.checkpoint_path = dir.file("ckpt.tlm");
  REQUIRE(Train(model, corpus, o).ok());
  INFO(Model::Load(o.checkpoint_path).status());
  REQUIRE(Model::Load(o.checkpoint_path).ok());
}

}  // namespace
}  // namespace tlm::models

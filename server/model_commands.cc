#include "server/model_commands.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/workload_spec.h"
#include "models/model.h"
#include "models/trainer.h"
#include "program/networks.h"
#include "program/program.h"
#include "server/finetuner.h"
#include "server/sqlite_store.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, out, "", "pretrain, sft: checkpoint file to write");
ABSL_FLAG(std::string, networks, "bert_tiny", "pretrain: networks whose tasks make the corpus");
ABSL_FLAG(std::string, eval_networks, "",
          "pretrain: held-out networks whose random programs measure perplexity");
ABSL_FLAG(std::string, targets, "cpu", "pretrain: target kinds of the corpus");
ABSL_FLAG(int32_t, per_task, 256, "pretrain: random programs per task in the corpus");
ABSL_FLAG(int64_t, steps, 0, "pretrain, sft: optimizer steps (0: 1000 pretrain, 200 sft)");
ABSL_FLAG(int32_t, batch_size, 32, "pretrain, sft: programs per step");
ABSL_FLAG(double, lr, 0, "pretrain, sft: peak learning rate (0: 2e-3 pretrain, 3e-4 sft)");
ABSL_FLAG(int64_t, d_model, 128, "pretrain: model width");
ABSL_FLAG(int64_t, n_layer, 4, "pretrain: transformer blocks");
ABSL_FLAG(int64_t, n_head, 4, "pretrain: attention heads");
ABSL_FLAG(int64_t, d_ff, 512, "pretrain: feed-forward width");
ABSL_FLAG(int64_t, max_len, 320, "pretrain: longest program in tokens");
ABSL_FLAG(int32_t, train_threads, 0, "pretrain, sft: libtorch threads (0: its default)");
ABSL_FLAG(uint64_t, seed, 1, "pretrain, sft, generate: random seed");
ABSL_FLAG(int32_t, count, 8, "generate: programs to generate");
ABSL_FLAG(std::string, target, "cpu", "generate: target kind");
ABSL_FLAG(std::string, epilogue, "", "generate: fused epilogue, e.g. bias,gelu");
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, db);
ABSL_DECLARE_FLAG(double, tlm_temperature);
ABSL_DECLARE_FLAG(int32_t, tlm_top_k);
ABSL_DECLARE_FLAG(double, tlm_explore);

namespace tlm::server {

const char kModelCommandsUsage[] =
    "Model commands:\n"
    "  tlmd pretrain --out=FILE [--networks=bert_tiny] [--targets=cpu] [--per_task=256]\n"
    "        [--steps=1000] [--eval_networks=...] [--d_model=128 --n_layer=4 ...]\n"
    "      pretrains a model on random valid programs of the networks' tasks\n"
    "  tlmd sft --model=FILE --db=FILE --out=FILE [--steps=200]\n"
    "      fine-tunes on the best measured program of every workload in the dataset\n"
    "  tlmd inspect FILE\n"
    "      describes a checkpoint\n"
    "  tlmd generate --model=FILE [--target=cpu] [--count=8] [--epilogue=...] OP NAME=INT...\n"
    "      prints programs the model generates for a workload\n";

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "tlmd: %s\n", s.ToString().c_str());
  return 1;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "tlmd: %s\n%s", why.c_str(), kModelCommandsUsage);
  return 2;
}

std::vector<std::string> List(const std::string& flag) {
  return absl::StrSplit(flag, ',', absl::SkipEmpty());
}

models::TrainOptions TrainOptionsFromFlags(int64_t default_steps, double default_lr) {
  models::TrainOptions o;
  o.steps = absl::GetFlag(FLAGS_steps) > 0 ? absl::GetFlag(FLAGS_steps) : default_steps;
  o.learning_rate = absl::GetFlag(FLAGS_lr) > 0 ? absl::GetFlag(FLAGS_lr) : default_lr;
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.warmup_steps = std::min<int64_t>(100, o.steps / 10);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.threads = absl::GetFlag(FLAGS_train_threads);
  o.log_every = std::max<int64_t>(1, o.steps / 20);
  o.on_log = [](int64_t step, double loss, double lr) {
    spdlog::info("step {:>6}  loss {:.4f}  lr {:.2e}", step, loss, lr);
  };
  return o;
}

// Trains, saves to --out and records what was done in the metadata.
int TrainAndSave(models::Model& model, const std::vector<program::Program>& programs,
                 const models::TrainOptions& o, const std::string& what) {
  absl::StatusOr<models::TrainReport> report = models::Train(model, programs, o);
  if (!report.ok()) return Fail(report.status());
  model.metadata()[what] =
      absl::StrCat(programs.size(), " programs, ", o.steps, " steps, final loss ",
                   report->curve.back().loss, ", ", static_cast<int>(report->seconds), " s");
  if (absl::Status s = model.Save(absl::GetFlag(FLAGS_out)); !s.ok()) return Fail(s);
  spdlog::info("{} done in {:.1f} s; wrote {}", what, report->seconds, absl::GetFlag(FLAGS_out));
  return 0;
}

int Pretrain() {
  if (absl::GetFlag(FLAGS_out).empty()) return Usage("pretrain needs --out=FILE");
  const std::vector<std::string> networks = List(absl::GetFlag(FLAGS_networks));
  const std::vector<std::string> targets = List(absl::GetFlag(FLAGS_targets));
  absl::StatusOr<std::vector<program::Program>> corpus = models::PretrainCorpus(
      networks, targets, absl::GetFlag(FLAGS_per_task), absl::GetFlag(FLAGS_seed));
  if (!corpus.ok()) return Fail(corpus.status());
  models::ModelConfig config;
  config.d_model = absl::GetFlag(FLAGS_d_model);
  config.n_layer = absl::GetFlag(FLAGS_n_layer);
  config.n_head = absl::GetFlag(FLAGS_n_head);
  config.d_ff = absl::GetFlag(FLAGS_d_ff);
  config.max_len = absl::GetFlag(FLAGS_max_len);
  absl::StatusOr<models::Model> model =
      models::Model::Create(config, models::CorpusTokenizer(*corpus), absl::GetFlag(FLAGS_seed));
  if (!model.ok()) return Fail(model.status());
  spdlog::info("pretraining a {}-parameter model on {} programs of {} on {}",
               model->num_parameters(), corpus->size(), absl::StrJoin(networks, ", "),
               absl::StrJoin(targets, ", "));
  model->metadata()["pretrain_corpus"] =
      absl::StrCat(absl::StrJoin(networks, ","), " on ", absl::StrJoin(targets, ","), ", ",
                   absl::GetFlag(FLAGS_per_task), " random programs per task");
  const std::vector<std::string> held_out = List(absl::GetFlag(FLAGS_eval_networks));
  if (int rc = TrainAndSave(*model, *corpus, TrainOptionsFromFlags(1000, 2e-3), "pretrain");
      rc != 0 || held_out.empty()) {
    return rc;
  }
  absl::StatusOr<std::vector<program::Program>> eval =
      models::PretrainCorpus(held_out, targets, 16, absl::GetFlag(FLAGS_seed) + 1);
  if (!eval.ok()) return Fail(eval.status());
  absl::StatusOr<models::Model::Evaluation> e = model->Evaluate(*eval);
  if (!e.ok()) return Fail(e.status());
  spdlog::info("held-out ({}): loss {:.4f}, perplexity {:.3f} over {} decision tokens",
               absl::StrJoin(held_out, ", "), e->loss, e->perplexity, e->tokens);
  model->metadata()["held_out_perplexity"] =
      absl::StrCat(e->perplexity, " on ", absl::StrJoin(held_out, ","));
  if (absl::Status s = model->Save(absl::GetFlag(FLAGS_out)); !s.ok()) return Fail(s);
  return 0;
}

int Sft() {
  if (absl::GetFlag(FLAGS_out).empty() || absl::GetFlag(FLAGS_model).empty()) {
    return Usage("sft needs --model=FILE (the starting checkpoint) and --out=FILE");
  }
  absl::StatusOr<models::Model> model = models::Model::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Fail(model.status());
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(absl::GetFlag(FLAGS_db));
  if (!store.ok()) return Fail(store.status());
  absl::StatusOr<std::vector<program::Program>> best = BestPrograms(**store);
  if (!best.ok()) return Fail(best.status());
  if (best->empty()) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat(absl::GetFlag(FLAGS_db), " holds no successful measurement")));
  }
  spdlog::info("fine-tuning on the best programs of {} tasks", best->size());
  return TrainAndSave(*model, *best, TrainOptionsFromFlags(200, 3e-4), "sft");
}

int Inspect(const std::vector<std::string>& words) {
  if (words.size() != 2) return Usage("inspect takes one checkpoint file");
  absl::StatusOr<models::Model> model = models::Model::Load(words[1]);
  if (!model.ok()) return Fail(model.status());
  std::printf("%s: %s", words[1].c_str(), models::Describe(*model).c_str());
  return 0;
}

int Generate(const std::vector<std::string>& words) {
  if (absl::GetFlag(FLAGS_model).empty()) return Usage("generate needs --model=FILE");
  if (words.size() < 2) return Usage("generate needs a workload: OP NAME=INT...");
  absl::StatusOr<tlm::v1::Workload> spec = client::ParseWorkloadSpec(
      std::vector<std::string>(words.begin() + 1, words.end()), absl::GetFlag(FLAGS_epilogue));
  if (!spec.ok()) return Usage(std::string(spec.status().message()));
  absl::StatusOr<program::Workload> workload = program::WorkloadFromProto(*spec);
  if (!workload.ok()) return Usage(std::string(workload.status().message()));
  absl::StatusOr<program::Sketch> sketch =
      program::Sketch::Make(*workload, absl::GetFlag(FLAGS_target));
  if (!sketch.ok()) return Usage(std::string(sketch.status().message()));
  absl::StatusOr<models::Model> model = models::Model::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Fail(model.status());
  models::GenerateOptions o;
  o.temperature = absl::GetFlag(FLAGS_tlm_temperature);
  o.top_k = absl::GetFlag(FLAGS_tlm_top_k);
  o.explore = absl::GetFlag(FLAGS_tlm_explore);
  o.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::vector<program::Program>> programs =
      model->Generate(*sketch, absl::GetFlag(FLAGS_count), o);
  if (!programs.ok()) return Fail(programs.status());
  for (const program::Program& p : *programs) std::printf("%s\n", program::Print(p).c_str());
  return 0;
}

}  // namespace

bool IsModelCommand(const std::string& word) {
  return word == "pretrain" || word == "sft" || word == "inspect" || word == "generate";
}

int RunModelCommand(const std::vector<std::string>& words) {
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e tlmd %^%l%$ %v");
  const std::string& command = words.front();
  if (command == "pretrain" || command == "sft") {
    if (words.size() != 1) return Usage(command + " takes no positional arguments");
    return command == "pretrain" ? Pretrain() : Sft();
  }
  if (command == "inspect") return Inspect(words);
  if (command == "generate") return Generate(words);
  return Usage("unknown command " + command);
}

}  // namespace tlm::server

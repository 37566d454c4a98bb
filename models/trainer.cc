#include "models/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/model_impl.h"
#include "program/networks.h"
#include "program/sampler.h"

namespace tlm::models {
namespace {

double LearningRate(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.learning_rate * (step + 1) / o.warmup_steps;
  const double progress =
      double(step - o.warmup_steps) / std::max<int64_t>(1, o.steps - o.warmup_steps);
  const double cosine = 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
  return o.learning_rate * (o.min_learning_rate_ratio + (1 - o.min_learning_rate_ratio) * cosine);
}

}  // namespace

absl::StatusOr<TrainReport> Train(Model& model, const std::vector<program::Program>& programs,
                                  const TrainOptions& o) {
  if (programs.empty()) return absl::InvalidArgumentError("train: no programs");
  if (o.steps < 1 || o.batch_size < 1 || o.learning_rate <= 0 || o.warmup_steps < 0 ||
      o.log_every < 1) {
    return absl::InvalidArgumentError(
        "train: steps, batch_size, learning_rate and log_every must be positive");
  }
  if (o.checkpoint_every > 0 && o.checkpoint_path.empty()) {
    return absl::InvalidArgumentError("train: checkpoint_every needs a checkpoint_path");
  }
  Model::Impl& impl = model.impl();
  std::vector<EncodedProgram> encoded;
  encoded.reserve(programs.size());
  for (const program::Program& p : programs) {
    encoded.push_back(EncodeProgram(impl.tokenizer, p));
    if (static_cast<int64_t>(encoded.back().ids.size()) > impl.config.max_len) {
      return absl::FailedPreconditionError(
          absl::StrCat("train: ", program::WorkloadSummary(p.workload), " on ", p.target, " is ",
                       encoded.back().ids.size(), " tokens, over the model's max_len ",
                       impl.config.max_len));
    }
  }
  TrainReport report;
  const auto start = std::chrono::steady_clock::now();
  // libtorch's intra-op thread count is process-wide: restored afterwards.
  const int threads_before = torch::get_num_threads();
  absl::Status s = CatchTorch("train", [&]() -> absl::Status {
    if (o.threads > 0) torch::set_num_threads(o.threads);
    torch::manual_seed(o.seed);
    std::mt19937_64 rng(o.seed);
    std::vector<size_t> order(encoded.size());
    std::iota(order.begin(), order.end(), 0);
    size_t cursor = order.size();
    torch::optim::AdamW optimizer(
        impl.net->parameters(),
        torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
    impl.net->train();
    double window_loss = 0;
    int64_t window_steps = 0;
    for (int64_t step = 0; step < o.steps; ++step) {
      std::vector<const EncodedProgram*> chunk;
      while (static_cast<int>(chunk.size()) < o.batch_size) {
        if (cursor == order.size()) {
          std::shuffle(order.begin(), order.end(), rng);
          cursor = 0;
        }
        chunk.push_back(&encoded[order[cursor++]]);
        if (chunk.size() == encoded.size()) break;  // a corpus smaller than a batch
      }
      absl::StatusOr<TokenBatch> batch = MakeBatch(chunk, impl.config.max_len);
      if (!batch.ok()) return batch.status();
      const double lr = LearningRate(o, step);
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      optimizer.zero_grad();
      const double tokens = std::max(1.0, batch->mask.sum().item<double>());
      const torch::Tensor loss = SummedLoss(impl.net, *batch, impl.device) / tokens;
      loss.backward();
      if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(impl.net->parameters(), o.clip_norm);
      optimizer.step();
      window_loss += loss.item<double>();
      ++window_steps;
      if ((step + 1) % o.log_every == 0 || step + 1 == o.steps) {
        const double mean = window_loss / window_steps;
        report.curve.push_back({step + 1, mean});
        if (o.on_log) o.on_log(step + 1, mean, lr);
        window_loss = 0;
        window_steps = 0;
      }
      if (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) {
        impl.net->eval();
        if (absl::Status saved = model.Save(o.checkpoint_path); !saved.ok()) return saved;
        impl.net->train();
      }
    }
    return absl::OkStatus();
  });
  impl.net->eval();
  if (o.threads > 0) torch::set_num_threads(threads_before);
  if (!s.ok()) return s;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

absl::StatusOr<std::vector<program::Program>> PretrainCorpus(
    const std::vector<std::string>& networks, const std::vector<std::string>& targets,
    int per_task, uint64_t seed) {
  if (per_task < 1) return absl::InvalidArgumentError("corpus: per_task must be positive");
  std::mt19937_64 rng(seed);
  std::vector<program::Program> corpus;
  for (const std::string& network : networks) {
    absl::StatusOr<std::vector<program::NetworkTask>> tasks = program::NetworkTasks(network);
    if (!tasks.ok()) return tasks.status();
    for (const std::string& target : targets) {
      for (const program::NetworkTask& task : *tasks) {
        absl::StatusOr<program::Sketch> sketch = program::Sketch::Make(task.workload, target);
        if (!sketch.ok()) return sketch.status();
        for (int i = 0; i < per_task; ++i) corpus.push_back(program::SampleProgram(*sketch, rng));
      }
    }
  }
  return corpus;
}

Tokenizer CorpusTokenizer(const std::vector<program::Program>& programs) {
  std::vector<std::string> texts;
  texts.reserve(programs.size());
  for (const program::Program& p : programs) texts.push_back(program::Print(p));
  return Tokenizer::Build(texts);
}

}  // namespace tlm::models

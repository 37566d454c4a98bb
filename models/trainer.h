// Training the tensor language model: pretraining on random valid programs
// (TLM-base) and supervised fine-tuning on the best measured programs.
#ifndef TLMD_MODELS_TRAINER_H_
#define TLMD_MODELS_TRAINER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/model.h"
#include "program/program.h"

namespace tlm::models {

struct TrainOptions {
  int64_t steps = 1000;
  int batch_size = 32;
  double learning_rate = 1e-3;  // peak, after warm-up
  double min_learning_rate_ratio = 0.1;  // cosine decay ends at peak * ratio
  int64_t warmup_steps = 50;
  double weight_decay = 0.01;
  double clip_norm = 1.0;
  uint64_t seed = 1;
  // Every `log_every` steps (and at the last) `on_log` gets the mean loss of
  // those steps.
  int64_t log_every = 50;
  std::function<void(int64_t step, double loss, double learning_rate)> on_log;
  // Every `checkpoint_every` steps (0: never) the model is saved to
  // `checkpoint_path`.
  int64_t checkpoint_every = 0;
  std::string checkpoint_path;
  // libtorch intra-op threads during this call (process-wide, restored at
  // the end); 0 keeps the current setting.
  int threads = 0;
};

struct TrainReport {
  struct Point {
    int64_t step = 0;
    double loss = 0;
  };
  std::vector<Point> curve;  // one point per log
  double seconds = 0;
};

// AdamW with linear warm-up and cosine decay on `programs` (loss on the
// decision tokens only), in random order with replacement-free epochs.
// The model is in training mode only inside this call.
absl::StatusOr<TrainReport> Train(Model& model, const std::vector<program::Program>& programs,
                                  const TrainOptions& options);

// The pretraining corpus: `per_task` random valid programs (the sampler's)
// of every task of every network, on every target kind given.
absl::StatusOr<std::vector<program::Program>> PretrainCorpus(
    const std::vector<std::string>& networks, const std::vector<std::string>& targets,
    int per_task, uint64_t seed);

// The vocabulary of a corpus.
Tokenizer CorpusTokenizer(const std::vector<program::Program>& programs);

}  // namespace tlm::models

#endif  // TLMD_MODELS_TRAINER_H_

// Model internals shared by model.cc and trainer.cc (includes libtorch).
#ifndef TLMD_MODELS_MODEL_IMPL_H_
#define TLMD_MODELS_MODEL_IMPL_H_

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/model.h"
#include "models/transformer.h"

namespace tlm::models {

struct Model::Impl {
  ModelConfig config;
  Tokenizer tokenizer;
  Transformer net{nullptr};
  // CUDA when libtorch was built with it and a GPU is present, else CPU.
  torch::Device device{torch::kCPU};
  std::map<std::string, std::string> metadata;
};

// A program as tokens: kBegin, the prompt up to and including
// kEndOfPrompt, then one token per decision.
struct EncodedProgram {
  std::vector<int32_t> ids;
  size_t prompt_length = 0;
};
EncodedProgram EncodeProgram(const Tokenizer& tokenizer, const program::Program& p);

// Next-token inputs and targets of a padded batch; `mask` is 1 where the
// target is a decision token (the prompt is not learned).
struct TokenBatch {
  torch::Tensor inputs;   // [batch, length] int64
  torch::Tensor targets;  // [batch, length] int64
  torch::Tensor mask;     // [batch, length] float
};
// FAILED_PRECONDITION if a program does not fit in max_len.
absl::StatusOr<TokenBatch> MakeBatch(const std::vector<const EncodedProgram*>& programs,
                                     int64_t max_len);

// Summed cross-entropy over the masked targets (a scalar tensor), computed
// on `device`.
torch::Tensor SummedLoss(Transformer& net, const TokenBatch& batch, const torch::Device& device);

// A new network for the config on the best device, in eval mode.
void InitNetwork(Model::Impl& impl);

// Runs `body` (libtorch code), turning an exception into an INTERNAL status
// "<what>: libtorch: <message>".
absl::Status CatchTorch(const char* what, const std::function<absl::Status()>& body);

}  // namespace tlm::models

#endif  // TLMD_MODELS_MODEL_IMPL_H_

// The decoder-only transformer (libtorch). Internal to models/: include it
// only from .cc files, it pulls in <torch/torch.h>.
#ifndef TLMD_MODELS_TRANSFORMER_H_
#define TLMD_MODELS_TRANSFORMER_H_

#include <vector>

#include <torch/torch.h>

#include "models/model.h"

namespace tlm::models {

// Keys and values of the positions seen so far, per layer:
// [batch, heads, positions, head_dim]. Empty before the first forward.
struct KvCache {
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;
  int64_t length() const { return keys.empty() ? 0 : keys[0].size(2); }
  // Repeats a batch-1 cache `batch` times along the batch dimension.
  void Expand(int64_t batch);
};

// Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x)).
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelConfig& config);
  // x: [batch, new positions, d_model]. With a cache, attends to the cached
  // positions too and appends the new keys and values at `layer`.
  torch::Tensor forward(const torch::Tensor& x, KvCache* cache, size_t layer);

 private:
  int64_t heads_;
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Block);

class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(const ModelConfig& config, int64_t vocab_size);
  // tokens: [batch, new positions] (int64), continuing the cache's
  // positions when a cache is given. Returns logits [batch, new, vocab].
  torch::Tensor forward(const torch::Tensor& tokens, KvCache* cache = nullptr);

 private:
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_final_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace tlm::models

#endif  // TLMD_MODELS_TRANSFORMER_H_

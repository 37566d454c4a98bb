#include "models/transformer.h"

#include <cmath>
#include <limits>

namespace tlm::models {

void KvCache::Expand(int64_t batch) {
  for (auto* tensors : {&keys, &values}) {
    for (torch::Tensor& t : *tensors) t = t.repeat({batch, 1, 1, 1});
  }
}

BlockImpl::BlockImpl(const ModelConfig& c) : heads_(c.n_head) {
  ln1_ = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  qkv_ = register_module("qkv", torch::nn::Linear(c.d_model, 3 * c.d_model));
  proj_ = register_module("proj", torch::nn::Linear(c.d_model, c.d_model));
  ln2_ = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  fc1_ = register_module("fc1", torch::nn::Linear(c.d_model, c.d_ff));
  fc2_ = register_module("fc2", torch::nn::Linear(c.d_ff, c.d_model));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, KvCache* cache, size_t layer) {
  const int64_t batch = x.size(0), steps = x.size(1), width = x.size(2);
  const int64_t head_dim = width / heads_;
  std::vector<torch::Tensor> qkv = qkv_(ln1_(x)).chunk(3, -1);
  auto heads = [&](const torch::Tensor& t) {
    return t.view({batch, steps, heads_, head_dim}).transpose(1, 2);
  };
  torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
  int64_t past = 0;
  if (cache != nullptr) {
    if (layer < cache->keys.size()) {
      past = cache->keys[layer].size(2);
      k = torch::cat({cache->keys[layer], k}, 2);
      v = torch::cat({cache->values[layer], v}, 2);
      cache->keys[layer] = k;
      cache->values[layer] = v;
    } else {
      cache->keys.push_back(k);
      cache->values.push_back(v);
    }
  }
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(head_dim));
  if (steps > 1) {
    // New position i (absolute past + i) sees keys 0 .. past + i.
    const torch::Tensor future =
        torch::ones({steps, past + steps}, x.options().dtype(torch::kBool)).triu(past + 1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  torch::Tensor y = torch::matmul(torch::softmax(scores, -1), v);
  y = y.transpose(1, 2).reshape({batch, steps, width});
  torch::Tensor h = x + proj_(y);
  return h + fc2_(torch::gelu(fc1_(ln2_(h))));
}

TransformerImpl::TransformerImpl(const ModelConfig& c, int64_t vocab_size) {
  token_embedding_ = register_module("token_embedding", torch::nn::Embedding(vocab_size, c.d_model));
  position_embedding_ =
      register_module("position_embedding", torch::nn::Embedding(c.max_len, c.d_model));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < c.n_layer; ++i) blocks_->push_back(Block(c));
  ln_final_ =
      register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  head_ = register_module(
      "head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, vocab_size).bias(false)));
  for (auto& p : named_parameters()) {
    if (p.key().find("ln") != std::string::npos) continue;  // LayerNorm keeps 1 and 0
    if (p.value().dim() >= 2) {
      torch::nn::init::normal_(p.value(), 0.0, 0.02);
    } else {
      torch::nn::init::zeros_(p.value());
    }
  }
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens, KvCache* cache) {
  const int64_t past = cache != nullptr ? cache->length() : 0;
  const torch::Tensor positions =
      torch::arange(past, past + tokens.size(1), tokens.options()).unsqueeze(0);
  torch::Tensor x = token_embedding_(tokens) + position_embedding_(positions);
  for (size_t i = 0; i < blocks_->size(); ++i) {
    x = blocks_->ptr<BlockImpl>(i)->forward(x, cache, i);
  }
  return head_(ln_final_(x));
}

}  // namespace tlm::models

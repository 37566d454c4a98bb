#include "program/networks.h"

#include <algorithm>
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlm::program {
namespace {

using E = Epilogue;

// Collects tasks in order of first occurrence, merging identical workloads
// (their weights add up; the first name is kept). The first MakeWorkload
// error is kept and returned by Finish.
class NetworkBuilder {
 public:
  void Add(std::string name, absl::string_view op,
           const std::vector<std::pair<std::string, int64_t>>& params, std::vector<E> epilogue,
           int64_t weight) {
    if (!status_.ok()) return;
    absl::StatusOr<Workload> w = MakeWorkload(op, params, std::move(epilogue));
    if (!w.ok()) {
      status_ = w.status();
      return;
    }
    for (NetworkTask& t : tasks_) {
      if (t.workload == *w) {
        t.weight += weight;
        return;
      }
    }
    tasks_.push_back({std::move(name), *std::move(w), weight});
  }

  // 2-D convolution, NCHW, batch 1, square input and kernel, padding k / 2;
  // returns the output size. Named e.g. "conv 3x3 64->64 56x56", with " /2"
  // for stride 2 and " +residual" when the epilogue adds a residual.
  int64_t Conv(int64_t c, int64_t f, int64_t h, int64_t k, int64_t s, std::vector<E> e,
               absl::string_view kind = "conv") {
    const int64_t p = k / 2;
    const bool residual = std::find(e.begin(), e.end(), E::kAdd) != e.end();
    Add(absl::StrCat(kind, " ", k, "x", k, " ", c, "->", f, " ", h, "x", h, s > 1 ? " /2" : "",
                     residual ? " +residual" : ""),
        "conv2d_nchw",
        {{"N", 1}, {"C", c}, {"H", h}, {"W", h}, {"F", f}, {"KH", k}, {"KW", k}, {"S", s}, {"P", p}},
        std::move(e), 1);
    return (h + 2 * p - k) / s + 1;
  }

  void Dense(std::string name, int64_t m, int64_t n, int64_t k, std::vector<E> e,
             int64_t weight) {
    Add(std::move(name), "dense", {{"M", m}, {"N", n}, {"K", k}}, std::move(e), weight);
  }

  absl::StatusOr<std::vector<NetworkTask>> Finish() {
    if (!status_.ok()) return status_;
    return std::move(tasks_);
  }

 private:
  std::vector<NetworkTask> tasks_;
  absl::Status status_;
};

// A transformer encoder (BERT: post-norm, separate Q, K, V projections) or
// decoder (GPT-2: pre-norm, fused QKV, final layer norm, LM head for the last
// token). `tokens` rows are computed per layer, attending to `context` keys.
struct Transformer {
  int64_t layers, hidden, heads, ffn, tokens, context;  // tokens computed, keys attended
  bool gpt;  // fused QKV, final layer norm, LM head
};

absl::StatusOr<std::vector<NetworkTask>> BuildTransformer(const Transformer& t) {
  NetworkBuilder b;
  const int64_t L = t.layers, H = t.hidden, A = t.heads, D = t.hidden / t.heads, S = t.tokens;
  if (t.gpt) b.Add("layer_norm", "layer_norm", {{"M", S}, {"N", H}}, {}, 2 * L + 1);
  if (t.gpt) {
    b.Dense("qkv", S, 3 * H, H, {E::kBias}, L);
  } else {
    b.Dense("qkv", S, H, H, {E::kBias}, 3 * L);
  }
  b.Add("attention_scores", "batch_matmul", {{"B", A}, {"M", S}, {"N", t.context}, {"K", D}}, {},
        L);
  b.Add("softmax", "softmax", {{"M", A * S}, {"N", t.context}}, {}, L);
  b.Add("attention_context", "batch_matmul", {{"B", A}, {"M", S}, {"N", D}, {"K", t.context}}, {},
        L);
  b.Dense("attention_output", S, H, H, {E::kBias, E::kAdd}, L);
  if (!t.gpt) b.Add("layer_norm", "layer_norm", {{"M", S}, {"N", H}}, {}, 2 * L);
  b.Dense("ffn_up", S, t.ffn, H, {E::kBias, E::kGelu}, L);
  b.Dense("ffn_down", S, H, t.ffn, {E::kBias, E::kAdd}, L);
  if (t.gpt) b.Dense("lm_head", 1, 50257, H, {}, 1);
  return b.Finish();
}

absl::StatusOr<std::vector<NetworkTask>> ResNet50() {
  NetworkBuilder b;
  int64_t h = b.Conv(3, 64, 224, 7, 2, {E::kBias, E::kRelu});
  b.Add("max_pool 3x3 /2", "max_pool2d",
        {{"N", 1}, {"C", 64}, {"H", h}, {"W", h}, {"KH", 3}, {"KW", 3}, {"S", 2}, {"P", 1}}, {}, 1);
  h = (h + 2 - 3) / 2 + 1;
  int64_t in = 64;
  const int64_t blocks[] = {3, 4, 6, 3};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t width = 64 << stage;
    for (int64_t i = 0; i < blocks[stage]; ++i) {
      const int64_t stride = (i == 0 && stage > 0) ? 2 : 1;
      if (i == 0) b.Conv(in, 4 * width, h, 1, stride, {E::kBias}, "downsample");
      b.Conv(in, width, h, 1, 1, {E::kBias, E::kRelu});
      const int64_t out = b.Conv(width, width, h, 3, stride, {E::kBias, E::kRelu});
      b.Conv(width, 4 * width, out, 1, 1, {E::kBias, E::kAdd, E::kRelu});
      in = 4 * width;
      h = out;
    }
  }
  b.Add("avg_pool 7x7", "avg_pool2d",
        {{"N", 1}, {"C", 2048}, {"H", h}, {"W", h}, {"KH", h}, {"KW", h}}, {}, 1);
  b.Dense("fc", 1, 1000, 2048, {E::kBias}, 1);
  return b.Finish();
}

absl::StatusOr<std::vector<NetworkTask>> MobileNetV2() {
  NetworkBuilder b;
  int64_t h = b.Conv(3, 32, 224, 3, 2, {E::kBias, E::kRelu6});
  int64_t in = 32;
  // Expansion t, output channels c, repeats n, first stride s.
  const int64_t table[][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (const auto& [t, c, n, s] : table) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t stride = i == 0 ? s : 1;
      const int64_t hidden = in * t;
      if (t != 1) b.Conv(in, hidden, h, 1, 1, {E::kBias, E::kRelu6});
      const int64_t out = (h + 2 - 3) / stride + 1;
      b.Add(absl::StrCat("depthwise 3x3 ", hidden, " ", h, "x", h, stride > 1 ? " /2" : ""),
            "depthwise_conv2d_nchw",
            {{"N", 1}, {"C", hidden}, {"H", h}, {"W", h}, {"KH", 3}, {"KW", 3}, {"S", stride},
             {"P", 1}},
            {E::kBias, E::kRelu6}, 1);
      std::vector<E> project = {E::kBias};
      if (stride == 1 && in == c) project.push_back(E::kAdd);
      b.Conv(hidden, c, out, 1, 1, project);
      in = c;
      h = out;
    }
  }
  b.Conv(320, 1280, h, 1, 1, {E::kBias, E::kRelu6});
  b.Add("avg_pool 7x7", "avg_pool2d",
        {{"N", 1}, {"C", 1280}, {"H", h}, {"W", h}, {"KH", h}, {"KW", h}}, {}, 1);
  b.Dense("fc", 1, 1000, 1280, {E::kBias}, 1);
  return b.Finish();
}

const std::map<std::string, std::function<absl::StatusOr<std::vector<NetworkTask>>()>>&
Builders() {
  static const auto* builders = new std::map<
      std::string, std::function<absl::StatusOr<std::vector<NetworkTask>>()>>{
      {"bert_base", [] { return BuildTransformer({12, 768, 12, 3072, 128, 128, false}); }},
      {"bert_tiny", [] { return BuildTransformer({2, 128, 2, 512, 128, 128, false}); }},
      {"gpt2", [] { return BuildTransformer({12, 768, 12, 3072, 128, 128, true}); }},
      {"gpt2_decode", [] { return BuildTransformer({12, 768, 12, 3072, 1, 129, true}); }},
      {"mobilenet_v2", MobileNetV2},
      {"resnet_50", ResNet50},
  };
  return *builders;
}

}  // namespace

const std::vector<std::string>& NetworkNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const auto& [name, build] : Builders()) v->push_back(name);
    return v;
  }();
  return *names;
}

absl::StatusOr<std::vector<NetworkTask>> NetworkTasks(absl::string_view name) {
  auto it = Builders().find(std::string(name));
  if (it == Builders().end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown network \"", name, "\" (known: ",
                                                   absl::StrJoin(NetworkNames(), ", "), ")"));
  }
  return it->second();
}

}  // namespace tlm::program

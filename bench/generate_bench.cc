// Generation throughput of the tensor language model (programs per second at
// batch 1, 16 and 64, with and without the KV cache) and the validity rate
// of constrained decoding over every task of every network.
//
//   bazel run -c opt //bench:generate_bench -- [CHECKPOINT] [VALIDITY_SAMPLES]
//
// Without a checkpoint a freshly initialized model of the default size is
// used: throughput does not depend on the weights.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "models/model.h"
#include "models/trainer.h"
#include "program/networks.h"
#include "program/program.h"

namespace {

using tlm::models::GenerateOptions;
using tlm::models::Model;

double Seconds(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Programs per second generating `total` programs in batches of `batch`.
double Throughput(const Model& model, const tlm::program::Sketch& sketch, int batch, int total,
                  bool cache) {
  GenerateOptions o;
  o.batch_size = batch;
  o.use_kv_cache = cache;
  (void)model.Generate(sketch, batch, o);  // warm-up
  const auto start = std::chrono::steady_clock::now();
  const size_t n = model.Generate(sketch, total, o)->size();
  return n / Seconds(start);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t validity_samples = 10000;
  if (argc > 2 && !absl::SimpleAtoi(argv[2], &validity_samples)) {
    std::fprintf(stderr, "usage: generate_bench [CHECKPOINT] [VALIDITY_SAMPLES]\n");
    return 2;
  }
  absl::StatusOr<Model> model = absl::UnknownError("unset");
  if (argc > 1 && std::string(argv[1]) != "-") {
    model = Model::Load(argv[1]);
  } else {
    // Vocabulary of every network's programs, default sizes.
    std::vector<tlm::program::Program> corpus = *tlm::models::PretrainCorpus(
        tlm::program::NetworkNames(), tlm::program::TargetKinds(), 2, 1);
    model = Model::Create({}, tlm::models::CorpusTokenizer(corpus), 1);
  }
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  std::printf("%s", tlm::models::Describe(*model).c_str());

  struct Case {
    const char* name;
    tlm::program::Workload workload;
  };
  const std::vector<Case> cases = {
      {"bert_base ffn_up (dense 128x3072x768 +bias +gelu)",
       tlm::program::DenseWorkload(128, 3072, 768,
                                   {tlm::program::Epilogue::kBias, tlm::program::Epilogue::kGelu})},
      {"resnet_50 conv (conv2d_nchw 64x56x56, 3x3, +bias +relu)",
       *tlm::program::MakeWorkload("conv2d_nchw",
                                   {{"N", 1}, {"C", 64}, {"H", 56}, {"W", 56}, {"F", 64},
                                    {"KH", 3}, {"KW", 3}, {"P", 1}},
                                   {tlm::program::Epilogue::kBias,
                                    tlm::program::Epilogue::kRelu})},
  };
  for (const Case& c : cases) {
    const tlm::program::Sketch sketch = *tlm::program::Sketch::Make(c.workload, "cpu");
    std::printf("\n%s: prompt %zu tokens, %zu decisions\n", c.name,
                model->tokenizer().Encode(sketch.Prompt()).size(), sketch.slots().size());
    std::printf("  batch   programs/s (KV cache)   programs/s (no cache)   cache speedup\n");
    for (int batch : {1, 16, 64}) {
      const int total = batch == 1 ? 32 : batch * 4;
      const double with = Throughput(*model, sketch, batch, total, true);
      const double without = Throughput(*model, sketch, batch, total, false);
      std::printf("  %5d   %20.1f   %21.1f   %12.2fx\n", batch, with, without, with / without);
    }
  }

  // Validity: every task of every network, on every target kind, until
  // `validity_samples` programs have been generated.
  std::vector<tlm::program::Sketch> sketches;
  for (const std::string& network : tlm::program::NetworkNames()) {
    const std::vector<tlm::program::NetworkTask> tasks = *tlm::program::NetworkTasks(network);
    for (const tlm::program::NetworkTask& t : tasks) {
      for (const std::string& target : tlm::program::TargetKinds()) {
        sketches.push_back(*tlm::program::Sketch::Make(t.workload, target));
      }
    }
  }
  int64_t generated = 0, valid = 0;
  const auto start = std::chrono::steady_clock::now();
  const int64_t per_sketch = (validity_samples + sketches.size() - 1) / sketches.size();
  for (size_t i = 0; i < sketches.size(); ++i) {
    GenerateOptions o;
    o.seed = i + 1;
    absl::StatusOr<std::vector<tlm::program::Program>> programs =
        model->Generate(sketches[i], per_sketch, o);
    if (!programs.ok()) {
      std::printf("generation failed: %s\n", programs.status().ToString().c_str());
      continue;
    }
    for (const tlm::program::Program& p : *programs) {
      ++generated;
      valid += tlm::program::ValidateProgram(p).ok() &&
               tlm::program::Parse(tlm::program::Print(p)).ok();
    }
  }
  std::printf("\nvalidity: %lld of %lld generated programs valid (%.2f%%) over %zu sketches "
              "(every task of every network, cpu and cuda), %.1f s\n",
              static_cast<long long>(valid), static_cast<long long>(generated),
              100.0 * valid / std::max<int64_t>(1, generated), sketches.size(), Seconds(start));
  return valid == generated ? 0 : 1;
}

#include "program/networks.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "program/program.h"

namespace tlm::program {
namespace {

int64_t WeightOf(const std::vector<NetworkTask>& tasks, const Workload& w) {
  for (const NetworkTask& t : tasks) {
    if (t.workload == w) return t.weight;
  }
  return 0;
}

TEST_CASE("every network lists distinct valid workloads with positive weights") {
  REQUIRE(NetworkNames().size() == 6);
  for (const std::string& name : NetworkNames()) {
    INFO(name);
    absl::StatusOr<std::vector<NetworkTask>> tasks = NetworkTasks(name);
    REQUIRE(tasks.ok());
    REQUIRE_FALSE(tasks->empty());
    for (size_t i = 0; i < tasks->size(); ++i) {
      const NetworkTask& t = (*tasks)[i];
      INFO(t.name << ": " << WorkloadSummary(t.workload));
      CHECK(t.weight > 0);
      CHECK(ValidateWorkload(t.workload).ok());
      CHECK(Sketch::Make(t.workload, "cpu").ok());
      for (size_t j = 0; j < i; ++j) {
        CHECK((*tasks)[j].workload != t.workload);
        CHECK((*tasks)[j].name != t.name);
      }
    }
  }
}

TEST_CASE("network shapes follow the model definitions") {
  const std::vector<NetworkTask> bert = *NetworkTasks("bert_base");
  CHECK(WeightOf(bert, DenseWorkload(128, 3072, 768, {Epilogue::kBias, Epilogue::kGelu})) == 12);
  CHECK(WeightOf(bert, DenseWorkload(128, 768, 768, {Epilogue::kBias})) == 36);
  CHECK(WeightOf(bert, *MakeWorkload("softmax", {{"M", 12 * 128}, {"N", 128}})) == 12);
  CHECK(WeightOf(bert, *MakeWorkload("layer_norm", {{"M", 128}, {"N", 768}})) == 24);

  const std::vector<NetworkTask> resnet = *NetworkTasks("resnet_50");
  int64_t convs = 0;
  for (const NetworkTask& t : resnet) {
    if (t.workload.op == "conv2d_nchw") convs += t.weight;
  }
  CHECK(convs == 53);  // stem + 16 blocks x 3 + 4 downsamples
  CHECK(WeightOf(resnet, *MakeWorkload("conv2d_nchw", {{"N", 1}, {"C", 3}, {"H", 224}, {"W", 224},
                                                       {"F", 64}, {"KH", 7}, {"KW", 7}, {"S", 2},
                                                       {"P", 3}},
                                       {Epilogue::kBias, Epilogue::kRelu})) == 1);

  const std::vector<NetworkTask> mobilenet = *NetworkTasks("mobilenet_v2");
  int64_t depthwise = 0;
  for (const NetworkTask& t : mobilenet) {
    if (t.workload.op == "depthwise_conv2d_nchw") depthwise += t.weight;
  }
  CHECK(depthwise == 17);  // one per inverted residual block

  const std::vector<NetworkTask> decode = *NetworkTasks("gpt2_decode");
  CHECK(WeightOf(decode, *MakeWorkload("batch_matmul", {{"B", 12}, {"M", 1}, {"N", 129}, {"K", 64}})) ==
        12);
  CHECK(WeightOf(decode, DenseWorkload(1, 50257, 768)) == 1);
}

TEST_CASE("an unknown network is named in the error") {
  absl::StatusOr<std::vector<NetworkTask>> tasks = NetworkTasks("alexnet");
  REQUIRE_FALSE(tasks.ok());
  CHECK(tasks.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StartsWith(tasks.status().message(), "unknown network \"alexnet\" (known: bert_base"));
}

}  // namespace
}  // namespace tlm::program

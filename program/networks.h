// Networks as lists of distinct subgraph workloads, each with the number of
// times it occurs in one inference (its weight). Shapes follow the public
// model definitions, batch 1, fp32; batch norms are folded into a bias.
//
//   bert_base     BERT-base, sequence 128 (12 layers, hidden 768, 12 heads)
//   bert_tiny     BERT-tiny, sequence 128 (2 layers, hidden 128, 2 heads)
//   gpt2          GPT-2 small, prefill of 128 tokens (attention unmasked)
//   gpt2_decode   GPT-2 small, one new token after 128 cached ones
//   mobilenet_v2  MobileNetV2 1.0, 224 x 224, NCHW
//   resnet_50     ResNet-50 v1.5, 224 x 224, NCHW
#ifndef TLMD_PROGRAM_NETWORKS_H_
#define TLMD_PROGRAM_NETWORKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "program/workload.h"

namespace tlm::program {

// One distinct subgraph of a network and how often it occurs in one inference.
struct NetworkTask {
  std::string name;  // short and unique within the network, e.g. "ffn_up"
  Workload workload;
  int64_t weight = 0;  // occurrences per inference, >= 1
};

// Known network names, sorted: bert_base, bert_tiny, gpt2, gpt2_decode,
// mobilenet_v2, resnet_50.
const std::vector<std::string>& NetworkNames();

// The distinct workloads of a network, in order of first occurrence.
// INVALID_ARGUMENT naming the known networks for an unknown name.
absl::StatusOr<std::vector<NetworkTask>> NetworkTasks(absl::string_view name);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_NETWORKS_H_

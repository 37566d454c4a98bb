// Small workloads covering every operator and epilogue, for tests that
// lower, compile and run programs.
#ifndef TLMD_TESTS_PROGRAM_SMALL_WORKLOADS_H_
#define TLMD_TESTS_PROGRAM_SMALL_WORKLOADS_H_

#include <vector>

#include "program/workload.h"

namespace tlm::testing {

inline std::vector<program::Workload> SmallWorkloads() {
  using program::Epilogue;
  auto make = [](const char* op, std::vector<std::pair<std::string, int64_t>> params,
                 std::vector<Epilogue> epilogue = {}) {
    return *program::MakeWorkload(op, params, std::move(epilogue));
  };
  return {
      make("dense", {{"M", 16}, {"N", 24}, {"K", 8}}, {Epilogue::kBias, Epilogue::kGelu}),
      make("dense", {{"M", 8}, {"N", 8}, {"K", 12}}, {Epilogue::kAdd, Epilogue::kRelu6}),
      make("batch_matmul", {{"B", 2}, {"M", 8}, {"N", 12}, {"K", 4}}, {Epilogue::kRelu}),
      make("conv2d_nchw",
           {{"N", 1}, {"C", 3}, {"H", 9}, {"W", 9}, {"F", 4}, {"KH", 3}, {"KW", 3}, {"S", 2},
            {"P", 1}},
           {Epilogue::kBias, Epilogue::kRelu}),
      make("conv2d_nhwc",
           {{"N", 1}, {"C", 4}, {"H", 8}, {"W", 8}, {"F", 8}, {"KH", 3}, {"KW", 3}, {"P", 2},
            {"D", 2}},
           {Epilogue::kBias, Epilogue::kAdd}),
      make("depthwise_conv2d_nchw",
           {{"N", 1}, {"C", 8}, {"H", 10}, {"W", 10}, {"KH", 3}, {"KW", 3}, {"P", 1}},
           {Epilogue::kBias, Epilogue::kRelu6}),
      make("max_pool2d", {{"N", 1}, {"C", 4}, {"H", 9}, {"W", 9}, {"KH", 3}, {"KW", 3}, {"S", 2},
                          {"P", 1}}),
      make("avg_pool2d", {{"N", 1}, {"C", 3}, {"H", 8}, {"W", 8}, {"KH", 2}, {"KW", 2}, {"S", 2}}),
      make("softmax", {{"M", 6}, {"N", 20}}),
      make("layer_norm", {{"M", 4}, {"N", 32}}),
      make("add", {{"M", 8}, {"N", 16}}, {Epilogue::kRelu}),
      make("mul", {{"M", 4}, {"N", 8}}, {Epilogue::kGelu}),
  };
}

}  // namespace tlm::testing

#endif  // TLMD_TESTS_PROGRAM_SMALL_WORKLOADS_H_

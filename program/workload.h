// Workloads of the tensor program language: what to compute.
//
// A workload is an operator with integer parameters (shapes, strides,
// padding), a list of elementwise operations fused after it (its epilogue)
// and an element type. The operators and their parameters:
//
//   dense                  M N K            C[m,n] = sum_k A[m,k] * B[k,n]
//   batch_matmul           B M N K          C[b,m,n] = sum_k A[b,m,k] * B[b,k,n]
//   conv2d_nchw            N C H W F KH KW S P D   (S stride, P padding, D dilation)
//   conv2d_nhwc            N C H W F KH KW S P D   (weights KH x KW x C x F)
//   depthwise_conv2d_nchw  N C H W KH KW S P D     (weights C x KH x KW)
//   max_pool2d, avg_pool2d N C H W KH KW S P       (NCHW; avg counts padding)
//   softmax                M N              row-wise over N
//   layer_norm             M N              row-wise over N, with gamma and beta
//   add, mul               M N              elementwise on two M x N tensors
//
// S, P and D may be omitted (1, 0, 1). Epilogues, applied in order to each
// output element: bias (per output channel), relu, relu6, gelu (the erf
// form) and add (a residual tensor of the output's shape). Workloads arrive
// as tlm.v1.Workload messages and are checked here; every error names the
// offending field.
#ifndef TLMD_PROGRAM_WORKLOAD_H_
#define TLMD_PROGRAM_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tlm/v1/program.pb.h"

namespace tlm::program {

// Largest value accepted for one parameter.
inline constexpr int64_t kMaxExtent = int64_t{1} << 16;
// Largest number of elements accepted for one tensor (1 GiB of fp32).
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 28;

enum class Epilogue { kBias, kRelu, kRelu6, kGelu, kAdd };
enum class DType { kFloat32, kFloat16 };

absl::string_view EpilogueName(Epilogue e);
absl::StatusOr<Epilogue> ParseEpilogue(absl::string_view name);
absl::string_view DTypeName(DType t);
absl::StatusOr<DType> ParseDType(absl::string_view name);

struct Workload {
  std::string op;
  // Parameter values in the operator's order (OpParams(op)).
  std::vector<int64_t> params;
  std::vector<Epilogue> epilogue;
  DType dtype = DType::kFloat32;

  // Value of a named parameter; the name must be one of OpParams(op).
  int64_t param(absl::string_view name) const;

  friend bool operator==(const Workload& a, const Workload& b) {
    return a.op == b.op && a.params == b.params && a.epilogue == b.epilogue && a.dtype == b.dtype;
  }
  friend bool operator!=(const Workload& a, const Workload& b) { return !(a == b); }
};

// Operator names, in a fixed order.
const std::vector<std::string>& OpNames();
// Parameter names of an operator, in order; empty for an unknown operator.
const std::vector<std::string>& OpParams(absl::string_view op);

// Builds a workload from named parameters, filling S, P, D defaults, and
// validates it. INVALID_ARGUMENT names the field, e.g.
// "workload.params: K must be at least 1, got 0".
absl::StatusOr<Workload> MakeWorkload(absl::string_view op,
                                      const std::vector<std::pair<std::string, int64_t>>& params,
                                      std::vector<Epilogue> epilogue = {},
                                      DType dtype = DType::kFloat32);

// dense M x N x K with an epilogue (not validated: MakeWorkload validates).
Workload DenseWorkload(int64_t m, int64_t n, int64_t k, std::vector<Epilogue> epilogue = {});

// Checks parameters, derived shapes, tensor sizes, epilogues and dtype.
absl::Status ValidateWorkload(const Workload& w);

// Converts and validates.
absl::StatusOr<Workload> WorkloadFromProto(const tlm::v1::Workload& proto);
tlm::v1::Workload WorkloadToProto(const Workload& w);

// Short human-readable form, e.g. "dense M=128 N=768 K=3072 +bias+gelu".
std::string WorkloadSummary(const Workload& w);

// Floating-point operations of the main computation (a multiply-add counts
// two), for GFLOP/s figures.
double WorkloadFlops(const Workload& w);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_WORKLOAD_H_

// Workloads of the tensor program language: what to compute.
//
// The language currently has one operator, dense: C[M,N] = A[M,K] * B[K,N],
// optionally followed by a bias add (C[m,n] += bias[n]) and a ReLU, in the
// order given. Workloads arrive as tlm.v1.Workload messages and are checked
// here; every error message names the offending field.
#ifndef TLMD_PROGRAM_WORKLOAD_H_
#define TLMD_PROGRAM_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tlm/v1/program.pb.h"

namespace tlm::program {

// Largest extent accepted for one axis.
inline constexpr int64_t kMaxExtent = int64_t{1} << 16;
// Largest number of elements accepted for one tensor (1 GiB of fp32).
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 28;

enum class Epilogue { kBias, kRelu };

absl::string_view EpilogueName(Epilogue e);
absl::StatusOr<Epilogue> ParseEpilogue(absl::string_view name);

struct DenseWorkload {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  std::vector<Epilogue> epilogue;

  bool has_bias() const;
  // Multiply-adds of the main computation (M*N*K).
  double flops() const { return 2.0 * static_cast<double>(m) * n * k; }

  friend bool operator==(const DenseWorkload& a, const DenseWorkload& b) {
    return a.m == b.m && a.n == b.n && a.k == b.k && a.epilogue == b.epilogue;
  }
  friend bool operator!=(const DenseWorkload& a, const DenseWorkload& b) { return !(a == b); }
};

// Checks extents and limits of an already-built workload.
absl::Status ValidateWorkload(const DenseWorkload& w);

// Converts and validates. INVALID_ARGUMENT names the field, e.g.
// "workload.params: K must be at least 1, got 0".
absl::StatusOr<DenseWorkload> WorkloadFromProto(const tlm::v1::Workload& proto);
tlm::v1::Workload WorkloadToProto(const DenseWorkload& w);

// Short human-readable form, e.g. "dense 128x768x3072 +bias+relu".
std::string WorkloadSummary(const DenseWorkload& w);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_WORKLOAD_H_

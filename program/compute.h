// Tensor expressions: what each workload computes, as a small DAG of stages.
//
// A stage writes one tensor. Its spatial axes index the output (in the
// output's dimension order, so the last spatial axis is contiguous); its
// reduction axes are summed or maxed over. For every spatial point:
//
//   value = reduce over the reduction axes of body   (or body itself)
//   out[spatial...] = post(value)                    (post reads the value
//                                                     through a kValue leaf)
//
// Index expressions are affine in the stage's axes (axis ids: spatial axes
// 0..S-1, then reduction axes S..S+R-1). Padding is its own stage whose body
// guards its load, so every other load is in bounds. Fused epilogues are
// part of `post` of the last stage.
#ifndef TLMD_PROGRAM_COMPUTE_H_
#define TLMD_PROGRAM_COMPUTE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "program/workload.h"

namespace tlm::program {

// sum(coefficient * axis) + offset.
struct Affine {
  std::vector<std::pair<int, int64_t>> terms;  // (axis id, coefficient)
  int64_t offset = 0;

  static Affine Axis(int axis, int64_t coefficient = 1) { return Affine{{{axis, coefficient}}, 0}; }
  Affine Plus(const Affine& other) const;
  Affine Plus(int64_t constant) const;
};

enum class ExprOp {
  kConst,
  kLoad,
  kValue,  // the stage's reduced value (only in post)
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMax,
  kMin,
  kExp,
  kErf,
  kSqrt,
  kSelect,  // args[0] if every guard holds, else args[1]
};

// lo <= value < hi.
struct Guard {
  Affine value;
  int64_t lo = 0;
  int64_t hi = 0;
};

struct Expr {
  ExprOp op = ExprOp::kConst;
  double constant = 0;
  int tensor = -1;             // kLoad
  std::vector<Affine> index;   // kLoad: one per dimension of the tensor
  std::vector<Guard> guards;   // kSelect
  std::vector<Expr> args;

  static Expr Const(double c);
  static Expr Load(int tensor, std::vector<Affine> index);
  static Expr Value();
  static Expr Binary(ExprOp op, Expr a, Expr b);
  static Expr Unary(ExprOp op, Expr a);
  static Expr Select(std::vector<Guard> guards, Expr then_value, Expr else_value);
};

enum class TensorRole { kInput, kIntermediate, kOutput };

struct TensorDecl {
  std::string name;
  std::vector<int64_t> shape;  // row-major
  TensorRole role = TensorRole::kInput;

  int64_t elements() const;
};

struct Axis {
  std::string name;
  int64_t extent = 1;
};

enum class Reduce { kNone, kSum, kMax };

struct Stage {
  std::string name;
  int output = -1;  // tensor id; its shape equals the spatial extents
  std::vector<Axis> spatial;
  std::vector<Axis> reduce;
  Reduce reduce_kind = Reduce::kNone;
  Expr body;
  Expr post = Expr::Value();

  int num_axes() const { return static_cast<int>(spatial.size() + reduce.size()); }
  // Initial value of the reduction (0 for sums, -inf for max).
  double init() const;
};

struct ComputeDag {
  // Inputs first, then intermediates, then the one output.
  std::vector<TensorDecl> tensors;
  // In execution order; the last writes the output.
  std::vector<Stage> stages;
};

// The DAG of a valid workload.
absl::StatusOr<ComputeDag> BuildDag(const Workload& w);

// Appends the loads of `e` to `loads`, in evaluation order.
void CollectLoads(const Expr& e, std::vector<const Expr*>* loads);

// Ansor's rule: a stage with reduction axes in which some input is not
// indexed by every spatial axis has data reuse and gets multi-level tiling.
bool NeedsMultiLevelTiling(const Stage& stage);

// Readable one-line form of an expression, e.g. "(A[i, k] * B[k, j])".
std::string ExprToString(const Expr& e, const ComputeDag& dag, const Stage& stage);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_COMPUTE_H_

#include "program/reference.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace tlm::program {
namespace {

class Evaluator {
 public:
  Evaluator(const ComputeDag& dag, const std::vector<std::vector<float>>& inputs) : dag_(dag) {
    values_.resize(dag.tensors.size());
    strides_.resize(dag.tensors.size());
    for (size_t t = 0; t < dag.tensors.size(); ++t) {
      const TensorDecl& decl = dag.tensors[t];
      if (decl.role == TensorRole::kInput) {
        values_[t].assign(inputs[t].begin(), inputs[t].end());
      } else {
        values_[t].assign(decl.elements(), 0.0);
      }
      strides_[t].assign(decl.shape.size(), 1);
      for (int d = static_cast<int>(decl.shape.size()) - 2; d >= 0; --d) {
        strides_[t][d] = strides_[t][d + 1] * decl.shape[d + 1];
      }
    }
  }

  // Value (before post) and the sum of |terms| of one spatial point;
  // axes[0..S) hold the point, axes[S..) are scratch.
  std::pair<double, double> Reduce(const Stage& s, std::vector<int64_t>& axes) const {
    const size_t n_spatial = s.spatial.size();
    if (s.reduce.empty()) {
      const double v = Eval(s.body, axes, 0);
      return {v, std::fabs(v)};
    }
    double acc = s.init();
    double magnitude = 0;
    for (size_t r = 0; r < s.reduce.size(); ++r) axes[n_spatial + r] = 0;
    for (;;) {
      const double v = Eval(s.body, axes, 0);
      acc = s.reduce_kind == Reduce::kMax ? std::max(acc, v) : acc + v;
      magnitude += std::fabs(v);
      size_t r = s.reduce.size();
      for (; r > 0; --r) {
        if (++axes[n_spatial + r - 1] < s.reduce[r - 1].extent) break;
        axes[n_spatial + r - 1] = 0;
      }
      if (r == 0) break;
    }
    if (s.reduce_kind == Reduce::kMax) magnitude = std::fabs(acc);
    return {acc, magnitude};
  }

  void EvaluateStage(const Stage& s) {
    std::vector<int64_t> axes(s.num_axes(), 0);
    std::vector<double>& out = values_[s.output];
    for (int64_t flat = 0; flat < static_cast<int64_t>(out.size()); ++flat) {
      SetPoint(s, flat, axes);
      out[flat] = Eval(s.post, axes, Reduce(s, axes).first);
    }
  }

  void SetPoint(const Stage& s, int64_t flat, std::vector<int64_t>& axes) const {
    for (int a = static_cast<int>(s.spatial.size()) - 1; a >= 0; --a) {
      axes[a] = flat % s.spatial[a].extent;
      flat /= s.spatial[a].extent;
    }
  }

  double Eval(const Expr& e, const std::vector<int64_t>& axes, double value) const {
    auto arg = [&](int i) { return Eval(e.args[i], axes, value); };
    switch (e.op) {
      case ExprOp::kConst:
        return e.constant;
      case ExprOp::kValue:
        return value;
      case ExprOp::kLoad: {
        int64_t flat = 0;
        for (size_t d = 0; d < e.index.size(); ++d) flat += Affine(e.index[d], axes) * strides_[e.tensor][d];
        return values_[e.tensor][flat];
      }
      case ExprOp::kAdd:
        return arg(0) + arg(1);
      case ExprOp::kSub:
        return arg(0) - arg(1);
      case ExprOp::kMul:
        return arg(0) * arg(1);
      case ExprOp::kDiv:
        return arg(0) / arg(1);
      case ExprOp::kMax:
        return std::max(arg(0), arg(1));
      case ExprOp::kMin:
        return std::min(arg(0), arg(1));
      case ExprOp::kExp:
        return std::exp(arg(0));
      case ExprOp::kErf:
        return std::erf(arg(0));
      case ExprOp::kSqrt:
        return std::sqrt(arg(0));
      case ExprOp::kSelect:
        for (const Guard& g : e.guards) {
          const int64_t v = Affine(g.value, axes);
          if (v < g.lo || v >= g.hi) return arg(1);
        }
        return arg(0);
    }
    return 0;
  }

 private:
  static int64_t Affine(const program::Affine& a, const std::vector<int64_t>& axes) {
    int64_t v = a.offset;
    for (const auto& [axis, coef] : a.terms) v += coef * axes[axis];
    return v;
  }

  const ComputeDag& dag_;
  std::vector<std::vector<double>> values_;
  std::vector<std::vector<int64_t>> strides_;
};

}  // namespace

std::vector<std::vector<float>> MakeInputs(const ComputeDag& dag, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<std::vector<float>> inputs(dag.tensors.size());
  for (size_t t = 0; t < dag.tensors.size(); ++t) {
    if (dag.tensors[t].role != TensorRole::kInput) continue;
    inputs[t].resize(dag.tensors[t].elements());
    for (float& x : inputs[t]) x = uniform(rng);
  }
  return inputs;
}

ReferenceOutput EvaluateReference(const ComputeDag& dag,
                                  const std::vector<std::vector<float>>& inputs,
                                  int64_t max_evaluations, int64_t sample_points) {
  Evaluator eval(dag, inputs);
  int64_t reduction_terms = 0;
  for (const Stage& s : dag.stages) {
    int64_t r = 1;
    for (const Axis& a : s.reduce) r *= a.extent;
    if (!s.reduce.empty()) reduction_terms += r;
  }
  for (size_t i = 0; i + 1 < dag.stages.size(); ++i) eval.EvaluateStage(dag.stages[i]);

  const Stage& last = dag.stages.back();
  const int64_t points = dag.tensors[last.output].elements();
  int64_t per_point = 1;
  for (const Axis& a : last.reduce) per_point *= a.extent;
  ReferenceOutput ref;
  if (points * per_point <= max_evaluations || points <= sample_points) {
    for (int64_t p = 0; p < points; ++p) ref.index.push_back(p);
  } else {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int64_t> pick(0, points - 1);
    for (int64_t i = 0; i < sample_points; ++i) ref.index.push_back(pick(rng));
    std::sort(ref.index.begin(), ref.index.end());
    ref.index.erase(std::unique(ref.index.begin(), ref.index.end()), ref.index.end());
  }
  const double u = std::ldexp(1.0, -24);
  const double n = static_cast<double>(reduction_terms + 16);
  const double gamma = n * u / (1 - n * u);
  std::vector<int64_t> axes(last.num_axes(), 0);
  for (int64_t p : ref.index) {
    eval.SetPoint(last, p, axes);
    const auto [value, magnitude] = eval.Reduce(last, axes);
    const double expected = eval.Eval(last.post, axes, value);
    ref.expected.push_back(expected);
    ref.tolerance.push_back(gamma * (1.25 * magnitude + std::fabs(expected) + 1));
  }
  return ref;
}

}  // namespace tlm::program

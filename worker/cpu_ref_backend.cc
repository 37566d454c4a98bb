#include "worker/cpu_ref_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace tlm::worker {
namespace {

using program::ExprOp;
using program::LExpr;
using program::Stmt;
using program::StmtKind;

class Interpreter {
 public:
  Interpreter(const program::LoopNest& nest, float* const* buffers)
      : nest_(nest), locals_(nest.buffers.size()), vars_(nest.vars.size(), 0) {
    for (size_t i = 0; i < nest.buffers.size(); ++i) {
      buffers_.push_back(nest.buffers[i].local ? nullptr : buffers[i]);
    }
  }

  void Run(const std::vector<Stmt>& stmts) {
    for (const Stmt& s : stmts) {
      switch (s.kind) {
        case StmtKind::kFor:
          for (int64_t i = 0; i < s.extent; ++i) {
            vars_[s.var] = i;
            Run(s.body);
          }
          break;
        case StmtKind::kLet:
          vars_[s.var] = (vars_[s.src] / s.div) % s.mod;
          break;
        case StmtKind::kAlloc:
          locals_[s.buffer].assign(nest_.buffers[s.buffer].elements, 0.0f);
          buffers_[s.buffer] = locals_[s.buffer].data();
          break;
        case StmtKind::kStore:
          buffers_[s.buffer][Offset(s.index)] = Eval(s.value);
          break;
      }
    }
  }

 private:
  int64_t Offset(const program::Index& index) const {
    int64_t v = index.offset;
    for (const auto& [var, coef] : index.terms) v += coef * vars_[var];
    return v;
  }

  float Eval(const LExpr& e) const {
    auto arg = [&](int i) { return Eval(e.args[i]); };
    switch (e.op) {
      case ExprOp::kConst:
        return static_cast<float>(e.constant);
      case ExprOp::kLoad: {
        int64_t offset = Offset(e.index);
        if (e.clamp) offset = std::clamp<int64_t>(offset, 0, nest_.buffers[e.buffer].elements - 1);
        return buffers_[e.buffer][offset];
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
        return std::fmax(arg(0), arg(1));
      case ExprOp::kMin:
        return std::fmin(arg(0), arg(1));
      case ExprOp::kExp:
        return std::exp(arg(0));
      case ExprOp::kErf:
        return std::erf(arg(0));
      case ExprOp::kSqrt:
        return std::sqrt(arg(0));
      case ExprOp::kSelect:
        for (const program::LoopGuard& g : e.guards) {
          const int64_t v = Offset(g.value);
          if (v < g.lo || v >= g.hi) return arg(1);
        }
        return arg(0);
      case ExprOp::kValue:
        break;
    }
    return 0;
  }

  const program::LoopNest& nest_;
  std::vector<float*> buffers_;
  std::vector<std::vector<float>> locals_;
  std::vector<int64_t> vars_;
};

}  // namespace

void RunLoopNest(const program::LoopNest& nest, float* const* buffers) {
  Interpreter(nest, buffers).Run(nest.body);
}

CpuRefBackend::CpuRefBackend(Options options) {
  harness_.set_corrupt_output_for_testing(options.corrupt_output_for_testing);
}

tlm::v1::WorkerCapabilities CpuRefBackend::Capabilities() const {
  return CpuCapabilities(name(), CpuModelName(), 1);
}

tlm::v1::MeasureResult CpuRefBackend::Measure(const tlm::v1::Program& program,
                                              const tlm::v1::MeasureOptions& options) {
  const auto build_start = std::chrono::steady_clock::now();
  absl::StatusOr<program::Program> parsed = program::ProgramFromProto(program);
  if (!parsed.ok()) {
    return FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "parse",
                             std::string(parsed.status().message()));
  }
  absl::StatusOr<program::LoopNest> nest = program::Lower(*parsed);
  if (!nest.ok()) {
    return FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "build",
                             std::string(nest.status().message()));
  }
  const double build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
  const program::LoopNest& n = *nest;
  return harness_.Measure(
      *parsed, [&n](float* const* buffers) { RunLoopNest(n, buffers); }, options, build_seconds,
      program::PrintLoopNest(n));
}

}  // namespace tlm::worker

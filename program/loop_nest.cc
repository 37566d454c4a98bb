#include "program/loop_nest.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "program/loop_nest_builder.h"

namespace tlm::program {
namespace internal {

Index Scaled(const Index& i, int64_t k) {
  Index r = i;
  for (auto& t : r.terms) t.second *= k;
  r.offset *= k;
  return r;
}

Index Sum(const Index& a, const Index& b) {
  Index r = a;
  for (const auto& [var, coef] : b.terms) {
    auto it = std::find_if(r.terms.begin(), r.terms.end(),
                           [var = var](const auto& t) { return t.first == var; });
    if (it == r.terms.end()) {
      r.terms.emplace_back(var, coef);
    } else {
      it->second += coef;
    }
  }
  r.offset += b.offset;
  return r;
}

Index VarIndex(int var, int64_t coef) { return Index{{{var, coef}}, 0}; }

Stmt For(int var, int64_t extent, std::vector<Stmt> body, LoopKind kind) {
  Stmt s;
  s.kind = StmtKind::kFor;
  s.var = var;
  s.extent = extent;
  s.loop = kind;
  s.body = std::move(body);
  return s;
}

Stmt Store(int buffer, Index index, LExpr value) {
  Stmt s;
  s.kind = StmtKind::kStore;
  s.buffer = buffer;
  s.index = std::move(index);
  s.value = std::move(value);
  return s;
}

Stmt Let(int var, Index index, int64_t div, int64_t mod) {
  Stmt s;
  s.kind = StmtKind::kLet;
  s.var = var;
  s.index = std::move(index);
  s.div = div;
  s.mod = mod;
  return s;
}

Stmt Alloc(int buffer) {
  Stmt s;
  s.kind = StmtKind::kAlloc;
  s.buffer = buffer;
  return s;
}

LExpr LoadOf(int buffer, Index index) {
  LExpr e;
  e.op = ExprOp::kLoad;
  e.buffer = buffer;
  e.index = std::move(index);
  return e;
}

LExpr ConstOf(double c) {
  LExpr e;
  e.op = ExprOp::kConst;
  e.constant = c;
  return e;
}

Index ToIndex(const Affine& a, const std::vector<Index>& axes) {
  Index r;
  r.offset = a.offset;
  for (const auto& [axis, coef] : a.terms) r = Sum(r, Scaled(axes[axis], coef));
  return r;
}

Index FlatIndex(const ComputeDag& dag, int tensor, const std::vector<Affine>& index,
                const std::vector<Index>& axes) {
  const std::vector<int64_t>& shape = dag.tensors[tensor].shape;
  Index flat;
  int64_t stride = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    flat = Sum(flat, Scaled(ToIndex(index[d], axes), stride));
    stride *= shape[d];
  }
  return flat;
}

LExpr ToLExpr(const ComputeDag& dag, const Expr& e, const std::vector<Index>& axes,
              const LExpr* value, const LoadRewrite& rewrite, bool clamp) {
  if (e.op == ExprOp::kValue) return *value;
  if (e.op == ExprOp::kLoad && !clamp && rewrite) {
    if (std::optional<LExpr> r = rewrite(e)) return *std::move(r);
  }
  LExpr r;
  r.op = e.op;
  r.constant = e.constant;
  if (e.op == ExprOp::kLoad) {
    r.buffer = e.tensor;
    r.index = FlatIndex(dag, e.tensor, e.index, axes);
    r.clamp = clamp;
  }
  for (const Guard& g : e.guards) r.guards.push_back({ToIndex(g.value, axes), g.lo, g.hi});
  for (size_t i = 0; i < e.args.size(); ++i) {
    const bool guarded = e.op == ExprOp::kSelect && i == 0;
    r.args.push_back(ToLExpr(dag, e.args[i], axes, value, rewrite, clamp || guarded));
  }
  return r;
}

namespace {

// Stores of a statement's subtree, a vectorized loop counting once.
int64_t Weight(const Stmt& s) {
  if (s.kind == StmtKind::kStore) return 1;
  if (s.kind != StmtKind::kFor && s.kind != StmtKind::kIf) return 0;
  int64_t body = 0;
  for (const Stmt& c : s.body) body += Weight(c);
  if (s.kind == StmtKind::kIf) return body;
  return (s.loop == LoopKind::kVectorized ? 1 : s.extent) * body;
}

}  // namespace

void MarkUnrolled(Stmt& s, int64_t unroll) {
  if (s.kind != StmtKind::kFor && s.kind != StmtKind::kIf) return;
  if (s.kind == StmtKind::kFor && s.loop == LoopKind::kSerial && Weight(s) <= unroll) {
    s.loop = LoopKind::kUnrolled;
  }
  for (Stmt& c : s.body) MarkUnrolled(c, unroll);
}

int AddVar(LoopNest& nest, std::string name) {
  nest.vars.push_back(std::move(name));
  return static_cast<int>(nest.vars.size()) - 1;
}

const std::string& AxisName(const Stage& stage, int a) {
  const int n_spatial = static_cast<int>(stage.spatial.size());
  return a < n_spatial ? stage.spatial[a].name : stage.reduce[a - n_spatial].name;
}

TiledAxes MakeTiledAxes(const Stage& stage, const StageSchedule& sched, const std::string& prefix,
                        LoopNest& nest) {
  TiledAxes t;
  for (int a = 0; a < stage.num_axes(); ++a) {
    const std::vector<int64_t>& f = sched.factors[a];
    t.var.emplace_back(f.size(), -1);
    t.stride.emplace_back(f.size(), 1);
    for (int l = static_cast<int>(f.size()) - 2; l >= 0; --l) {
      t.stride[a][l] = t.stride[a][l + 1] * f[l + 1];
    }
    for (size_t l = 0; l < f.size(); ++l) {
      if (f[l] > 1) t.var[a][l] = AddVar(nest, absl::StrCat(prefix, AxisName(stage, a), ".", l));
    }
  }
  return t;
}

int AddBuffer(LoopNest& nest, std::string name, int64_t elements, BufferScope scope) {
  nest.buffers.push_back({std::move(name), elements, scope});
  return static_cast<int>(nest.buffers.size()) - 1;
}

}  // namespace internal

namespace {

using namespace internal;  // NOLINT: the lowering's building blocks

// Lowers one stage under its schedule (cpu patterns).
class StageLowering {
 public:
  StageLowering(const ComputeDag& dag, const Stage& stage, const StageSchedule& sched,
                int64_t max_vector_length, LoopNest& nest)
      : dag_(dag), stage_(stage), sched_(sched), max_vector_(max_vector_length), nest_(nest) {}

  std::vector<Stmt> Lower() {
    TiledAxes axes = MakeTiledAxes(stage_, sched_, "", nest_);
    var_ = std::move(axes.var);
    stride_ = std::move(axes.stride);
    int s_level = 0, r_level = 0;
    for (char c : sched_.pattern) groups_.push_back({c, c == 'S' ? s_level++ : r_level++});
    acc_group_ = stage_.reduce.empty() ? -1 : sched_.at + 1;
    std::vector<Stmt> body = Group(0);
    if (sched_.unroll > 0) {
      for (Stmt& s : body) MarkUnrolled(s, sched_.unroll);
    }
    return body;
  }

 private:
  struct LevelGroup {
    char kind;
    int level;
  };

  int n_spatial() const { return static_cast<int>(stage_.spatial.size()); }
  const std::string& AxisName(int a) const { return internal::AxisName(stage_, a); }
  int NewVar(std::string name) { return AddVar(nest_, std::move(name)); }
  int64_t Tile(int a) const {  // accumulator tile of spatial axis a
    int64_t t = 1;
    for (size_t l = sched_.at + 1; l < sched_.factors[a].size(); ++l) t *= sched_.factors[a][l];
    return t;
  }
  // Sum of var * stride over the axis's levels in [from, to].
  Index AxisPart(int a, int from, int to) const {
    Index r;
    for (int l = from; l <= to && l < static_cast<int>(var_[a].size()); ++l) {
      if (var_[a][l] >= 0) r = Sum(r, VarIndex(var_[a][l], stride_[a][l]));
    }
    return r;
  }
  std::vector<Index> FullAxes() const {
    std::vector<Index> axes;
    for (int a = 0; a < stage_.num_axes(); ++a) axes.push_back(AxisPart(a, 0, 1 << 20));
    return axes;
  }

  Index Flat(int tensor, const std::vector<Affine>& index, const std::vector<Index>& axes) const {
    return FlatIndex(dag_, tensor, index, axes);
  }
  LExpr Convert(const Expr& e, const std::vector<Index>& axes, const LExpr* value) const {
    return ToLExpr(dag_, e, axes, value);
  }

  // Loops of one level group around `inner`; the level-0 S group fuses its
  // first `parallel` loops into one parallel loop.
  std::vector<Stmt> Wrap(const LevelGroup& g, std::vector<Stmt> inner, bool innermost) {
    std::vector<int> axes;
    const int begin = g.kind == 'S' ? 0 : n_spatial();
    const int end = g.kind == 'S' ? n_spatial() : stage_.num_axes();
    for (int a = begin; a < end; ++a) {
      if (var_[a][g.level] >= 0) axes.push_back(a);
    }
    const bool fuse = g.kind == 'S' && g.level == 0 && sched_.parallel > 0;
    std::vector<int> fused;
    if (fuse) {
      for (int a : axes) {
        if (a < sched_.parallel) fused.push_back(a);
      }
    }
    for (int i = static_cast<int>(axes.size()) - 1; i >= static_cast<int>(fused.size()); --i) {
      const int a = axes[i];
      LoopKind kind = LoopKind::kSerial;
      if (innermost && i == static_cast<int>(axes.size()) - 1 && a == n_spatial() - 1 &&
          g.kind == 'S') {
        kind = LoopKind::kVectorized;
      }
      inner = {For(var_[a][g.level], sched_.factors[a][g.level], std::move(inner), kind)};
    }
    if (fused.size() == 1) {
      const int a = fused[0];
      inner = {For(var_[a][0], sched_.factors[a][0], std::move(inner), LoopKind::kParallel)};
    } else if (fused.size() > 1) {
      int64_t extent = 1;
      std::string name = "fused";
      for (int a : fused) {
        extent *= sched_.factors[a][0];
        absl::StrAppend(&name, ".", AxisName(a));
      }
      const int f = NewVar(name);
      std::vector<Stmt> body;
      int64_t div = extent;
      for (int a : fused) {
        div /= sched_.factors[a][0];
        body.push_back(Let(var_[a][0], VarIndex(f), div, sched_.factors[a][0]));
      }
      for (Stmt& s : inner) body.push_back(std::move(s));
      inner = {For(f, extent, std::move(body), LoopKind::kParallel)};
    }
    return inner;
  }

  // Groups g.. with the accumulator region where it begins.
  std::vector<Stmt> Group(size_t g) {
    if (static_cast<int>(g) == acc_group_) return AccumulatorRegion(g);
    if (g == groups_.size()) return {Innermost()};
    return Wrap(groups_[g], Group(g + 1), g + 1 == groups_.size());
  }

  // The innermost statement: update the accumulator, or write the output.
  Stmt Innermost() {
    const std::vector<Index> axes = FullAxes();
    std::vector<Affine> out_index;
    for (int a = 0; a < n_spatial(); ++a) out_index.push_back(Affine::Axis(a));
    LExpr body = Convert(stage_.body, axes, nullptr);
    if (stage_.reduce.empty()) {
      return Store(stage_.output, Flat(stage_.output, out_index, axes),
                   Convert(stage_.post, axes, &body));
    }
    Index acc_index;
    int acc_buffer = stage_.output;
    if (acc_buffer_ >= 0) {
      acc_buffer = acc_buffer_;
      for (int a = 0; a < n_spatial(); ++a) {
        acc_index = Sum(acc_index, Scaled(AxisPart(a, sched_.at + 1, 1 << 20), acc_stride_[a]));
      }
    } else {
      acc_index = Flat(stage_.output, out_index, axes);
    }
    LExpr combined;
    combined.op = stage_.reduce_kind == Reduce::kMax ? ExprOp::kMax : ExprOp::kAdd;
    combined.args = {LoadOf(acc_buffer, acc_index), std::move(body)};
    return Store(acc_buffer, acc_index, std::move(combined));
  }

  // Alloc, init, the remaining groups, write-back.
  std::vector<Stmt> AccumulatorRegion(size_t g) {
    std::vector<Stmt> region;
    int64_t elements = 1;
    acc_stride_.assign(n_spatial(), 0);
    for (int a = n_spatial() - 1; a >= 0; --a) {
      acc_stride_[a] = elements;
      elements *= Tile(a);
    }
    acc_buffer_ = -1;
    if (sched_.local) {
      acc_buffer_ = AddBuffer(nest_, absl::StrCat(stage_.name, ".acc"), elements, BufferScope::kLocal);
      region.push_back(Alloc(acc_buffer_));
    }
    // Tile loops shared by init and write-back: variables t_a over the tile.
    std::vector<int> tile_var(n_spatial(), -1);
    std::vector<Index> axes(stage_.num_axes());
    Index local;
    for (int a = 0; a < n_spatial(); ++a) {
      Index global = AxisPart(a, 0, sched_.at);
      if (Tile(a) > 1) {
        tile_var[a] = NewVar(absl::StrCat(AxisName(a), ".t"));
        global = Sum(global, VarIndex(tile_var[a]));
        local = Sum(local, VarIndex(tile_var[a], acc_stride_[a]));
      }
      axes[a] = global;
    }
    std::vector<Affine> out_index;
    for (int a = 0; a < n_spatial(); ++a) out_index.push_back(Affine::Axis(a));
    const Index out_flat = Flat(stage_.output, out_index, axes);
    const int acc = acc_buffer_ >= 0 ? acc_buffer_ : stage_.output;
    const Index acc_index = acc_buffer_ >= 0 ? local : out_flat;
    auto tile_loops = [&](Stmt inner) {
      std::vector<Stmt> body = {std::move(inner)};
      bool innermost = true;
      for (int a = n_spatial() - 1; a >= 0; --a) {
        if (tile_var[a] < 0) continue;
        const bool vector = innermost && a == n_spatial() - 1 && Tile(a) <= max_vector_;
        body = {For(tile_var[a], Tile(a), std::move(body),
                    vector ? LoopKind::kVectorized : LoopKind::kSerial)};
        innermost = false;
      }
      return body;
    };
    for (Stmt& s : tile_loops(Store(acc, acc_index, ConstOf(stage_.init())))) {
      region.push_back(std::move(s));
    }
    for (Stmt& s : Wrap(groups_[g], Group(g + 1), g + 1 == groups_.size())) {
      region.push_back(std::move(s));
    }
    if (acc_buffer_ >= 0 || stage_.post.op != ExprOp::kValue) {
      const LExpr value = LoadOf(acc, acc_index);
      for (Stmt& s : tile_loops(Store(stage_.output, out_flat, Convert(stage_.post, axes, &value)))) {
        region.push_back(std::move(s));
      }
    }
    return region;
  }

  const ComputeDag& dag_;
  const Stage& stage_;
  const StageSchedule& sched_;
  const int64_t max_vector_;
  LoopNest& nest_;
  std::vector<std::vector<int>> var_;         // per axis and level; -1 for extent 1
  std::vector<std::vector<int64_t>> stride_;  // per axis and level
  std::vector<LevelGroup> groups_;
  int acc_group_ = -1;
  int acc_buffer_ = -1;
  std::vector<int64_t> acc_stride_;
};

std::string IndexToString(const Index& i, const LoopNest& nest) {
  std::vector<std::string> parts;
  for (const auto& [var, coef] : i.terms) {
    if (coef == 0) continue;
    parts.push_back(coef == 1 ? nest.vars[var] : absl::StrCat(coef, "*", nest.vars[var]));
  }
  if (i.offset != 0 || parts.empty()) parts.push_back(absl::StrCat(i.offset));
  return absl::StrJoin(parts, " + ");
}

std::string LExprToString(const LExpr& e, const LoopNest& nest) {
  auto arg = [&](int i) { return LExprToString(e.args[i], nest); };
  switch (e.op) {
    case ExprOp::kConst:
      return absl::StrCat(e.constant);
    case ExprOp::kLoad:
      return absl::StrCat(nest.buffers[e.buffer].name, "[", IndexToString(e.index, nest), "]");
    case ExprOp::kAdd:
      return absl::StrCat("(", arg(0), " + ", arg(1), ")");
    case ExprOp::kSub:
      return absl::StrCat("(", arg(0), " - ", arg(1), ")");
    case ExprOp::kMul:
      return absl::StrCat("(", arg(0), " * ", arg(1), ")");
    case ExprOp::kDiv:
      return absl::StrCat("(", arg(0), " / ", arg(1), ")");
    case ExprOp::kMax:
      return absl::StrCat("max(", arg(0), ", ", arg(1), ")");
    case ExprOp::kMin:
      return absl::StrCat("min(", arg(0), ", ", arg(1), ")");
    case ExprOp::kExp:
      return absl::StrCat("exp(", arg(0), ")");
    case ExprOp::kErf:
      return absl::StrCat("erf(", arg(0), ")");
    case ExprOp::kSqrt:
      return absl::StrCat("sqrt(", arg(0), ")");
    case ExprOp::kSelect: {
      std::vector<std::string> conds;
      for (const LoopGuard& g : e.guards) {
        conds.push_back(absl::StrCat(g.lo, " <= ", IndexToString(g.value, nest), " < ", g.hi));
      }
      return absl::StrCat("(", absl::StrJoin(conds, " && "), " ? ", arg(0), " : ", arg(1), ")");
    }
    case ExprOp::kValue:
      break;
  }
  return "?";
}

void PrintStmt(const Stmt& s, const LoopNest& nest, int depth, std::string* out) {
  const std::string pad(2 * depth, ' ');
  switch (s.kind) {
    case StmtKind::kFor: {
      static const char* const kKinds[] = {"for",          "parallel for", "vectorized for",
                                           "unrolled for", "blockIdx for", "threadIdx for"};
      absl::StrAppend(out, pad, kKinds[static_cast<int>(s.loop)], " ", nest.vars[s.var], " in 0..",
                      s.extent, ":\n");
      for (const Stmt& c : s.body) PrintStmt(c, nest, depth + 1, out);
      return;
    }
    case StmtKind::kLet:
      absl::StrAppend(out, pad, "let ", nest.vars[s.var], " = (", IndexToString(s.index, nest),
                      " / ", s.div, ") % ", s.mod, "\n");
      return;
    case StmtKind::kStore:
      absl::StrAppend(out, pad, nest.buffers[s.buffer].name, "[", IndexToString(s.index, nest),
                      "] = ", LExprToString(s.value, nest), "\n");
      return;
    case StmtKind::kAlloc:
      absl::StrAppend(out, pad,
                      nest.buffers[s.buffer].scope == BufferScope::kShared ? "shared" : "local",
                      " float ", nest.buffers[s.buffer].name, "[", nest.buffers[s.buffer].elements,
                      "]\n");
      return;
    case StmtKind::kIf: {
      std::vector<std::string> conds;
      for (const LoopGuard& g : s.guards) {
        conds.push_back(absl::StrCat(g.lo, " <= ", IndexToString(g.value, nest), " < ", g.hi));
      }
      absl::StrAppend(out, pad, "if ", absl::StrJoin(conds, " && "), ":\n");
      for (const Stmt& c : s.body) PrintStmt(c, nest, depth + 1, out);
      return;
    }
    case StmtKind::kSync:
      absl::StrAppend(out, pad, "sync\n");
      return;
  }
}

}  // namespace

int64_t Index::CoefficientOf(int var) const {
  int64_t c = 0;
  for (const auto& [v, coef] : terms) {
    if (v == var) c += coef;
  }
  return c;
}

absl::StatusOr<LoopNest> Lower(const Program& program, const TargetLimits& limits) {
  if (absl::Status s = ValidateProgram(program, limits); !s.ok()) return s;
  absl::StatusOr<Sketch> sketch = Sketch::Make(program.workload, program.target, limits);
  if (!sketch.ok()) return sketch.status();
  const ComputeDag& dag = sketch->dag();
  const std::vector<StageSchedule> schedules = sketch->Schedules(program.decisions);
  LoopNest nest;
  nest.target = program.target;
  nest.dtype = program.workload.dtype;
  for (const TensorDecl& t : dag.tensors) AddBuffer(nest, t.name, t.elements(), BufferScope::kGlobal);
  if (program.target == "cuda") {
    for (size_t i = 0; i < dag.stages.size(); ++i) {
      nest.body.push_back(LowerCudaStage(dag, dag.stages[i], schedules[i], nest));
    }
    return nest;
  }
  const int64_t max_vector = limits.max_vector_length;
  for (size_t i = 0; i < dag.stages.size(); ++i) {
    StageLowering lowering(dag, dag.stages[i], schedules[i], max_vector, nest);
    for (Stmt& s : lowering.Lower()) nest.body.push_back(std::move(s));
  }
  return nest;
}

std::string PrintLoopNest(const LoopNest& nest) {
  std::string out;
  for (const Stmt& s : nest.body) PrintStmt(s, nest, 0, &out);
  return out;
}

}  // namespace tlm::program

#include "program/compute.h"

#include <cmath>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlm::program {
namespace {

using A = Affine;

// Builds a DAG tensor by tensor and stage by stage.
class DagBuilder {
 public:
  int AddTensor(std::string name, std::vector<int64_t> shape, TensorRole role) {
    dag_.tensors.push_back({std::move(name), std::move(shape), role});
    return static_cast<int>(dag_.tensors.size()) - 1;
  }
  Stage& AddStage(std::string name, int output, std::vector<Axis> spatial,
                  std::vector<Axis> reduce = {}, Reduce kind = Reduce::kNone) {
    Stage s;
    s.name = std::move(name);
    s.output = output;
    s.spatial = std::move(spatial);
    s.reduce = std::move(reduce);
    s.reduce_kind = kind;
    dag_.stages.push_back(std::move(s));
    return dag_.stages.back();
  }
  // The tensor a window reads: `input` itself, or a padded copy of it made
  // by a new stage. `spatial_dims` are the two padded dimensions of `shape`.
  int Padded(int input, int64_t pad, double value, int dim_h, int dim_w) {
    if (pad == 0) return input;
    const std::vector<int64_t> shape = dag_.tensors[input].shape;
    std::vector<int64_t> padded = shape;
    padded[dim_h] += 2 * pad;
    padded[dim_w] += 2 * pad;
    const int t = AddTensor("pad", padded, TensorRole::kIntermediate);
    std::vector<Axis> axes;
    std::vector<Affine> index;
    std::vector<Guard> guards;
    for (size_t d = 0; d < padded.size(); ++d) {
      axes.push_back({absl::StrCat("p", d), padded[d]});
      const bool is_window = static_cast<int>(d) == dim_h || static_cast<int>(d) == dim_w;
      index.push_back(is_window ? A::Axis(d).Plus(-pad) : A::Axis(d));
      if (is_window) guards.push_back({index.back(), 0, shape[d]});
    }
    Stage& s = AddStage("pad", t, axes);
    s.body = Expr::Select(std::move(guards), Expr::Load(input, std::move(index)), Expr::Const(value));
    return t;
  }
  ComputeDag& dag() { return dag_; }

 private:
  ComputeDag dag_;
};

// post = epilogue(post) for the workload's epilogues. `channel` is the
// output axis a bias is indexed by.
void ApplyEpilogue(const Workload& w, DagBuilder& b, Stage& stage, int channel) {
  std::vector<Affine> all_axes;
  for (size_t d = 0; d < stage.spatial.size(); ++d) all_axes.push_back(A::Axis(d));
  for (Epilogue e : w.epilogue) {
    Expr x = stage.post;
    switch (e) {
      case Epilogue::kBias: {
        const int bias = b.AddTensor("bias", {stage.spatial[channel].extent}, TensorRole::kInput);
        stage.post = Expr::Binary(ExprOp::kAdd, x, Expr::Load(bias, {A::Axis(channel)}));
        break;
      }
      case Epilogue::kRelu:
        stage.post = Expr::Binary(ExprOp::kMax, x, Expr::Const(0));
        break;
      case Epilogue::kRelu6:
        stage.post =
            Expr::Binary(ExprOp::kMin, Expr::Binary(ExprOp::kMax, x, Expr::Const(0)), Expr::Const(6));
        break;
      case Epilogue::kGelu: {
        // 0.5 * x * (1 + erf(x / sqrt(2)))
        Expr erf = Expr::Unary(ExprOp::kErf, Expr::Binary(ExprOp::kMul, x, Expr::Const(M_SQRT1_2)));
        stage.post = Expr::Binary(
            ExprOp::kMul, Expr::Binary(ExprOp::kMul, Expr::Const(0.5), x),
            Expr::Binary(ExprOp::kAdd, Expr::Const(1), erf));
        break;
      }
      case Epilogue::kAdd: {
        std::vector<int64_t> shape;
        for (const Axis& a : stage.spatial) shape.push_back(a.extent);
        const int residual = b.AddTensor("residual", shape, TensorRole::kInput);
        stage.post = Expr::Binary(ExprOp::kAdd, x, Expr::Load(residual, all_axes));
        break;
      }
    }
  }
}

int64_t WindowOut(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

void BuildConv(const Workload& w, DagBuilder& b) {
  const bool nhwc = w.op == "conv2d_nhwc";
  const bool depthwise = w.op == "depthwise_conv2d_nchw";
  const int64_t n = w.param("N"), c = w.param("C"), h = w.param("H"), wd = w.param("W");
  const int64_t f = depthwise ? c : w.param("F");
  const int64_t kh = w.param("KH"), kw = w.param("KW"), s = w.param("S"), p = w.param("P"),
                d = w.param("D");
  const int64_t oh = WindowOut(h, kh, s, p, d), ow = WindowOut(wd, kw, s, p, d);
  const int input = b.AddTensor("input", nhwc ? std::vector<int64_t>{n, h, wd, c}
                                              : std::vector<int64_t>{n, c, h, wd},
                                TensorRole::kInput);
  const int weight = b.AddTensor(
      "weight",
      depthwise ? std::vector<int64_t>{c, kh, kw}
                : (nhwc ? std::vector<int64_t>{kh, kw, c, f} : std::vector<int64_t>{f, c, kh, kw}),
      TensorRole::kInput);
  const int data = nhwc ? b.Padded(input, p, 0, 1, 2) : b.Padded(input, p, 0, 2, 3);
  const int out = b.AddTensor("output", {}, TensorRole::kOutput);
  // Axis ids: spatial 0..3, then reductions.
  const A y_in = A::Axis(nhwc ? 1 : 2, s);
  const A x_in = A::Axis(nhwc ? 2 : 3, s);
  Stage* stage;
  if (nhwc) {
    // out[n, y, x, f] = sum_{ry, rx, rc} data[n, y*S + ry*D, x*S + rx*D, rc] * weight[ry, rx, rc, f]
    stage = &b.AddStage("conv", out, {{"n", n}, {"y", oh}, {"x", ow}, {"f", f}},
                        {{"ry", kh}, {"rx", kw}, {"rc", c}}, Reduce::kSum);
    stage->body = Expr::Binary(
        ExprOp::kMul,
        Expr::Load(data, {A::Axis(0), y_in.Plus(A::Axis(4, d)), x_in.Plus(A::Axis(5, d)),
                          A::Axis(6)}),
        Expr::Load(weight, {A::Axis(4), A::Axis(5), A::Axis(6), A::Axis(3)}));
  } else if (depthwise) {
    // out[n, c, y, x] = sum_{ry, rx} data[n, c, y*S + ry*D, x*S + rx*D] * weight[c, ry, rx]
    stage = &b.AddStage("conv", out, {{"n", n}, {"c", c}, {"y", oh}, {"x", ow}},
                        {{"ry", kh}, {"rx", kw}}, Reduce::kSum);
    stage->body = Expr::Binary(
        ExprOp::kMul,
        Expr::Load(data, {A::Axis(0), A::Axis(1), y_in.Plus(A::Axis(4, d)), x_in.Plus(A::Axis(5, d))}),
        Expr::Load(weight, {A::Axis(1), A::Axis(4), A::Axis(5)}));
  } else {
    // out[n, f, y, x] = sum_{rc, ry, rx} data[n, rc, y*S + ry*D, x*S + rx*D] * weight[f, rc, ry, rx]
    stage = &b.AddStage("conv", out, {{"n", n}, {"f", f}, {"y", oh}, {"x", ow}},
                        {{"rc", c}, {"ry", kh}, {"rx", kw}}, Reduce::kSum);
    stage->body = Expr::Binary(
        ExprOp::kMul,
        Expr::Load(data, {A::Axis(0), A::Axis(4), y_in.Plus(A::Axis(5, d)), x_in.Plus(A::Axis(6, d))}),
        Expr::Load(weight, {A::Axis(1), A::Axis(4), A::Axis(5), A::Axis(6)}));
  }
  for (const Axis& a : stage->spatial) b.dag().tensors[out].shape.push_back(a.extent);
  ApplyEpilogue(w, b, *stage, nhwc ? 3 : 1);
}

void BuildPool(const Workload& w, DagBuilder& b) {
  const bool max = w.op == "max_pool2d";
  const int64_t n = w.param("N"), c = w.param("C"), h = w.param("H"), wd = w.param("W");
  const int64_t kh = w.param("KH"), kw = w.param("KW"), s = w.param("S"), p = w.param("P");
  const int64_t oh = WindowOut(h, kh, s, p, 1), ow = WindowOut(wd, kw, s, p, 1);
  const int input = b.AddTensor("input", {n, c, h, wd}, TensorRole::kInput);
  const int data = b.Padded(input, p, max ? -std::numeric_limits<double>::infinity() : 0, 2, 3);
  const int out = b.AddTensor("output", {n, c, oh, ow}, TensorRole::kOutput);
  Stage& stage = b.AddStage("pool", out, {{"n", n}, {"c", c}, {"y", oh}, {"x", ow}},
                            {{"ry", kh}, {"rx", kw}}, max ? Reduce::kMax : Reduce::kSum);
  stage.body = Expr::Load(
      data, {A::Axis(0), A::Axis(1), A::Axis(2, s).Plus(A::Axis(4)), A::Axis(3, s).Plus(A::Axis(5))});
  if (!max) {
    stage.post = Expr::Binary(ExprOp::kMul, Expr::Value(), Expr::Const(1.0 / (kh * kw)));
  }
}

void BuildRowwise(const Workload& w, DagBuilder& b) {
  const int64_t m = w.param("M"), n = w.param("N");
  const int x = b.AddTensor("input", {m, n}, TensorRole::kInput);
  const std::vector<Axis> row = {{"i", m}};
  const std::vector<Axis> cols = {{"j", n}};
  const std::vector<Axis> both = {{"i", m}, {"j", n}};
  auto load_x = [&] { return Expr::Load(x, {A::Axis(0), A::Axis(1)}); };
  if (w.op == "softmax") {
    const int mx = b.AddTensor("row_max", {m}, TensorRole::kIntermediate);
    const int sum = b.AddTensor("row_sum", {m}, TensorRole::kIntermediate);
    const int out = b.AddTensor("output", {m, n}, TensorRole::kOutput);
    b.AddStage("row_max", mx, row, cols, Reduce::kMax).body = load_x();
    auto shifted_exp = [&] {
      return Expr::Unary(ExprOp::kExp, Expr::Binary(ExprOp::kSub, load_x(),
                                                    Expr::Load(mx, {A::Axis(0)})));
    };
    b.AddStage("row_sum", sum, row, cols, Reduce::kSum).body = shifted_exp();
    b.AddStage("softmax", out, both).body =
        Expr::Binary(ExprOp::kDiv, shifted_exp(), Expr::Load(sum, {A::Axis(0)}));
    return;
  }
  // layer_norm: (x - mean) / sqrt(var + 1e-5) * gamma + beta.
  const int gamma = b.AddTensor("gamma", {n}, TensorRole::kInput);
  const int beta = b.AddTensor("beta", {n}, TensorRole::kInput);
  const int mean = b.AddTensor("mean", {m}, TensorRole::kIntermediate);
  const int var = b.AddTensor("variance", {m}, TensorRole::kIntermediate);
  const int out = b.AddTensor("output", {m, n}, TensorRole::kOutput);
  const Expr inv_n = Expr::Const(1.0 / n);
  Stage& s_mean = b.AddStage("mean", mean, row, cols, Reduce::kSum);
  s_mean.body = load_x();
  s_mean.post = Expr::Binary(ExprOp::kMul, Expr::Value(), inv_n);
  auto centered = [&] {
    return Expr::Binary(ExprOp::kSub, load_x(), Expr::Load(mean, {A::Axis(0)}));
  };
  Stage& s_var = b.AddStage("variance", var, row, cols, Reduce::kSum);
  s_var.body = Expr::Binary(ExprOp::kMul, centered(), centered());
  s_var.post = Expr::Binary(ExprOp::kMul, Expr::Value(), inv_n);
  Expr inv_std = Expr::Binary(
      ExprOp::kDiv, Expr::Const(1),
      Expr::Unary(ExprOp::kSqrt,
                  Expr::Binary(ExprOp::kAdd, Expr::Load(var, {A::Axis(0)}), Expr::Const(1e-5))));
  b.AddStage("layer_norm", out, both).body = Expr::Binary(
      ExprOp::kAdd,
      Expr::Binary(ExprOp::kMul, Expr::Binary(ExprOp::kMul, centered(), inv_std),
                   Expr::Load(gamma, {A::Axis(1)})),
      Expr::Load(beta, {A::Axis(1)}));
}

void AppendExpr(const Expr& e, const ComputeDag& dag, const Stage& stage, std::string* out);

std::string AffineToString(const Affine& a, const Stage& stage) {
  std::vector<std::string> parts;
  for (const auto& [axis, coef] : a.terms) {
    const size_t s = stage.spatial.size();
    const std::string& name = axis < static_cast<int>(s) ? stage.spatial[axis].name
                                                         : stage.reduce[axis - s].name;
    parts.push_back(coef == 1 ? name : absl::StrCat(coef, "*", name));
  }
  if (a.offset != 0 || parts.empty()) parts.push_back(absl::StrCat(a.offset));
  return absl::StrJoin(parts, " + ");
}

void AppendExpr(const Expr& e, const ComputeDag& dag, const Stage& stage, std::string* out) {
  static const char* const kBinary[] = {"+", "-", "*", "/"};
  switch (e.op) {
    case ExprOp::kConst:
      absl::StrAppend(out, e.constant);
      return;
    case ExprOp::kValue:
      absl::StrAppend(out, "value");
      return;
    case ExprOp::kLoad: {
      std::vector<std::string> idx;
      for (const Affine& a : e.index) idx.push_back(AffineToString(a, stage));
      absl::StrAppend(out, dag.tensors[e.tensor].name, "[", absl::StrJoin(idx, ", "), "]");
      return;
    }
    case ExprOp::kAdd:
    case ExprOp::kSub:
    case ExprOp::kMul:
    case ExprOp::kDiv:
      absl::StrAppend(out, "(");
      AppendExpr(e.args[0], dag, stage, out);
      absl::StrAppend(out, " ", kBinary[static_cast<int>(e.op) - static_cast<int>(ExprOp::kAdd)],
                      " ");
      AppendExpr(e.args[1], dag, stage, out);
      absl::StrAppend(out, ")");
      return;
    case ExprOp::kMax:
    case ExprOp::kMin:
    case ExprOp::kExp:
    case ExprOp::kErf:
    case ExprOp::kSqrt: {
      static const char* const kNames[] = {"max", "min", "exp", "erf", "sqrt"};
      absl::StrAppend(out, kNames[static_cast<int>(e.op) - static_cast<int>(ExprOp::kMax)], "(");
      for (size_t i = 0; i < e.args.size(); ++i) {
        if (i > 0) absl::StrAppend(out, ", ");
        AppendExpr(e.args[i], dag, stage, out);
      }
      absl::StrAppend(out, ")");
      return;
    }
    case ExprOp::kSelect: {
      std::vector<std::string> conds;
      for (const Guard& g : e.guards) {
        conds.push_back(absl::StrCat(g.lo, " <= ", AffineToString(g.value, stage), " < ", g.hi));
      }
      absl::StrAppend(out, "(", absl::StrJoin(conds, " && "), " ? ");
      AppendExpr(e.args[0], dag, stage, out);
      absl::StrAppend(out, " : ");
      AppendExpr(e.args[1], dag, stage, out);
      absl::StrAppend(out, ")");
      return;
    }
  }
}

}  // namespace

Affine Affine::Plus(const Affine& other) const {
  Affine r = *this;
  for (const auto& term : other.terms) r.terms.push_back(term);
  r.offset += other.offset;
  return r;
}

Affine Affine::Plus(int64_t constant) const {
  Affine r = *this;
  r.offset += constant;
  return r;
}

Expr Expr::Const(double c) {
  Expr e;
  e.op = ExprOp::kConst;
  e.constant = c;
  return e;
}

Expr Expr::Load(int tensor, std::vector<Affine> index) {
  Expr e;
  e.op = ExprOp::kLoad;
  e.tensor = tensor;
  e.index = std::move(index);
  return e;
}

Expr Expr::Value() {
  Expr e;
  e.op = ExprOp::kValue;
  return e;
}

Expr Expr::Binary(ExprOp op, Expr a, Expr b) {
  Expr e;
  e.op = op;
  e.args = {std::move(a), std::move(b)};
  return e;
}

Expr Expr::Unary(ExprOp op, Expr a) {
  Expr e;
  e.op = op;
  e.args = {std::move(a)};
  return e;
}

Expr Expr::Select(std::vector<Guard> guards, Expr then_value, Expr else_value) {
  Expr e;
  e.op = ExprOp::kSelect;
  e.guards = std::move(guards);
  e.args = {std::move(then_value), std::move(else_value)};
  return e;
}

int64_t TensorDecl::elements() const {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

double Stage::init() const {
  return reduce_kind == Reduce::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
}

absl::StatusOr<ComputeDag> BuildDag(const Workload& w) {
  if (absl::Status s = ValidateWorkload(w); !s.ok()) return s;
  DagBuilder b;
  if (w.op == "dense" || w.op == "batch_matmul") {
    const bool batched = w.op == "batch_matmul";
    const int64_t m = w.param("M"), n = w.param("N"), k = w.param("K");
    std::vector<int64_t> batch;
    if (batched) batch.push_back(w.param("B"));
    auto shape = [&batch](int64_t r, int64_t c) {
      std::vector<int64_t> s = batch;
      s.push_back(r);
      s.push_back(c);
      return s;
    };
    const int a = b.AddTensor("A", shape(m, k), TensorRole::kInput);
    const int bt = b.AddTensor("B", shape(k, n), TensorRole::kInput);
    const int c = b.AddTensor("C", shape(m, n), TensorRole::kOutput);
    std::vector<Axis> spatial = {{"i", m}, {"j", n}};
    if (batched) spatial.insert(spatial.begin(), Axis{"b", w.param("B")});
    const int o = batched ? 1 : 0;  // first matrix axis
    const int kk = o + 2;           // the reduction axis id
    std::vector<Affine> ia = {A::Axis(o), A::Axis(kk)};
    std::vector<Affine> ib = {A::Axis(kk), A::Axis(o + 1)};
    if (batched) {
      ia.insert(ia.begin(), A::Axis(0));
      ib.insert(ib.begin(), A::Axis(0));
    }
    Stage& s = b.AddStage(w.op, c, spatial, {{"k", k}}, Reduce::kSum);
    s.body = Expr::Binary(ExprOp::kMul, Expr::Load(a, ia), Expr::Load(bt, ib));
    ApplyEpilogue(w, b, s, o + 1);
  } else if (w.op.find("conv2d") != std::string::npos) {
    BuildConv(w, b);
  } else if (w.op.find("pool2d") != std::string::npos) {
    BuildPool(w, b);
  } else if (w.op == "softmax" || w.op == "layer_norm") {
    BuildRowwise(w, b);
  } else {  // add, mul
    const int64_t m = w.param("M"), n = w.param("N");
    const int x = b.AddTensor("A", {m, n}, TensorRole::kInput);
    const int y = b.AddTensor("B", {m, n}, TensorRole::kInput);
    const int out = b.AddTensor("C", {m, n}, TensorRole::kOutput);
    Stage& s = b.AddStage(w.op, out, {{"i", m}, {"j", n}});
    s.body = Expr::Binary(w.op == "add" ? ExprOp::kAdd : ExprOp::kMul,
                          Expr::Load(x, {A::Axis(0), A::Axis(1)}),
                          Expr::Load(y, {A::Axis(0), A::Axis(1)}));
    ApplyEpilogue(w, b, s, 1);
  }
  // Order tensors: inputs, intermediates, output (epilogue inputs were
  // added last); remap tensor ids in every stage.
  ComputeDag& dag = b.dag();
  std::vector<int> order;
  for (TensorRole role : {TensorRole::kInput, TensorRole::kIntermediate, TensorRole::kOutput}) {
    for (size_t t = 0; t < dag.tensors.size(); ++t) {
      if (dag.tensors[t].role == role) order.push_back(static_cast<int>(t));
    }
  }
  std::vector<int> new_id(order.size());
  for (size_t i = 0; i < order.size(); ++i) new_id[order[i]] = static_cast<int>(i);
  ComputeDag result;
  for (int t : order) result.tensors.push_back(dag.tensors[t]);
  std::function<void(Expr&)> remap = [&](Expr& e) {
    if (e.op == ExprOp::kLoad) e.tensor = new_id[e.tensor];
    for (Expr& a : e.args) remap(a);
  };
  for (Stage& s : dag.stages) {
    s.output = new_id[s.output];
    remap(s.body);
    remap(s.post);
    result.stages.push_back(std::move(s));
  }
  return result;
}

void CollectLoads(const Expr& e, std::vector<const Expr*>* loads) {
  if (e.op == ExprOp::kLoad) loads->push_back(&e);
  for (const Expr& a : e.args) CollectLoads(a, loads);
}

bool NeedsMultiLevelTiling(const Stage& stage) {
  if (stage.reduce.empty()) return false;
  std::vector<const Expr*> loads;
  CollectLoads(stage.body, &loads);
  for (const Expr* load : loads) {
    std::vector<bool> used(stage.spatial.size(), false);
    for (const Affine& a : load->index) {
      for (const auto& [axis, coef] : a.terms) {
        if (axis < static_cast<int>(used.size()) && coef != 0) used[axis] = true;
      }
    }
    for (bool u : used) {
      if (!u) return true;
    }
  }
  return false;
}

std::string ExprToString(const Expr& e, const ComputeDag& dag, const Stage& stage) {
  std::string out;
  AppendExpr(e, dag, stage, &out);
  return out;
}

}  // namespace tlm::program

#include "program/workload.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlm::program {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

struct OpInfo {
  std::string name;
  std::vector<std::string> params;
  std::vector<Epilogue> epilogues;  // allowed
};

const std::vector<OpInfo>& Ops() {
  static const auto* ops = [] {
    const std::vector<Epilogue> all = {Epilogue::kBias, Epilogue::kRelu, Epilogue::kRelu6,
                                       Epilogue::kGelu, Epilogue::kAdd};
    const std::vector<Epilogue> activations = {Epilogue::kRelu, Epilogue::kRelu6,
                                               Epilogue::kGelu, Epilogue::kAdd};
    const std::vector<std::string> conv = {"N", "C", "H", "W", "F", "KH", "KW", "S", "P", "D"};
    const std::vector<std::string> pool = {"N", "C", "H", "W", "KH", "KW", "S", "P"};
    return new std::vector<OpInfo>{
        {"dense", {"M", "N", "K"}, all},
        {"batch_matmul", {"B", "M", "N", "K"}, all},
        {"conv2d_nchw", conv, all},
        {"conv2d_nhwc", conv, all},
        {"depthwise_conv2d_nchw", {"N", "C", "H", "W", "KH", "KW", "S", "P", "D"}, all},
        {"max_pool2d", pool, {}},
        {"avg_pool2d", pool, {}},
        {"softmax", {"M", "N"}, {}},
        {"layer_norm", {"M", "N"}, {}},
        {"add", {"M", "N"}, activations},
        {"mul", {"M", "N"}, activations},
    };
  }();
  return *ops;
}

const OpInfo* FindOp(absl::string_view name) {
  for (const OpInfo& op : Ops()) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

int64_t DefaultOf(absl::string_view param) {
  if (param == "S" || param == "D") return 1;
  if (param == "P") return 0;
  return -1;  // required
}

// Output extent of a sliding window, or a message when it is empty.
absl::StatusOr<int64_t> WindowOutput(absl::string_view axis, int64_t in, int64_t kernel,
                                     int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;
  if (span > in + 2 * pad) {
    return Invalid("workload.params",
                   absl::StrCat("kernel K", axis, " spans ", span, " rows/columns, more than the ",
                                in + 2 * pad, " of the padded input ", axis));
  }
  if (pad >= span) {
    return Invalid("workload.params", absl::StrCat("padding P = ", pad, " must be smaller than",
                                                   " the kernel's span ", span));
  }
  return (in + 2 * pad - span) / stride + 1;
}

}  // namespace

absl::string_view EpilogueName(Epilogue e) {
  switch (e) {
    case Epilogue::kBias:
      return "bias";
    case Epilogue::kRelu:
      return "relu";
    case Epilogue::kRelu6:
      return "relu6";
    case Epilogue::kGelu:
      return "gelu";
    case Epilogue::kAdd:
      return "add";
  }
  return "?";
}

absl::StatusOr<Epilogue> ParseEpilogue(absl::string_view name) {
  for (Epilogue e :
       {Epilogue::kBias, Epilogue::kRelu, Epilogue::kRelu6, Epilogue::kGelu, Epilogue::kAdd}) {
    if (EpilogueName(e) == name) return e;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown epilogue \"", name, "\" (known: bias, relu, relu6, gelu, add)"));
}

absl::string_view DTypeName(DType t) { return t == DType::kFloat16 ? "float16" : "float32"; }

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  if (name == "float32") return DType::kFloat32;
  if (name == "float16") return DType::kFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", name, "\" (known: float32, float16)"));
}

int64_t Workload::param(absl::string_view name) const {
  const std::vector<std::string>& names = OpParams(op);
  for (size_t i = 0; i < names.size() && i < params.size(); ++i) {
    if (names[i] == name) return params[i];
  }
  return 0;
}

const std::vector<std::string>& OpNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const OpInfo& op : Ops()) v->push_back(op.name);
    return v;
  }();
  return *names;
}

const std::vector<std::string>& OpParams(absl::string_view op) {
  static const std::vector<std::string> none;
  const OpInfo* info = FindOp(op);
  return info == nullptr ? none : info->params;
}

Workload DenseWorkload(int64_t m, int64_t n, int64_t k, std::vector<Epilogue> epilogue) {
  Workload w;
  w.op = "dense";
  w.params = {m, n, k};
  w.epilogue = std::move(epilogue);
  return w;
}

absl::Status ValidateWorkload(const Workload& w) {
  const OpInfo* op = FindOp(w.op);
  if (op == nullptr) {
    return Invalid("workload.op", absl::StrCat(w.op.empty() ? "missing" : absl::StrCat(
                                                                  "unknown operator \"", w.op, "\""),
                                               " (known operators: ",
                                               absl::StrJoin(OpNames(), ", "), ")"));
  }
  if (w.params.size() != op->params.size()) {
    return Invalid("workload.params", absl::StrCat(w.op, " takes ", op->params.size(),
                                                   " parameters, got ", w.params.size()));
  }
  for (size_t i = 0; i < w.params.size(); ++i) {
    const std::string& name = op->params[i];
    const int64_t min = name == "P" ? 0 : 1;
    if (w.params[i] < min) {
      return Invalid("workload.params",
                     absl::StrCat(name, " must be at least ", min, ", got ", w.params[i]));
    }
    if (w.params[i] > kMaxExtent) {
      return Invalid("workload.params",
                     absl::StrCat(name, " must be at most ", kMaxExtent, ", got ", w.params[i]));
    }
  }
  // Tensor sizes, including derived output shapes.
  auto p = [&w](absl::string_view name) { return w.param(name); };
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  if (w.op == "dense") {
    tensors = {{"A", {p("M"), p("K")}}, {"B", {p("K"), p("N")}}, {"C", {p("M"), p("N")}}};
  } else if (w.op == "batch_matmul") {
    tensors = {{"A", {p("B"), p("M"), p("K")}},
               {"B", {p("B"), p("K"), p("N")}},
               {"C", {p("B"), p("M"), p("N")}}};
  } else if (w.op.find("conv2d") != std::string::npos || w.op.find("pool2d") != std::string::npos) {
    const int64_t d = w.op.find("pool") != std::string::npos ? 1 : p("D");
    absl::StatusOr<int64_t> oh = WindowOutput("H", p("H"), p("KH"), p("S"), p("P"), d);
    if (!oh.ok()) return oh.status();
    absl::StatusOr<int64_t> ow = WindowOutput("W", p("W"), p("KW"), p("S"), p("P"), d);
    if (!ow.ok()) return ow.status();
    const bool dense_conv = w.op == "conv2d_nchw" || w.op == "conv2d_nhwc";
    tensors = {{"input", {p("N"), p("C"), p("H") + 2 * p("P"), p("W") + 2 * p("P")}},
               {"output", {p("N"), dense_conv ? p("F") : p("C"), *oh, *ow}}};
    if (dense_conv) tensors.push_back({"weight", {p("F"), p("C"), p("KH"), p("KW")}});
  } else {
    tensors = {{"input", {p("M"), p("N")}}};
  }
  for (const auto& [name, shape] : tensors) {
    int64_t elements = 1;
    for (int64_t e : shape) elements *= e;
    if (elements > kMaxTensorElements) {
      return Invalid("workload.params",
                     absl::StrCat("tensor ", name, " has ", elements,
                                  " elements, more than the limit of ", kMaxTensorElements));
    }
  }
  int bias_count = 0;
  for (Epilogue e : w.epilogue) {
    if (std::find(op->epilogues.begin(), op->epilogues.end(), e) == op->epilogues.end()) {
      return Invalid("workload.epilogue",
                     absl::StrCat(EpilogueName(e), " cannot follow ", w.op,
                                  op->epilogues.empty() ? " (it takes no epilogue)" : ""));
    }
    bias_count += e == Epilogue::kBias;
  }
  if (bias_count > 1) return Invalid("workload.epilogue", "bias may appear at most once");
  return absl::OkStatus();
}

absl::StatusOr<Workload> MakeWorkload(absl::string_view op,
                                      const std::vector<std::pair<std::string, int64_t>>& params,
                                      std::vector<Epilogue> epilogue, DType dtype) {
  const OpInfo* info = FindOp(op);
  Workload w;
  w.op = std::string(op);
  w.epilogue = std::move(epilogue);
  w.dtype = dtype;
  if (info == nullptr) return ValidateWorkload(w);
  std::map<std::string, int64_t> given;
  for (const auto& [name, value] : params) {
    if (std::find(info->params.begin(), info->params.end(), name) == info->params.end()) {
      return Invalid("workload.params",
                     absl::StrCat("unknown parameter \"", name, "\" for ", op, " (expected ",
                                  absl::StrJoin(info->params, ", "), ")"));
    }
    if (!given.emplace(name, value).second) {
      return Invalid("workload.params", absl::StrCat("parameter ", name, " given twice"));
    }
  }
  for (const std::string& name : info->params) {
    auto it = given.find(name);
    if (it != given.end()) {
      w.params.push_back(it->second);
    } else if (DefaultOf(name) >= 0) {
      w.params.push_back(DefaultOf(name));
    } else {
      return Invalid("workload.params", absl::StrCat("missing parameter ", name));
    }
  }
  if (absl::Status s = ValidateWorkload(w); !s.ok()) return s;
  return w;
}

absl::StatusOr<Workload> WorkloadFromProto(const tlm::v1::Workload& proto) {
  DType dtype = DType::kFloat32;
  if (proto.dtype() == tlm::v1::DTYPE_FLOAT16) {
    dtype = DType::kFloat16;
  } else if (proto.dtype() != tlm::v1::DTYPE_UNSPECIFIED &&
             proto.dtype() != tlm::v1::DTYPE_FLOAT32) {
    return Invalid("workload.dtype", absl::StrCat("unknown dtype ", proto.dtype()));
  }
  std::vector<std::pair<std::string, int64_t>> params;
  for (const tlm::v1::WorkloadParam& p : proto.params()) params.emplace_back(p.name(), p.value());
  std::vector<Epilogue> epilogue;
  for (const std::string& name : proto.epilogue()) {
    absl::StatusOr<Epilogue> e = ParseEpilogue(name);
    if (!e.ok()) return Invalid("workload.epilogue", e.status().message());
    epilogue.push_back(*e);
  }
  return MakeWorkload(proto.op(), params, std::move(epilogue), dtype);
}

tlm::v1::Workload WorkloadToProto(const Workload& w) {
  tlm::v1::Workload proto;
  proto.set_op(w.op);
  proto.set_dtype(w.dtype == DType::kFloat16 ? tlm::v1::DTYPE_FLOAT16 : tlm::v1::DTYPE_FLOAT32);
  const std::vector<std::string>& names = OpParams(w.op);
  for (size_t i = 0; i < names.size() && i < w.params.size(); ++i) {
    tlm::v1::WorkloadParam* p = proto.add_params();
    p->set_name(names[i]);
    p->set_value(w.params[i]);
  }
  for (Epilogue e : w.epilogue) proto.add_epilogue(std::string(EpilogueName(e)));
  return proto;
}

std::string WorkloadSummary(const Workload& w) {
  std::string s = w.op;
  const std::vector<std::string>& names = OpParams(w.op);
  for (size_t i = 0; i < names.size() && i < w.params.size(); ++i) {
    absl::StrAppend(&s, " ", names[i], "=", w.params[i]);
  }
  for (Epilogue e : w.epilogue) absl::StrAppend(&s, " +", EpilogueName(e));
  return s;
}

double WorkloadFlops(const Workload& w) {
  auto p = [&w](absl::string_view name) { return static_cast<double>(w.param(name)); };
  auto out = [&](absl::string_view axis) {
    const std::string in(axis);
    const double d = w.op.find("pool") != std::string::npos ? 1 : p("D");
    return std::floor((p(in) + 2 * p("P") - d * (p("K" + in) - 1) - 1) / p("S")) + 1;
  };
  if (w.op == "dense") return 2 * p("M") * p("N") * p("K");
  if (w.op == "batch_matmul") return 2 * p("B") * p("M") * p("N") * p("K");
  if (w.op == "conv2d_nchw" || w.op == "conv2d_nhwc") {
    return 2 * p("N") * p("F") * out("H") * out("W") * p("C") * p("KH") * p("KW");
  }
  if (w.op == "depthwise_conv2d_nchw") {
    return 2 * p("N") * p("C") * out("H") * out("W") * p("KH") * p("KW");
  }
  if (w.op == "max_pool2d" || w.op == "avg_pool2d") {
    return p("N") * p("C") * out("H") * out("W") * p("KH") * p("KW");
  }
  if (w.op == "softmax" || w.op == "layer_norm") return 5 * p("M") * p("N");
  return p("M") * p("N");
}

}  // namespace tlm::program

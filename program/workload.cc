#include "program/workload.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlm::program {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

}  // namespace

absl::string_view EpilogueName(Epilogue e) {
  switch (e) {
    case Epilogue::kBias:
      return "bias";
    case Epilogue::kRelu:
      return "relu";
  }
  return "?";
}

absl::StatusOr<Epilogue> ParseEpilogue(absl::string_view name) {
  if (name == "bias") return Epilogue::kBias;
  if (name == "relu") return Epilogue::kRelu;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown epilogue \"", name, "\" (known: bias, relu)"));
}

bool DenseWorkload::has_bias() const {
  for (Epilogue e : epilogue) {
    if (e == Epilogue::kBias) return true;
  }
  return false;
}

absl::Status ValidateWorkload(const DenseWorkload& w) {
  const std::pair<const char*, int64_t> extents[] = {{"M", w.m}, {"N", w.n}, {"K", w.k}};
  for (const auto& [name, value] : extents) {
    if (value < 1) {
      return Invalid("workload.params", absl::StrCat(name, " must be at least 1, got ", value));
    }
    if (value > kMaxExtent) {
      return Invalid("workload.params",
                     absl::StrCat(name, " must be at most ", kMaxExtent, ", got ", value));
    }
  }
  const std::pair<const char*, int64_t> tensors[] = {
      {"A (M*K)", w.m * w.k}, {"B (K*N)", w.k * w.n}, {"C (M*N)", w.m * w.n}};
  for (const auto& [name, elements] : tensors) {
    if (elements > kMaxTensorElements) {
      return Invalid("workload.params",
                     absl::StrCat("tensor ", name, " has ", elements,
                                  " elements, more than the limit of ", kMaxTensorElements));
    }
  }
  int bias_count = 0;
  for (Epilogue e : w.epilogue) bias_count += e == Epilogue::kBias;
  if (bias_count > 1) return Invalid("workload.epilogue", "bias may appear at most once");
  return absl::OkStatus();
}

absl::StatusOr<DenseWorkload> WorkloadFromProto(const tlm::v1::Workload& proto) {
  if (proto.op().empty()) return Invalid("workload.op", "missing (known operators: dense)");
  if (proto.op() != "dense") {
    return Invalid("workload.op",
                   absl::StrCat("unknown operator \"", proto.op(), "\" (known operators: dense)"));
  }
  if (proto.dtype() != tlm::v1::DTYPE_UNSPECIFIED && proto.dtype() != tlm::v1::DTYPE_FLOAT32) {
    return Invalid("workload.dtype", absl::StrCat("dense supports float32 only, got ",
                                                  tlm::v1::DType_Name(proto.dtype())));
  }
  std::map<std::string, int64_t> params;
  for (const tlm::v1::WorkloadParam& p : proto.params()) {
    if (p.name() != "M" && p.name() != "N" && p.name() != "K") {
      return Invalid("workload.params", absl::StrCat("unknown parameter \"", p.name(),
                                                     "\" for dense (expected M, N, K)"));
    }
    if (!params.emplace(p.name(), p.value()).second) {
      return Invalid("workload.params", absl::StrCat("parameter ", p.name(), " given twice"));
    }
  }
  for (const char* name : {"M", "N", "K"}) {
    if (params.count(name) == 0) {
      return Invalid("workload.params", absl::StrCat("missing parameter ", name));
    }
  }
  DenseWorkload w;
  w.m = params["M"];
  w.n = params["N"];
  w.k = params["K"];
  for (const std::string& name : proto.epilogue()) {
    absl::StatusOr<Epilogue> e = ParseEpilogue(name);
    if (!e.ok()) return Invalid("workload.epilogue", e.status().message());
    w.epilogue.push_back(*e);
  }
  if (absl::Status s = ValidateWorkload(w); !s.ok()) return s;
  return w;
}

tlm::v1::Workload WorkloadToProto(const DenseWorkload& w) {
  tlm::v1::Workload proto;
  proto.set_op("dense");
  proto.set_dtype(tlm::v1::DTYPE_FLOAT32);
  for (const auto& [name, value] :
       {std::pair<const char*, int64_t>{"M", w.m}, {"N", w.n}, {"K", w.k}}) {
    tlm::v1::WorkloadParam* p = proto.add_params();
    p->set_name(name);
    p->set_value(value);
  }
  for (Epilogue e : w.epilogue) proto.add_epilogue(std::string(EpilogueName(e)));
  return proto;
}

std::string WorkloadSummary(const DenseWorkload& w) {
  std::string s = absl::StrCat("dense ", w.m, "x", w.n, "x", w.k);
  for (Epilogue e : w.epilogue) absl::StrAppend(&s, "+", EpilogueName(e));
  return s;
}

}  // namespace tlm::program

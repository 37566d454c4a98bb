#include "client/workload_spec.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tlm::client {

absl::StatusOr<tlm::v1::DType> ParseDTypeFlag(absl::string_view dtype) {
  if (dtype.empty()) return tlm::v1::DTYPE_UNSPECIFIED;
  if (dtype == "float32") return tlm::v1::DTYPE_FLOAT32;
  if (dtype == "float16") return tlm::v1::DTYPE_FLOAT16;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype: unknown type \"", dtype, "\" (known: float32, float16)"));
}

absl::StatusOr<std::vector<std::string>> ParseEpilogueList(absl::string_view epilogue) {
  std::vector<std::string> names;
  const absl::string_view list = absl::StripAsciiWhitespace(epilogue);
  if (list.empty() || list == "none") return names;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--epilogue=", epilogue, ": empty entry (write e.g. bias,relu)"));
    }
    names.emplace_back(entry);
  }
  return names;
}

absl::StatusOr<tlm::v1::Workload> ParseWorkloadSpec(const std::vector<std::string>& words,
                                                    absl::string_view epilogue) {
  std::vector<std::string> items;
  for (const std::string& word : words) {
    for (absl::string_view item :
         absl::StrSplit(word, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
      items.emplace_back(item);
    }
  }
  if (items.empty())
    return absl::InvalidArgumentError("missing OP (e.g. dense M=128 N=768 K=3072)");
  tlm::v1::Workload workload;
  if (items[0].find('=') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", items[0], "\": expected an operator name first (e.g. dense)"));
  }
  workload.set_op(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    const std::string& item = items[i];
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", item, "\": expected NAME=INT (e.g. M=128)"));
    }
    const absl::string_view text = absl::string_view(item).substr(eq + 1);
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", item, "\": \"", text, "\" is not an integer (64-bit, e.g. M=128)"));
    }
    tlm::v1::WorkloadParam* param = workload.add_params();
    param->set_name(item.substr(0, eq));
    param->set_value(value);
  }
  absl::StatusOr<std::vector<std::string>> names = ParseEpilogueList(epilogue);
  if (!names.ok()) return names.status();
  for (std::string& name : *names) workload.add_epilogue(std::move(name));
  return workload;
}

}  // namespace tlm::client

#include "client/format.h"

#include "program/workload.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace tlm::client {

std::string FormatSeconds(double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds)) return "-";
  if (seconds < 1e-3) return absl::StrFormat("%.1f us", seconds * 1e6);
  if (seconds < 1) return absl::StrFormat("%.3f ms", seconds * 1e3);
  return absl::StrFormat("%.3f s", seconds);
}

double WorkloadFlops(const tlm::v1::Workload& workload) {
  absl::StatusOr<program::Workload> w = program::WorkloadFromProto(workload);
  return w.ok() ? program::WorkloadFlops(*w) : 0;
}

double ImproveBest(double best, const tlm::v1::MeasureResult& result) {
  const bool better = result.error_kind() == tlm::v1::ERROR_KIND_NONE &&
                      (!(best > 0) || result.median_seconds() < best);
  return better ? result.median_seconds() : best;
}

std::string FormatGflops(double flops, double seconds) {
  if (!(flops > 0) || !(seconds > 0)) return "";
  const double gflops = flops / seconds / 1e9;
  if (gflops >= 100) return absl::StrFormat("%.0f GFLOP/s", gflops);
  if (gflops >= 10) return absl::StrFormat("%.1f GFLOP/s", gflops);
  return absl::StrFormat("%.2f GFLOP/s", gflops);
}

std::string WorkloadSummary(const tlm::v1::Workload& workload) {
  std::string summary = workload.op().empty() ? "?" : workload.op();
  const auto& params = workload.params();
  const bool dense_form = workload.op() == "dense" && params.size() == 3 &&
                          params[0].name() == "M" && params[1].name() == "N" &&
                          params[2].name() == "K";
  if (dense_form) {
    absl::StrAppend(&summary, " ", params[0].value(), "x", params[1].value(), "x",
                    params[2].value());
  } else {
    for (const tlm::v1::WorkloadParam& p : params) {
      absl::StrAppend(&summary, " ", p.name(), "=", p.value());
    }
  }
  for (const std::string& e : workload.epilogue()) absl::StrAppend(&summary, "+", e);
  return summary;
}

std::string StateName(tlm::v1::TaskState state) {
  if (state == tlm::v1::TASK_STATE_UNSPECIFIED || !tlm::v1::TaskState_IsValid(state)) {
    return "unknown";
  }
  return absl::AsciiStrToLower(absl::StripPrefix(tlm::v1::TaskState_Name(state), "TASK_STATE_"));
}

bool IsEnded(const tlm::v1::Task& task) {
  return task.state() == tlm::v1::TASK_STATE_SUCCEEDED ||
         task.state() == tlm::v1::TASK_STATE_FAILED ||
         task.state() == tlm::v1::TASK_STATE_CANCELLED;
}

std::string BestSummary(const tlm::v1::Task& task) {
  std::string best = FormatSeconds(task.best_seconds());
  const std::string gflops = FormatGflops(WorkloadFlops(task.workload()), task.best_seconds());
  if (!gflops.empty()) absl::StrAppend(&best, " (", gflops, ")");
  return best;
}

std::string ProgressLine(const tlm::v1::Task& task) {
  constexpr int64_t kWidth = 30;
  const int64_t total = std::max(1, task.num_trials());
  const int64_t done = std::clamp<int64_t>(task.trials_done(), 0, total);
  const int64_t filled = done * kWidth / total;
  return absl::StrCat("[", std::string(filled, '#'), std::string(kWidth - filled, '-'), "] ",
                      task.trials_done(), "/", task.num_trials(), "  failed ", task.trials_failed(),
                      "  best ", BestSummary(task));
}

std::string TaskSummary(const tlm::v1::Task& task) {
  std::string summary = absl::StrCat("task ", task.id(), " ", StateName(task.state()), ": ",
                                     task.trials_done(), "/", task.num_trials(), " trials, ",
                                     task.trials_failed(), " failed, best ", BestSummary(task));
  if (!task.message().empty()) absl::StrAppend(&summary, "; ", task.message());
  return summary;
}

std::string HumanDuration(absl::Duration duration) {
  const int64_t total = std::max<int64_t>(0, absl::ToInt64Seconds(duration));
  const int64_t days = total / 86400;
  const int64_t hours = total % 86400 / 3600;
  const int64_t minutes = total % 3600 / 60;
  const int64_t seconds = total % 60;
  if (days > 0) return absl::StrFormat("%dd %02dh", days, hours);
  if (hours > 0) return absl::StrFormat("%dh %02dm", hours, minutes);
  if (minutes > 0) return absl::StrFormat("%dm %02ds", minutes, seconds);
  return absl::StrFormat("%ds", seconds);
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (row.size() > widths.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string table;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < widths.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      if (c > 0) line += "  ";
      line += cell;
      if (c + 1 < widths.size()) line.append(widths[c] - cell.size(), ' ');
    }
    absl::StrAppend(&table, absl::StripTrailingAsciiWhitespace(line), "\n");
  }
  return table;
}

}  // namespace tlm::client

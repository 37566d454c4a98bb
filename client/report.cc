#include "client/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/format.h"
#include "program/networks.h"

namespace tlm::client {
namespace {

// Best latency (seconds) after each measurement; NaN until the first success.
using Curve = std::vector<double>;

struct Series {
  std::string label;
  std::string color;
  Curve curve;
};

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string SamplerColor(const std::string& sampler) {
  static const std::map<std::string, std::string> known = {
      {"tlm", "#d62728"}, {"random", "#7f7f7f"}, {"evolutionary", "#1f77b4"}};
  auto it = known.find(sampler);
  return it != known.end() ? it->second : "#2ca02c";
}

// A line chart of best latency (ms, linear) against measurements.
std::string Chart(const std::string& title, const std::vector<Series>& series) {
  constexpr double kWidth = 640, kHeight = 300, kLeft = 70, kRight = 150, kTop = 30,
                   kBottom = 40;
  size_t max_k = 1;
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const Series& s : series) {
    max_k = std::max(max_k, s.curve.size());
    for (double v : s.curve) {
      if (std::isnan(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<text x=\"%.0f\" y=\"18\" "
      "font-size=\"13\">%s</text>\n",
      kWidth, kHeight, kLeft, Escape(title));
  if (hi <= 0) return svg + "<text x=\"70\" y=\"60\">no successful measurement</text>\n</svg>\n";
  if (hi - lo < hi * 1e-6) {
    lo *= 0.95;
    hi *= 1.05;
  }
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto x_of = [&](size_t k) {  // k is 1-based
    return kLeft + (max_k == 1 ? 0 : plot_w * (k - 1) / (max_k - 1));
  };
  auto y_of = [&](double v) { return kTop + plot_h * (hi - v) / (hi - lo); };
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
                        "fill=\"none\" stroke=\"#ccc\"/>\n",
                        kLeft, kTop, plot_w, plot_h);
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4;
    absl::StrAppendFormat(&svg, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kLeft - 6, y_of(v) + 4, FormatSeconds(v));
  }
  for (int i = 0; i <= 4; ++i) {
    const size_t k = 1 + (max_k - 1) * i / 4;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n",
                          x_of(k), kTop + plot_h + 16, k);
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">measurements</text>\n",
                        kLeft + plot_w / 2, kHeight - 6);
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    std::string points;
    for (size_t k = 1; k <= s.curve.size(); ++k) {
      if (std::isnan(s.curve[k - 1])) continue;
      absl::StrAppendFormat(&points, "%.1f,%.1f ", x_of(k), y_of(s.curve[k - 1]));
    }
    absl::StrAppendFormat(&svg,
                          "<polyline class=\"curve\" fill=\"none\" stroke=\"%s\" "
                          "stroke-width=\"2\" points=\"%s\"><title>%s</title></polyline>\n",
                          s.color, points, Escape(s.label));
    const double ly = kTop + 14 * i + 6;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                          "stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                          kWidth - kRight + 10, ly, kWidth - kRight + 28, ly, s.color,
                          kWidth - kRight + 32, ly + 4, Escape(s.label));
  }
  return svg + "</svg>\n";
}

Curve BestSoFar(const std::vector<const tlm::v1::Record*>& records) {
  Curve curve;
  double best = std::numeric_limits<double>::quiet_NaN();
  for (const tlm::v1::Record* r : records) {
    best = ImproveBest(best, r->result());
    curve.push_back(best);
  }
  return curve;
}

// "bert_base/ffn_up" -> its network and weight; nullopt for other names.
std::optional<std::pair<std::string, int64_t>> NetworkWeight(const std::string& task_name) {
  const std::vector<std::string> parts = absl::StrSplit(task_name, absl::MaxSplits('/', 1));
  if (parts.size() != 2) return std::nullopt;
  absl::StatusOr<std::vector<program::NetworkTask>> tasks = program::NetworkTasks(parts[0]);
  if (!tasks.ok()) return std::nullopt;
  for (const program::NetworkTask& t : *tasks) {
    if (t.name == parts[1]) return std::make_pair(parts[0], t.weight);
  }
  return std::nullopt;
}

}  // namespace

std::string RenderReport(const std::vector<tlm::v1::Task>& tasks,
                         const std::vector<tlm::v1::Record>& records,
                         const std::string& title) {
  std::map<int64_t, std::vector<const tlm::v1::Record*>> by_task;
  for (const tlm::v1::Record& r : records) by_task[r.task_id()].push_back(&r);

  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", Escape(title),
      "</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
      "td:nth-child(-n+5){text-align:left}</style></head>\n<body>\n<h1>", Escape(title),
      "</h1>\n");

  // One chart per workload and target, oldest task first.
  std::vector<tlm::v1::Task> ordered = tasks;
  std::sort(ordered.begin(), ordered.end(),
            [](const tlm::v1::Task& a, const tlm::v1::Task& b) { return a.id() < b.id(); });
  std::vector<std::string> chart_order;
  std::map<std::string, std::vector<Series>> charts;
  // Per network and sampler: task name -> (weight, curve).
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::pair<int64_t, Curve>>>
      networks;
  for (const tlm::v1::Task& t : ordered) {
    const std::string key = absl::StrCat(WorkloadSummary(t.workload()), " on ", t.target().kind());
    if (!charts.count(key)) chart_order.push_back(key);
    Curve curve = BestSoFar(by_task[t.id()]);
    charts[key].push_back({absl::StrCat(t.sampler(), " (task ", t.id(), ")"),
                           SamplerColor(t.sampler()), curve});
    if (auto nw = NetworkWeight(t.name())) {
      networks[{nw->first, t.sampler()}][t.name()] = {nw->second, std::move(curve)};
    }
  }

  if (!networks.empty()) {
    html += "<h2>Networks</h2>\n<p>Estimated latency: the sum over the network's workloads of "
            "weight &times; best latency after k measurements of each.</p>\n";
    std::map<std::string, std::vector<Series>> network_charts;
    for (const auto& [key, per_task] : networks) {
      const auto& [network, sampler] = key;
      const size_t expected = program::NetworkTasks(network)->size();
      size_t length = std::numeric_limits<size_t>::max();
      for (const auto& [name, wc] : per_task) length = std::min(length, wc.second.size());
      Curve sum(per_task.size() == expected ? length : 0, 0.0);
      for (const auto& [name, wc] : per_task) {
        for (size_t k = 0; k < sum.size(); ++k) sum[k] += wc.first * wc.second[k];
      }
      network_charts[network].push_back(
          {absl::StrCat(sampler, per_task.size() == expected
                                     ? ""
                                     : absl::StrCat(" (", per_task.size(), " of ", expected,
                                                    " workloads: not plotted)")),
           SamplerColor(sampler), sum});
    }
    for (const auto& [network, series] : network_charts) html += Chart(network, series);
  }

  html += "<h2>Tasks</h2>\n";
  for (const std::string& key : chart_order) html += Chart(key, charts[key]);

  html += "<h2>Table</h2>\n<table>\n<tr><th>task</th><th>name</th><th>workload</th>"
          "<th>target</th><th>sampler</th><th>trials</th><th>failed</th><th>best</th>"
          "<th>GFLOP/s</th></tr>\n";
  for (const tlm::v1::Task& t : ordered) {
    absl::StrAppend(&html, "<tr><td>", t.id(), "</td><td>", Escape(t.name()), "</td><td>",
                    Escape(WorkloadSummary(t.workload())), "</td><td>",
                    Escape(t.target().kind()), "</td><td>", Escape(t.sampler()), "</td><td>",
                    t.trials_done(), "/", t.num_trials(), "</td><td>", t.trials_failed(),
                    "</td><td>", FormatSeconds(t.best_seconds()), "</td><td>",
                    FormatGflops(WorkloadFlops(t.workload()), t.best_seconds()),
                    "</td></tr>\n");
  }
  return html + "</table>\n</body></html>\n";
}

}  // namespace tlm::client

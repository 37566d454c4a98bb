#include "client/report.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "catch2/catch.hpp"
#include "client/format.h"
#include "program/networks.h"
#include "program/workload.h"

namespace tlm::client {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

tlm::v1::Task MakeTask(int64_t id, const std::string& name, const program::Workload& w,
                       const std::string& sampler) {
  tlm::v1::Task t;
  t.set_id(id);
  t.set_name(name);
  *t.mutable_workload() = program::WorkloadToProto(w);
  t.mutable_target()->set_kind("cpu");
  t.set_sampler(sampler);
  t.set_num_trials(3);
  t.set_trials_done(3);
  t.set_best_seconds(1e-3);
  return t;
}

// Three measurements: a failure, then 2 ms, then 1 ms.
void AddRecords(int64_t task_id, std::vector<tlm::v1::Record>& records) {
  for (double seconds : {0.0, 2e-3, 1e-3}) {
    tlm::v1::Record r;
    r.set_task_id(task_id);
    if (seconds == 0) {
      r.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_RUN_TIMEOUT);
    } else {
      r.mutable_result()->set_error_kind(tlm::v1::ERROR_KIND_NONE);
      r.mutable_result()->set_median_seconds(seconds);
    }
    records.push_back(r);
  }
}

TEST_CASE("one chart per workload with one curve per method, and a table") {
  const program::Workload w = program::DenseWorkload(64, 64, 64);
  std::vector<tlm::v1::Task> tasks = {MakeTask(1, "a <b>", w, "tlm"),
                                      MakeTask(2, "b", w, "random"),
                                      MakeTask(3, "c", program::DenseWorkload(32, 32, 32),
                                               "evolutionary")};
  std::vector<tlm::v1::Record> records;
  for (int64_t id : {1, 2, 3, 99}) AddRecords(id, records);
  const std::string html = RenderReport(tasks, records, "my report");
  REQUIRE(html.rfind("<!DOCTYPE html>", 0) == 0);
  REQUIRE(Count(html, "<svg") == 2);
  REQUIRE(Count(html, "<polyline class=\"curve\"") == 3);
  REQUIRE(Count(html, "<title>tlm (task 1)</title>") == 1);
  REQUIRE(Count(html, "<title>random (task 2)</title>") == 1);
  REQUIRE(Count(html, "<title>evolutionary (task 3)</title>") == 1);
  REQUIRE(Count(html, "<tr><td>") == 3);
  REQUIRE(html.find("a &lt;b&gt;") != std::string::npos);
  REQUIRE(html.find("a <b>") == std::string::npos);
  REQUIRE(html.find("<h1>my report</h1>") != std::string::npos);
  // The failure draws nothing; the two successes draw two points.
  const size_t line = html.find("<polyline class=\"curve\"");
  const std::string points = html.substr(html.find("points=\"", line) + 8);
  REQUIRE(Count(points.substr(0, points.find('"')), ",") == 2);
}

TEST_CASE("a network tuned in full gets an estimated-latency curve per method") {
  std::vector<tlm::v1::Task> tasks;
  std::vector<tlm::v1::Record> records;
  int64_t id = 0;
  const std::vector<program::NetworkTask> network = *program::NetworkTasks("bert_tiny");
  for (const program::NetworkTask& t : network) {
    tasks.push_back(MakeTask(++id, "bert_tiny/" + t.name, t.workload, "random"));
    AddRecords(id, records);
  }
  // Only one workload tuned with tlm: listed, not plotted.
  tasks.push_back(MakeTask(++id, tasks[0].name(), program::WorkloadFromProto(
                                                      tasks[0].workload()).value(), "tlm"));
  AddRecords(id, records);
  const std::string html = RenderReport(tasks, records, "net");
  REQUIRE(html.find("<h2>Networks</h2>") != std::string::npos);
  REQUIRE(html.find("<title>random</title>") != std::string::npos);
  REQUIRE(html.find("<title>tlm (1 of 8 workloads: not plotted)</title>") != std::string::npos);
  // The network's estimated latency after 3 measurements: sum of weights x 1 ms.
  int64_t weights = 0;
  for (const program::NetworkTask& t : network) weights += t.weight;
  REQUIRE(html.find(FormatSeconds(weights * 1e-3)) != std::string::npos);
}

}  // namespace
}  // namespace tlm::client

// How tlmctl shows tasks, latencies and tables to people. Pure functions of
// their arguments; thread-safe.
#ifndef TLMD_CLIENT_FORMAT_H_
#define TLMD_CLIENT_FORMAT_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tlm/v1/program.pb.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::client {

// A latency in the unit that suits it: "812.0 us", "1.234 ms", "2.500 s";
// "-" when it is not positive (no measurement).
std::string FormatSeconds(double seconds);

// Floating-point operations of one run of the workload's main computation
// (dense: 2*M*N*K); 0 for a workload that is not valid.
double WorkloadFlops(const tlm::v1::Workload& workload);

// The best latency once `result` is counted: its median when it succeeded
// and beats `best`, otherwise `best`. A `best` that is not positive (0 or
// NaN) means none yet.
double ImproveBest(double best, const tlm::v1::MeasureResult& result);

// Throughput, e.g. "12.3 GFLOP/s"; empty when either argument is not positive.
std::string FormatGflops(double flops, double seconds);

// One-word summary of a workload: "dense 128x768x3072+bias+relu" for a dense
// workload with exactly M, N and K; otherwise the parameters by name, as in
// "conv2d N=1 C=64+relu".
std::string WorkloadSummary(const tlm::v1::Workload& workload);

// "running", "succeeded", "failed", "cancelled"; "unknown" otherwise.
std::string StateName(tlm::v1::TaskState state);

// True once the task is in a final state (succeeded, failed or cancelled).
bool IsEnded(const tlm::v1::Task& task);

// The task's best latency with its throughput when computable:
// "1.000 ms (2.00 GFLOP/s)"; "-" before any trial succeeded.
std::string BestSummary(const tlm::v1::Task& task);

// The progress bar line tlmctl redraws on a terminal:
// "[###############---------------] 16/32  failed 1  best 1.000 ms (2.00 GFLOP/s)".
std::string ProgressLine(const tlm::v1::Task& task);

// The line tlmctl ends a watch with, e.g.
// "task 7 succeeded: 32/32 trials, 1 failed, best 1.000 ms (2.00 GFLOP/s)",
// followed by "; <message>" when the task carries one.
std::string TaskSummary(const tlm::v1::Task& task);

// A duration for people: "45s", "4m 07s", "2h 05m", "3d 04h"; negative
// durations print as "0s".
std::string HumanDuration(absl::Duration duration);

// Rows (the first is the header) as left-aligned columns separated by two
// spaces, one line each, without trailing spaces. Short rows are padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace tlm::client

#endif  // TLMD_CLIENT_FORMAT_H_

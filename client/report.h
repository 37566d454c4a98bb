// The tuning report: one self-contained HTML file with the tuning curves of
// tasks (best latency against measurements, as inline SVG) and a table.
#ifndef TLMD_CLIENT_REPORT_H_
#define TLMD_CLIENT_REPORT_H_

#include <string>
#include <vector>

#include "tlm/v1/tuning.pb.h"

namespace tlm::client {

// Tasks that tune the same workload on the same target share one chart, one
// line per task labelled with its sampler, so methods compare directly; a
// closing chart sums the curves of every workload tuned by each sampler
// (best latency summed over the workloads that method has results for).
// `records` are the tasks' measurements in the order they were stored
// (tlmctl export's order); records of tasks not in `tasks` are ignored.
std::string RenderReport(const std::vector<tlm::v1::Task>& tasks,
                         const std::vector<tlm::v1::Record>& records,
                         const std::string& title);

}  // namespace tlm::client

#endif  // TLMD_CLIENT_REPORT_H_

// Export and import of measured programs as self-contained records.
#ifndef TLMD_SERVER_RECORDS_H_
#define TLMD_SERVER_RECORDS_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store.h"
#include "tlm/v1/tuning.pb.h"

namespace tlm::server {

inline constexpr int kRecordFormatVersion = 1;

// Calls `emit` with each measured program of the tasks (every task when
// `task_ids` is empty), oldest task first, until it returns false.
absl::Status ExportRecords(Store& store, const std::vector<int64_t>& task_ids,
                           const std::function<bool(const tlm::v1::Record&)>& emit);

// OK when the record can be imported; otherwise INVALID_ARGUMENT naming the
// field, e.g. "record 3: program.text: ...".
absl::Status ValidateRecord(const tlm::v1::Record& record, int index);

// Validates every record, then stores them: one new SUCCEEDED task per
// distinct workload and target. Nothing is stored when any record is bad.
absl::StatusOr<tlm::v1::ImportRecordsResponse> ImportRecords(
    Store& store, const std::vector<tlm::v1::Record>& records, int64_t now_unix_ms);

}  // namespace tlm::server

#endif  // TLMD_SERVER_RECORDS_H_

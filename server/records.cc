#include "server/records.h"

#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "program/program.h"
#include "program/workload.h"

namespace tlm::server {
namespace {

absl::Status Invalid(int index, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("record ", index, ": ", what));
}

}  // namespace

absl::Status ExportRecords(Store& store, const std::vector<int64_t>& task_ids,
                           const std::function<bool(const tlm::v1::Record&)>& emit) {
  std::vector<tlm::v1::Task> tasks;
  if (task_ids.empty()) {
    absl::StatusOr<std::vector<tlm::v1::Task>> all =
        store.ListTasks(std::numeric_limits<int>::max(), {});
    if (!all.ok()) return all.status();
    tasks.assign(all->rbegin(), all->rend());  // oldest first
  } else {
    for (int64_t id : task_ids) {
      absl::StatusOr<tlm::v1::Task> task = store.GetTask(id);
      if (!task.ok()) return task.status();
      tasks.push_back(*std::move(task));
    }
  }
  for (const tlm::v1::Task& task : tasks) {
    absl::StatusOr<std::vector<tlm::v1::Trial>> trials = store.ListTrials(task.id());
    if (!trials.ok()) return trials.status();
    for (tlm::v1::Trial& trial : *trials) {
      tlm::v1::Record record;
      record.set_format_version(kRecordFormatVersion);
      *record.mutable_workload() = task.workload();
      *record.mutable_target() = task.target();
      *record.mutable_program() = std::move(*trial.mutable_program());
      *record.mutable_result() = std::move(*trial.mutable_result());
      record.set_worker_id(trial.worker_id());
      record.set_measured_unix_ms(trial.measured_unix_ms());
      record.set_task_id(task.id());
      record.set_task_name(task.name());
      if (!emit(record)) return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRecord(const tlm::v1::Record& record, int index) {
  if (record.format_version() != kRecordFormatVersion) {
    return Invalid(index, absl::StrCat("format_version: expected ", kRecordFormatVersion, ", got ",
                                       record.format_version()));
  }
  absl::StatusOr<program::Workload> workload = program::WorkloadFromProto(record.workload());
  if (!workload.ok()) return Invalid(index, workload.status().message());
  if (record.target().kind().empty()) return Invalid(index, "target.kind: missing");
  absl::StatusOr<program::Program> parsed = program::ProgramFromProto(record.program());
  if (!parsed.ok()) return Invalid(index, absl::StrCat("program: ", parsed.status().message()));
  if (parsed->workload != *workload) {
    return Invalid(index, "program: its text describes a different workload than workload");
  }
  if (parsed->target != record.target().kind()) {
    return Invalid(index, "program: its text is for a different target than target.kind");
  }
  const tlm::v1::MeasureResult& r = record.result();
  if (r.error_kind() == tlm::v1::ERROR_KIND_UNSPECIFIED ||
      !tlm::v1::ErrorKind_IsValid(r.error_kind())) {
    return Invalid(index, "result.error_kind: missing or unknown");
  }
  if (r.error_kind() == tlm::v1::ERROR_KIND_NONE && !(r.median_seconds() > 0)) {
    return Invalid(index, "result.median_seconds: a successful result needs a positive latency");
  }
  for (double s : r.repeat_seconds()) {
    if (!(s >= 0)) return Invalid(index, "result.repeat_seconds: negative or not a number");
  }
  return absl::OkStatus();
}

absl::StatusOr<tlm::v1::ImportRecordsResponse> ImportRecords(
    Store& store, const std::vector<tlm::v1::Record>& records, int64_t now_unix_ms) {
  for (size_t i = 0; i < records.size(); ++i) {
    if (absl::Status s = ValidateRecord(records[i], static_cast<int>(i)); !s.ok()) return s;
  }
  // One task per (canonical workload, target kind, device), in first-seen order.
  using Key = std::tuple<std::string, std::string, std::string>;
  std::map<Key, std::vector<const tlm::v1::Record*>> groups;
  std::vector<Key> order;
  for (const tlm::v1::Record& r : records) {
    const program::Workload w = *program::WorkloadFromProto(r.workload());
    Key key{program::WorkloadSummary(w), r.target().kind(), r.target().device()};
    if (groups.count(key) == 0) order.push_back(key);
    groups[key].push_back(&r);
  }

  tlm::v1::ImportRecordsResponse response;
  for (const Key& key : order) {
    const std::vector<const tlm::v1::Record*>& group = groups[key];
    std::set<std::string> distinct;
    for (const tlm::v1::Record* r : group) {
      distinct.insert(program::Print(*program::ProgramFromProto(r->program())));
    }
    tlm::v1::SubmitTaskRequest request;
    request.set_name(absl::StrCat("imported: ", group.front()->task_name()).substr(0, 200));
    *request.mutable_workload() =
        program::WorkloadToProto(*program::WorkloadFromProto(group.front()->workload()));
    *request.mutable_target() = group.front()->target();
    request.set_num_trials(static_cast<int32_t>(distinct.size()));
    request.set_sampler("imported");
    absl::StatusOr<tlm::v1::Task> task = store.CreateTask(request, now_unix_ms);
    if (!task.ok()) return task.status();
    int stored = 0;
    for (const tlm::v1::Record* r : group) {
      // Stored in canonical form, with the hash recomputed.
      const tlm::v1::Program canonical =
          program::ProgramToProto(*program::ProgramFromProto(r->program()));
      absl::StatusOr<AddedProgram> added = store.AddProgram(task->id(), canonical);
      if (!added.ok()) return added.status();
      if (!added->inserted) {
        response.set_duplicates(response.duplicates() + 1);
        continue;
      }
      MeasurementRecord m;
      m.program_id = added->program_id;
      m.worker_id = r->worker_id();
      m.attempt = 1;
      m.result = r->result();
      m.measured_unix_ms = r->measured_unix_ms();
      if (absl::Status s = store.RecordMeasurement(m); !s.ok()) return s;
      ++stored;
    }
    response.set_imported(response.imported() + stored);
    const std::string message = absl::StrCat("imported ", stored, " records");
    if (absl::Status s =
            store.SetTaskState(task->id(), tlm::v1::TASK_STATE_SUCCEEDED, message, now_unix_ms);
        !s.ok()) {
      return s;
    }
    response.add_task_ids(task->id());
  }
  return response;
}

}  // namespace tlm::server

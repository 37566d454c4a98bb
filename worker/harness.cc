#include "worker/harness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"
#include "worker/half.h"

namespace tlm::worker {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<WorkloadData> MakeWorkloadData(const program::Workload& workload) {
  absl::StatusOr<program::ComputeDag> dag = program::BuildDag(workload);
  if (!dag.ok()) return dag.status();
  WorkloadData d;
  d.workload = workload;
  d.dag = std::move(*dag);
  d.tensors = program::MakeInputs(d.dag);
  for (size_t t = 0; t < d.dag.tensors.size(); ++t) {
    d.tensors[t].resize(d.dag.tensors[t].elements());
    d.pointers.push_back(d.tensors[t].data());
  }
  d.reference = program::EvaluateReference(d.dag, d.tensors);
  return d;
}

void RoundInputsToHalf(WorkloadData& data) {
  for (size_t t = 0; t < data.tensors.size(); ++t) {
    if (data.dag.tensors[t].role != program::TensorRole::kInput) continue;
    for (float& x : data.tensors[t]) x = RoundThroughHalf(x);
  }
  data.reference = program::EvaluateReference(data.dag, data.tensors);
}

tlm::v1::MeasureResult FailedMeasurement(tlm::v1::ErrorKind kind, const std::string& stage,
                                         const std::string& message) {
  tlm::v1::MeasureResult r;
  r.set_error_kind(kind);
  r.set_error_stage(stage);
  r.set_error_message(message);
  return r;
}

absl::StatusOr<program::Program> ParseProgramFor(const tlm::v1::Program& proto,
                                                 absl::string_view target,
                                                 tlm::v1::MeasureResult* failure) {
  absl::StatusOr<program::Program> parsed = program::ProgramFromProto(proto);
  if (parsed.ok() && parsed->target != target) {
    parsed = absl::InvalidArgumentError(absl::StrCat("the program targets ", parsed->target,
                                                     "; this backend measures ", target));
  }
  if (!parsed.ok()) {
    *failure = FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "parse",
                                 std::string(parsed.status().message()));
  }
  return parsed;
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "unknown CPU";
}

tlm::v1::WorkerCapabilities CpuCapabilities(const std::string& backend,
                                            const std::string& device_name, int num_threads) {
  tlm::v1::WorkerCapabilities caps;
  caps.mutable_target()->set_kind("cpu");
  caps.set_backend(backend);
  caps.set_device_name(device_name);
  caps.set_num_threads(num_threads);
  return caps;
}

absl::Status CheckOutput(absl::Span<const float> output, const program::ReferenceOutput& reference,
                         double relative_slack, double* max_abs_error) {
  for (size_t n = 0; n < output.size(); ++n) {
    if (!std::isfinite(output[n])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("output[%d] = %f: not written or not finite", n, output[n]));
    }
  }
  double max_error = 0;
  int64_t worst = -1;
  double worst_tolerance = 0;
  for (size_t i = 0; i < reference.index.size(); ++i) {
    const double expected = reference.expected[i];
    const double error = std::fabs(output[reference.index[i]] - expected);
    max_error = std::max(max_error, error);
    const double tolerance = reference.tolerance[i] + relative_slack * (std::fabs(expected) + 1);
    if (!(error <= tolerance) && worst < 0) {
      worst = static_cast<int64_t>(i);
      worst_tolerance = tolerance;
    }
  }
  *max_abs_error = max_error;
  if (worst >= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "output[%d] = %.6g, expected %.6g (tolerance %.3g); max abs error %.3g over %d checked "
        "elements",
        reference.index[worst], output[reference.index[worst]], reference.expected[worst],
        worst_tolerance, max_error, reference.index.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkloadData*> Harness::DataFor(const program::Workload& workload) {
  if (!data_.has_value() || data_->workload != workload) {
    const auto start = std::chrono::steady_clock::now();
    data_.reset();
    absl::StatusOr<WorkloadData> data = MakeWorkloadData(workload);
    if (!data.ok()) return data.status();
    data_ = std::move(*data);
    spdlog::debug("prepared inputs and reference for {} in {:.3f} s",
                  program::WorkloadSummary(workload), Seconds(start));
  }
  return &*data_;
}

tlm::v1::MeasureResult Harness::Measure(const program::Program& program, const Kernel& kernel,
                                        const tlm::v1::MeasureOptions& raw_options,
                                        double build_seconds, std::string source) {
  const tlm::v1::MeasureOptions options = WithDefaults(raw_options);
  const auto prepare_start = std::chrono::steady_clock::now();
  absl::StatusOr<WorkloadData*> data_or = DataFor(program.workload);
  build_seconds += Seconds(prepare_start);
  if (!data_or.ok()) {
    tlm::v1::MeasureResult failure = FailedMeasurement(
        tlm::v1::ERROR_KIND_INSTANTIATION, "build", std::string(data_or.status().message()));
    failure.set_build_seconds(build_seconds);
    return failure;
  }
  WorkloadData& data = **data_or;
  std::vector<float>& out = data.tensors[data.dag.stages.back().output];
  const absl::Time deadline = absl::Now() + absl::Seconds(options.run_timeout_s());
  const auto run_start = std::chrono::steady_clock::now();
  auto call = [&] {
    kernel(data.pointers.data());
    if (corrupt_output_) out[out.size() / 2] += 0.5f;
  };

  tlm::v1::MeasureResult result;
  result.set_build_seconds(build_seconds);
  auto wrong = [&](const std::string& message) {
    result.set_error_kind(tlm::v1::ERROR_KIND_WRONG_ANSWER);
    result.set_error_stage("check");
    result.set_error_message(message);
    result.set_run_seconds(Seconds(run_start));
    return result;
  };
  if (!options.skip_check()) {
    // Elements the kernel never writes stay NaN and fail the check.
    std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
    call();
    double max_error = 0;
    const absl::Status checked = CheckOutput(out, data.reference, 0, &max_error);
    result.set_max_abs_error(max_error);
    if (!checked.ok()) return wrong(std::string(checked.message()));
  }

  absl::StatusOr<Timing> timing = TimeCalls(
      call, options, [this] { flusher_.Flush(); }, deadline);
  result.set_run_seconds(Seconds(run_start));
  if (!timing.ok()) {
    result.set_error_kind(tlm::v1::ERROR_KIND_RUN_TIMEOUT);
    result.set_error_stage("run");
    result.set_error_message(std::string(timing.status().message()));
    return result;
  }
  result.set_error_kind(tlm::v1::ERROR_KIND_NONE);
  for (double s : timing->repeat_seconds) result.add_repeat_seconds(s);
  result.set_median_seconds(timing->median_seconds);
  result.set_number(timing->number);
  result.set_source(std::move(source));
  return result;
}

}  // namespace tlm::worker

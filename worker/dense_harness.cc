#include "worker/dense_harness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace tlm::worker {
namespace {

using program::Epilogue;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

DenseData MakeDenseData(const program::DenseWorkload& w) {
  DenseData d;
  d.workload = w;
  std::mt19937 rng(20240101);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  d.a.resize(w.m * w.k);
  d.b.resize(w.k * w.n);
  for (float& x : d.a) x = uniform(rng);
  for (float& x : d.b) x = uniform(rng);
  if (w.has_bias()) {
    d.bias.resize(w.n);
    for (float& x : d.bias) x = uniform(rng);
  }
  d.expected.assign(w.m * w.n, 0.0);
  std::vector<double> magnitude(w.m * w.n, 0.0);
  for (int64_t i = 0; i < w.m; ++i) {
    for (int64_t k = 0; k < w.k; ++k) {
      const double a = d.a[i * w.k + k];
      for (int64_t j = 0; j < w.n; ++j) {
        const double p = a * d.b[k * w.n + j];
        d.expected[i * w.n + j] += p;
        magnitude[i * w.n + j] += std::fabs(p);
      }
    }
  }
  for (Epilogue e : w.epilogue) {
    for (int64_t i = 0; i < w.m; ++i) {
      for (int64_t j = 0; j < w.n; ++j) {
        double& x = d.expected[i * w.n + j];
        if (e == Epilogue::kBias) {
          x += d.bias[j];
          magnitude[i * w.n + j] += std::fabs(d.bias[j]);
        } else {
          x = std::max(x, 0.0);
        }
      }
    }
  }
  d.tolerance.resize(magnitude.size());
  // Rounding error of any summation order of K+2 fp32 terms (FMA or not):
  // gamma(K+2) * sum|terms|, plus room for subnormals.
  const double u = std::ldexp(1.0, -24);
  const double n_terms = static_cast<double>(w.k + 2);
  const double gamma = n_terms * u / (1 - n_terms * u);
  for (size_t n = 0; n < magnitude.size(); ++n) {
    d.tolerance[n] = gamma * magnitude[n] + n_terms * std::numeric_limits<float>::min();
  }
  return d;
}

tlm::v1::MeasureResult FailedMeasurement(tlm::v1::ErrorKind kind, const std::string& stage,
                                         const std::string& message) {
  tlm::v1::MeasureResult r;
  r.set_error_kind(kind);
  r.set_error_stage(stage);
  r.set_error_message(message);
  return r;
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
                                            const std::string& device_name) {
  tlm::v1::WorkerCapabilities caps;
  caps.mutable_target()->set_kind("cpu");
  caps.set_backend(backend);
  caps.set_device_name(device_name);
  caps.set_num_threads(1);
  return caps;
}

const DenseData& DenseHarness::DataFor(const program::DenseWorkload& workload) {
  if (!data_.has_value() || data_->workload != workload) {
    const auto start = std::chrono::steady_clock::now();
    data_.reset();
    data_ = MakeDenseData(workload);
    output_.assign(workload.m * workload.n, 0.0f);
    spdlog::debug("prepared inputs and reference for {} in {:.3f} s",
                  program::WorkloadSummary(workload), Seconds(start));
  }
  return *data_;
}

tlm::v1::MeasureResult DenseHarness::Measure(const program::DenseProgram& program,
                                             const DenseKernel& kernel,
                                             const tlm::v1::MeasureOptions& raw_options,
                                             double build_seconds, std::string source) {
  const tlm::v1::MeasureOptions options = WithDefaults(raw_options);
  const auto prepare_start = std::chrono::steady_clock::now();
  const DenseData& data = DataFor(program.workload);
  build_seconds += Seconds(prepare_start);

  const program::DenseWorkload& w = program.workload;
  const float* bias = data.bias.empty() ? nullptr : data.bias.data();
  float* c = output_.data();
  const absl::Time deadline = absl::Now() + absl::Seconds(options.run_timeout_s());
  const auto run_start = std::chrono::steady_clock::now();
  auto call = [&] {
    kernel(data.a.data(), data.b.data(), bias, c);
    if (corrupt_output_) c[(w.m * w.n) / 2] += 0.5f;
  };

  tlm::v1::MeasureResult result;
  result.set_build_seconds(build_seconds);
  if (!options.skip_check()) {
    // Elements the kernel never writes stay NaN and fail the check.
    std::fill(output_.begin(), output_.end(), std::numeric_limits<float>::quiet_NaN());
    call();
    double max_error = 0;
    int64_t worst = -1;
    for (int64_t n = 0; n < w.m * w.n; ++n) {
      const double error = std::fabs(c[n] - data.expected[n]);
      max_error = std::max(max_error, error);
      if (!(error <= data.tolerance[n]) && worst < 0) worst = n;
    }
    result.set_max_abs_error(max_error);
    if (worst >= 0) {
      result.set_error_kind(tlm::v1::ERROR_KIND_WRONG_ANSWER);
      result.set_error_stage("check");
      result.set_error_message(absl::StrFormat(
          "C[%d, %d] = %.6g, expected %.6g (tolerance %.3g); max abs error %.3g", worst / w.n,
          worst % w.n, c[worst], data.expected[worst], data.tolerance[worst], max_error));
      result.set_run_seconds(Seconds(run_start));
      return result;
    }
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

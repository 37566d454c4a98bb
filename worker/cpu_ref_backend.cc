#include "worker/cpu_ref_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace tlm::worker {
namespace {

using program::DenseProgram;
using program::Epilogue;

int AxisIndex(char axis) { return axis == 'i' ? 0 : axis == 'j' ? 1 : 2; }

void ApplyEpilogue(const program::DenseWorkload& w, const float* bias, float* c) {
  for (Epilogue e : w.epilogue) {
    for (int64_t i = 0; i < w.m; ++i) {
      float* row = c + i * w.n;
      if (e == Epilogue::kBias) {
        for (int64_t j = 0; j < w.n; ++j) row[j] += bias[j];
      } else {
        for (int64_t j = 0; j < w.n; ++j) row[j] = std::max(row[j], 0.0f);
      }
    }
  }
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

tlm::v1::MeasureResult Failure(tlm::v1::ErrorKind kind, const char* stage,
                               const std::string& message) {
  tlm::v1::MeasureResult r;
  r.set_error_kind(kind);
  r.set_error_stage(stage);
  r.set_error_message(message);
  return r;
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
  for (size_t n = 0; n < magnitude.size(); ++n) d.tolerance[n] = 1e-5 * magnitude[n] + 1e-6;
  return d;
}

void RunDense(const DenseProgram& p, const float* a, const float* b, const float* bias, float* c) {
  const program::DenseWorkload& w = p.workload;
  const program::DenseSchedule& s = p.schedule;
  const int64_t extent[3] = {w.m, w.n, w.k};
  const int64_t middle[3] = {s.i.middle, s.j.middle, s.k.middle};
  const int64_t inner[3] = {s.i.inner, s.j.inner, s.k.inner};
  int64_t outer[3];
  for (int x = 0; x < 3; ++x) outer[x] = extent[x] / (middle[x] * inner[x]);
  const int l0 = AxisIndex(s.order[0]);
  const int l1 = AxisIndex(s.order[1]);
  const int l2 = AxisIndex(s.order[2]);
  const int64_t n = w.n;
  const int64_t k_extent = w.k;

  std::fill(c, c + w.m * w.n, 0.0f);
  int64_t o[3];
  int64_t m[3];
  for (o[l0] = 0; o[l0] < outer[l0]; ++o[l0]) {
    for (o[l1] = 0; o[l1] < outer[l1]; ++o[l1]) {
      for (o[l2] = 0; o[l2] < outer[l2]; ++o[l2]) {
        for (m[l0] = 0; m[l0] < middle[l0]; ++m[l0]) {
          for (m[l1] = 0; m[l1] < middle[l1]; ++m[l1]) {
            for (m[l2] = 0; m[l2] < middle[l2]; ++m[l2]) {
              const int64_t i0 = (o[0] * middle[0] + m[0]) * inner[0];
              const int64_t j0 = (o[1] * middle[1] + m[1]) * inner[1];
              const int64_t k0 = (o[2] * middle[2] + m[2]) * inner[2];
              for (int64_t ii = 0; ii < inner[0]; ++ii) {
                float* __restrict crow = c + (i0 + ii) * n + j0;
                for (int64_t kk = 0; kk < inner[2]; ++kk) {
                  const float av = a[(i0 + ii) * k_extent + k0 + kk];
                  const float* __restrict brow = b + (k0 + kk) * n + j0;
                  for (int64_t jj = 0; jj < inner[1]; ++jj) crow[jj] += av * brow[jj];
                }
              }
            }
          }
        }
      }
    }
  }
  ApplyEpilogue(w, bias, c);
}

std::string RenderLoopNest(const DenseProgram& p) {
  const program::DenseWorkload& w = p.workload;
  const program::DenseSchedule& s = p.schedule;
  const program::AxisTiling* tiling[3] = {&s.i, &s.j, &s.k};
  const int64_t extent[3] = {w.m, w.n, w.k};
  const char names[3] = {'i', 'j', 'k'};
  std::string out = absl::StrCat("C[0:", w.m, ", 0:", w.n, "] = 0\n");
  std::string indent;
  for (char axis : s.order) {
    const int x = AxisIndex(axis);
    absl::StrAppend(&out, indent, "for ", std::string(1, names[x]), ".outer in 0..",
                    extent[x] / (tiling[x]->middle * tiling[x]->inner), ":\n");
    indent += "  ";
  }
  for (char axis : s.order) {
    const int x = AxisIndex(axis);
    absl::StrAppend(&out, indent, "for ", std::string(1, names[x]), ".middle in 0..",
                    tiling[x]->middle, ":\n");
    indent += "  ";
  }
  for (int x : {0, 2, 1}) {
    absl::StrAppend(&out, indent, "for ", std::string(1, names[x]), ".inner in 0..",
                    tiling[x]->inner, ":\n");
    indent += "  ";
  }
  absl::StrAppend(&out, indent, "C[i, j] += A[i, k] * B[k, j]\n");
  for (Epilogue e : w.epilogue) {
    absl::StrAppend(&out, e == Epilogue::kBias ? "C[i, j] += bias[j]" : "C[i, j] = max(C[i, j], 0)",
                    "  for all i, j\n");
  }
  return out;
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

CpuRefBackend::CpuRefBackend(Options options) : options_(options) {}

tlm::v1::WorkerCapabilities CpuRefBackend::Capabilities() const {
  tlm::v1::WorkerCapabilities caps;
  caps.mutable_target()->set_kind("cpu");
  caps.set_backend(name());
  caps.set_device_name(CpuModelName());
  caps.set_num_threads(1);
  return caps;
}

const DenseData& CpuRefBackend::DataFor(const program::DenseWorkload& workload) {
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

tlm::v1::MeasureResult CpuRefBackend::Measure(const tlm::v1::Program& program,
                                              const tlm::v1::MeasureOptions& raw_options) {
  const tlm::v1::MeasureOptions options = WithDefaults(raw_options);
  const auto build_start = std::chrono::steady_clock::now();
  absl::StatusOr<DenseProgram> parsed = program::ProgramFromProto(program);
  if (!parsed.ok()) {
    return Failure(tlm::v1::ERROR_KIND_INSTANTIATION, "parse",
                   std::string(parsed.status().message()));
  }
  // Preparing inputs and the reference (once per workload) counts as building.
  const DenseData& data = DataFor(parsed->workload);
  const double build_seconds = Seconds(build_start);

  const program::DenseWorkload& w = parsed->workload;
  const float* bias = data.bias.empty() ? nullptr : data.bias.data();
  float* c = output_.data();
  const absl::Time deadline = absl::Now() + absl::Seconds(options.run_timeout_s());
  const auto run_start = std::chrono::steady_clock::now();
  auto call = [&] {
    RunDense(*parsed, data.a.data(), data.b.data(), bias, c);
    if (options_.corrupt_output_for_testing) c[(w.m * w.n) / 2] += 0.5f;
  };

  tlm::v1::MeasureResult result;
  if (!options.skip_check()) {
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
      tlm::v1::MeasureResult failure = Failure(
          tlm::v1::ERROR_KIND_WRONG_ANSWER, "check",
          absl::StrFormat("C[%d, %d] = %.6g, expected %.6g (tolerance %.3g); max abs error %.3g",
                          worst / w.n, worst % w.n, c[worst], data.expected[worst],
                          data.tolerance[worst], max_error));
      failure.set_max_abs_error(max_error);
      failure.set_build_seconds(build_seconds);
      failure.set_run_seconds(Seconds(run_start));
      return failure;
    }
  }

  absl::StatusOr<Timing> timing = TimeCalls(
      call, options, [this] { flusher_.Flush(); }, deadline);
  result.set_build_seconds(build_seconds);
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
  result.set_source(RenderLoopNest(*parsed));
  return result;
}

}  // namespace tlm::worker

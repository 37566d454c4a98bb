#include "worker/cpu_ref_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tlm::worker {
namespace {

using program::DenseProgram;
using program::Epilogue;

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

}  // namespace

void RunDense(const DenseProgram& p, const float* a, const float* b, const float* bias, float* c) {
  const program::DenseWorkload& w = p.workload;
  const program::DenseLoops loops = program::LoopsOf(p);
  const int64_t* outer = loops.outer;
  const int64_t* middle = loops.middle;
  const int64_t* inner = loops.inner;
  const int l0 = loops.order[0];
  const int l1 = loops.order[1];
  const int l2 = loops.order[2];
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

CpuRefBackend::CpuRefBackend(Options options) {
  harness_.set_corrupt_output_for_testing(options.corrupt_output_for_testing);
}

tlm::v1::WorkerCapabilities CpuRefBackend::Capabilities() const {
  return CpuCapabilities(name(), CpuModelName());
}

tlm::v1::MeasureResult CpuRefBackend::Measure(const tlm::v1::Program& program,
                                              const tlm::v1::MeasureOptions& options) {
  const auto build_start = std::chrono::steady_clock::now();
  absl::StatusOr<DenseProgram> parsed = program::ProgramFromProto(program);
  if (!parsed.ok()) {
    return FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "parse",
                             std::string(parsed.status().message()));
  }
  const DenseProgram& p = *parsed;
  return harness_.Measure(
      p,
      [&p](const float* a, const float* b, const float* bias, float* c) {
        RunDense(p, a, b, bias, c);
      },
      options, Seconds(build_start), program::PrintLoopNest(p));
}

}  // namespace tlm::worker

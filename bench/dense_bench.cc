// Best kernel found by random search with the LLVM cpu backend vs OpenBLAS
// sgemm (plus a separate epilogue pass for fused workloads), single-threaded,
// in one process, timed with the same harness.
//
//   bazel run //bench:dense_bench -- M N K TRIALS [EPILOGUE]
//   e.g. 1024 1024 1024 1000   or   128 3072 768 1000 bias,relu
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "program/program.h"
#include "program/sampler.h"
#include "worker/dense_harness.h"
#include "worker/llvm_cpu_backend.h"

extern "C" void openblas_set_num_threads(int);

int main(int argc, char** argv) {
  using tlm::program::Epilogue;
  int64_t m = 0, n = 0, k = 0, trials = 0;
  if (argc < 5 || !absl::SimpleAtoi(argv[1], &m) || !absl::SimpleAtoi(argv[2], &n) ||
      !absl::SimpleAtoi(argv[3], &k) || !absl::SimpleAtoi(argv[4], &trials)) {
    std::fprintf(stderr, "usage: dense_bench M N K TRIALS [bias,relu]\n");
    return 2;
  }
  tlm::program::DenseWorkload w{m, n, k, {}};
  if (argc > 5) {
    for (absl::string_view e : absl::StrSplit(argv[5], ',')) {
      w.epilogue.push_back(*tlm::program::ParseEpilogue(e));
    }
  }
  tlm::worker::LlvmCpuBackend backend;
  tlm::program::ScheduleSpace space(w);
  std::mt19937_64 rng(1);
  tlm::v1::MeasureOptions options;
  double best = 0;
  std::string best_text;
  std::map<std::string, int> failures;  // by error kind
  const auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < trials; ++t) {
    const tlm::program::DenseProgram p = space.Sample(rng);
    const tlm::v1::MeasureResult r = backend.Measure(tlm::program::ProgramToProto(p), options);
    if (r.error_kind() != tlm::v1::ERROR_KIND_NONE) {
      ++failures[tlm::v1::ErrorKind_Name(r.error_kind())];
      continue;
    }
    if (best == 0 || r.median_seconds() < best) {
      best = r.median_seconds();
      best_text = tlm::program::Print(p);
    }
  }
  const double search_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // OpenBLAS on the same inputs, one thread, same timing method.
  openblas_set_num_threads(1);
  const tlm::worker::DenseData d = tlm::worker::MakeDenseData(w);
  std::vector<float> c(m * n);
  tlm::worker::CacheFlusher flusher;
  auto blas = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, d.a.data(), k, d.b.data(),
                n, 0.0f, c.data(), n);
    for (Epilogue e : w.epilogue) {
      for (int64_t i = 0; i < m; ++i) {
        float* row = c.data() + i * n;
        if (e == Epilogue::kBias) {
          for (int64_t j = 0; j < n; ++j) row[j] += d.bias[j];
        } else {
          for (int64_t j = 0; j < n; ++j) row[j] = std::max(row[j], 0.0f);
        }
      }
    }
  };
  absl::StatusOr<tlm::worker::Timing> blas_time = tlm::worker::TimeCalls(
      blas, options, [&] { flusher.Flush(); }, absl::InfiniteFuture());
  const double flops = w.flops();
  std::printf("workload        %s\n", tlm::program::WorkloadSummary(w).c_str());
  std::printf("target          %s\n", tlm::worker::HostTargetDescription().c_str());
  std::string failed;
  for (const auto& [kind, count] : failures) absl::StrAppend(&failed, " ", kind, "=", count);
  std::printf(
      "search          %lld trials in %.1f s: %.3f s per measurement, %.1f / min; failed:%s\n",
      static_cast<long long>(trials), search_s, search_s / trials, 60.0 * trials / search_s,
      failed.empty() ? " none" : failed.c_str());
  std::printf("best (LLVM)     %.3f ms  %.2f GFLOP/s  %s\n", best * 1e3, flops / best / 1e9,
              best_text.c_str());
  std::printf("OpenBLAS%s %.3f ms  %.2f GFLOP/s\n", w.epilogue.empty() ? "        " : "+epi    ",
              blas_time->median_seconds * 1e3, flops / blas_time->median_seconds / 1e9);
  std::printf("ratio           %.2fx OpenBLAS speed\n", blas_time->median_seconds / best);
  return 0;
}

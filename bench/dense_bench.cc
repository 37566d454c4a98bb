// Best kernel found by random search with the LLVM cpu backend vs OpenBLAS
// sgemm (plus a separate epilogue pass for fused workloads), with the same
// number of threads, in one process, timed with the same harness.
//
//   bazel run -c opt //bench:dense_bench -- M N K TRIALS [EPILOGUE] [THREADS]
//   e.g. 1024 1024 1024 1000   or   128 3072 768 1000 bias,gelu
#include <cblas.h>

#include <chrono>
#include <cmath>
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
#include "worker/harness.h"
#include "worker/llvm_codegen.h"
#include "worker/llvm_cpu_backend.h"
#include "worker/thread_pool.h"

extern "C" void openblas_set_num_threads(int);

namespace {

const float* TensorNamed(const tlm::worker::WorkloadData& d, const std::string& name) {
  for (size_t t = 0; t < d.dag.tensors.size(); ++t) {
    if (d.dag.tensors[t].name == name) return d.tensors[t].data();
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  using tlm::program::Epilogue;
  int64_t m = 0, n = 0, k = 0, trials = 0;
  int threads = tlm::worker::HardwareThreads();
  if (argc < 5 || !absl::SimpleAtoi(argv[1], &m) || !absl::SimpleAtoi(argv[2], &n) ||
      !absl::SimpleAtoi(argv[3], &k) || !absl::SimpleAtoi(argv[4], &trials) ||
      (argc > 6 && !absl::SimpleAtoi(argv[6], &threads))) {
    std::fprintf(stderr, "usage: dense_bench M N K TRIALS [bias,gelu|none] [THREADS]\n");
    return 2;
  }
  std::vector<Epilogue> epilogue;
  if (argc > 5 && std::string(argv[5]) != "none") {
    for (absl::string_view e : absl::StrSplit(argv[5], ',')) {
      absl::StatusOr<Epilogue> parsed = tlm::program::ParseEpilogue(e);
      if (!parsed.ok()) {
        std::fprintf(stderr, "%s\n", std::string(parsed.status().message()).c_str());
        return 2;
      }
      epilogue.push_back(*parsed);
    }
  }
  absl::StatusOr<tlm::program::Workload> workload = tlm::program::MakeWorkload(
      "dense", {{"M", m}, {"N", n}, {"K", k}}, epilogue);
  if (!workload.ok()) {
    std::fprintf(stderr, "%s\n", std::string(workload.status().message()).c_str());
    return 2;
  }
  const tlm::program::Workload& w = *workload;
  tlm::worker::LlvmCpuBackend::Options backend_options;
  backend_options.num_threads = threads;
  tlm::worker::LlvmCpuBackend backend(backend_options);
  const tlm::program::Sketch sketch = *tlm::program::Sketch::Make(w, "cpu");
  std::mt19937_64 rng(1);
  // Random programs include some a thousand times slower than the best; a
  // tuner cuts them off, and so does this search.
  tlm::v1::MeasureOptions options;
  options.set_run_timeout_s(5);
  double best = 0;
  tlm::program::Program best_program;
  std::map<std::string, int> failures;  // by error kind
  double build_s = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < trials; ++t) {
    const tlm::program::Program p = tlm::program::SampleProgram(sketch, rng);
    const tlm::v1::MeasureResult r = backend.Measure(tlm::program::ProgramToProto(p), options);
    build_s += r.build_seconds();
    if (r.error_kind() != tlm::v1::ERROR_KIND_NONE) {
      ++failures[tlm::v1::ErrorKind_Name(r.error_kind())];
      continue;
    }
    if (best == 0 || r.median_seconds() < best) {
      best = r.median_seconds();
      best_program = p;
      std::fprintf(stderr, "trial %lld: %.3f ms\n", static_cast<long long>(t), best * 1e3);
    }
  }
  const double search_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // OpenBLAS on the same inputs and thread count, same timing method.
  openblas_set_num_threads(threads);
  const tlm::worker::WorkloadData d = *tlm::worker::MakeWorkloadData(w);
  const float* a = TensorNamed(d, "A");
  const float* b = TensorNamed(d, "B");
  const float* bias = TensorNamed(d, "bias");
  const float* residual = TensorNamed(d, "residual");
  std::vector<float> c(m * n);
  tlm::worker::CacheFlusher flusher;
  auto blas = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f,
                c.data(), n);
    for (Epilogue e : w.epilogue) {
      for (int64_t i = 0; i < m; ++i) {
        float* row = c.data() + i * n;
        switch (e) {
          case Epilogue::kBias:
            for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
            break;
          case Epilogue::kRelu:
            for (int64_t j = 0; j < n; ++j) row[j] = std::max(row[j], 0.0f);
            break;
          case Epilogue::kRelu6:
            for (int64_t j = 0; j < n; ++j) row[j] = std::min(std::max(row[j], 0.0f), 6.0f);
            break;
          case Epilogue::kGelu:
            for (int64_t j = 0; j < n; ++j) {
              row[j] = 0.5f * row[j] * (1.0f + std::erf(row[j] * 0.70710678f));
            }
            break;
          case Epilogue::kAdd:
            for (int64_t j = 0; j < n; ++j) row[j] += residual[i * n + j];
            break;
        }
      }
    }
  };
  // The search ran on a shared machine: the best program and OpenBLAS are
  // timed again, alternately, and each keeps its fastest median.
  options.set_run_timeout_s(60);
  double best_again = 0, blas_seconds = 0;
  for (int round = 0; best > 0 && round < 3; ++round) {
    const tlm::v1::MeasureResult r =
        backend.Measure(tlm::program::ProgramToProto(best_program), options);
    if (r.error_kind() == tlm::v1::ERROR_KIND_NONE &&
        (best_again == 0 || r.median_seconds() < best_again)) {
      best_again = r.median_seconds();
    }
    absl::StatusOr<tlm::worker::Timing> blas_time = tlm::worker::TimeCalls(
        blas, options, [&] { flusher.Flush(); }, absl::InfiniteFuture());
    if (blas_time.ok() && (blas_seconds == 0 || blas_time->median_seconds < blas_seconds)) {
      blas_seconds = blas_time->median_seconds;
    }
  }
  const double flops = tlm::program::WorkloadFlops(w);
  std::printf("workload        %s\n", tlm::program::WorkloadSummary(w).c_str());
  std::printf("target          %s, %d threads\n", tlm::worker::HostTargetDescription().c_str(),
              threads);
  std::string failed;
  for (const auto& [kind, count] : failures) absl::StrAppend(&failed, " ", kind, "=", count);
  std::printf(
      "search          %lld trials in %.1f s: %.3f s per measurement (%.3f s building), %.1f / "
      "min; failed:%s\n",
      static_cast<long long>(trials), search_s, search_s / trials, build_s / trials,
      60.0 * trials / search_s, failed.empty() ? " none" : failed.c_str());
  if (best_again == 0 || blas_seconds == 0) {
    std::printf("no program succeeded\n");
    return 1;
  }
  std::printf("best in search  %.3f ms\n", best * 1e3);
  std::printf("best (LLVM)     %.3f ms  %.2f GFLOP/s\n                %s\n", best_again * 1e3,
              flops / best_again / 1e9, tlm::program::Print(best_program).c_str());
  std::printf("OpenBLAS%s %.3f ms  %.2f GFLOP/s\n", w.epilogue.empty() ? "        " : "+epi    ",
              blas_seconds * 1e3, flops / blas_seconds / 1e9);
  std::printf("ratio           %.2fx OpenBLAS speed\n", blas_seconds / best_again);
  return 0;
}

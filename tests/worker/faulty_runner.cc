// A runner whose kernels misbehave on request, for the isolation tests.
//
// Without arguments: program text "crash" stores out of bounds, "hang" never
// returns, "exit" leaves with code 3, "device-error" answers with an
// ERROR_KIND_RUNTIME_DEVICE result and stays alive; anything else succeeds
// and reports in `number` how many programs this process has measured and in
// `source` the texts of the programs prefetched so far, comma-separated.
//
// With --llvm: the real LLVM cpu backend, whose loop nests are broken
// before compilation for dense workloads with M = 13 (every store moved 2^40
// elements out of bounds) and M = 17 (the outermost loop's body repeated endlessly).
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "worker/isolated_backend.h"
#include "worker/llvm_cpu_backend.h"

namespace {

class FaultyBackend : public tlm::worker::Backend {
 public:
  std::string name() const override { return "faulty"; }
  tlm::v1::WorkerCapabilities Capabilities() const override { return {}; }
  tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                 const tlm::v1::MeasureOptions&) override {
    const std::string& text = program.text();
    if (text == "crash") {
      volatile float* unmapped = nullptr;
      unmapped[1 << 20] = 1.0f;  // out-of-bounds store
    }
    if (text == "hang") {
      for (volatile bool forever = true; forever;) {
      }
    }
    if (text == "exit") _exit(3);
    tlm::v1::MeasureResult r;
    if (text == "device-error") {
      r.set_error_kind(tlm::v1::ERROR_KIND_RUNTIME_DEVICE);
      r.set_error_stage("run");
      r.set_error_message("cuda: cuEventSynchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS");
      r.set_number(++measured_);
      return r;
    }
    r.set_error_kind(tlm::v1::ERROR_KIND_NONE);
    r.set_median_seconds(1e-3);
    r.set_number(++measured_);
    r.set_source(prefetched_);
    return r;
  }
  void Prefetch(const tlm::v1::Program& program, const tlm::v1::MeasureOptions&) override {
    if (!prefetched_.empty()) prefetched_ += ",";
    prefetched_ += program.text();
  }

 private:
  int measured_ = 0;
  std::string prefetched_;
};

void MoveStores(std::vector<tlm::program::Stmt>& stmts) {
  for (tlm::program::Stmt& s : stmts) {
    if (s.kind == tlm::program::StmtKind::kStore) s.index.offset += int64_t{1} << 40;
    MoveStores(s.body);
  }
}

void Break(tlm::program::LoopNest& nest) {
  // The untiled program of dense M x N x K starts with the loop over i, of
  // extent M.
  for (tlm::program::Stmt& s : nest.body) {
    if (s.kind != tlm::program::StmtKind::kFor) continue;
    if (s.extent == 13) MoveStores(nest.body);
    if (s.extent == 17) {
      // Repeat the loop's body 2^62 times: endless, and always in bounds.
      tlm::program::Stmt forever;
      forever.kind = tlm::program::StmtKind::kFor;
      forever.var = static_cast<int>(nest.vars.size());
      nest.vars.push_back("forever");
      forever.extent = int64_t{1} << 62;
      forever.body = std::move(s.body);
      s.body = {std::move(forever)};
    }
    return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--llvm") == 0) {
    tlm::worker::LlvmCpuBackend::Options options;
    options.num_threads = 1;
    options.rewrite_for_testing = Break;
    tlm::worker::LlvmCpuBackend backend(options);
    return tlm::worker::ServeRunner(backend, STDIN_FILENO, STDOUT_FILENO).ok() ? 0 : 1;
  }
  FaultyBackend backend;
  return tlm::worker::ServeRunner(backend, STDIN_FILENO, STDOUT_FILENO).ok() ? 0 : 1;
}

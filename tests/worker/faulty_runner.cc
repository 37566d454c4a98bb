// A runner whose kernels misbehave on request, for the isolation tests:
// program text "crash" stores out of bounds, "hang" never returns, "exit"
// leaves with code 3; anything else succeeds and reports in `number` how many
// programs this process has measured.
#include <unistd.h>

#include <cstdlib>

#include "worker/isolated_backend.h"

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
    r.set_error_kind(tlm::v1::ERROR_KIND_NONE);
    r.set_median_seconds(1e-3);
    r.set_number(++measured_);
    return r;
  }

 private:
  int measured_ = 0;
};

}  // namespace

int main() {
  FaultyBackend backend;
  return tlm::worker::ServeRunner(backend, STDIN_FILENO, STDOUT_FILENO).ok() ? 0 : 1;
}

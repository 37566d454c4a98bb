// Backends build, check and time programs on one kind of device.
#ifndef TLMD_WORKER_BACKEND_H_
#define TLMD_WORKER_BACKEND_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tlm/v1/fleet.pb.h"
#include "tlm/v1/program.pb.h"

namespace tlm::worker {

class Backend {
 public:
  virtual ~Backend() = default;

  // Registry name, e.g. "cpu-ref".
  virtual std::string name() const = 0;

  // What this backend measures: target kind, device description, threads.
  // max_in_flight is left for the agent to fill.
  virtual tlm::v1::WorkerCapabilities Capabilities() const = 0;

  // Measures one program. Never fails as a call: every failure is a result
  // with error_kind, error_stage ("parse", "build", "check", "run") and a
  // message. Not thread-safe: the agent measures one program at a time, so
  // the device is held exclusively while timing.
  virtual tlm::v1::MeasureResult Measure(const tlm::v1::Program& program,
                                         const tlm::v1::MeasureOptions& options) = 0;

  // Says that `program` will be measured soon with `options`; called from
  // the measuring thread, between Measure calls. A backend may start work
  // that does not use the device (compiling) in the background, and Measure
  // of that program then takes it over; the result is the same as without
  // the hint. The default ignores it, as a backend whose builds would
  // disturb the timing of another program (cpu) must.
  virtual void Prefetch(const tlm::v1::Program& program, const tlm::v1::MeasureOptions& options) {
    (void)program;
    (void)options;
  }
};

// Backends by name. main() registers the backends it links in.
class BackendRegistry {
 public:
  using Factory = std::function<absl::StatusOr<std::unique_ptr<Backend>>()>;

  void Register(const std::string& name, Factory factory);
  // INVALID_ARGUMENT listing the known names for an unknown one; otherwise
  // whatever the factory returns (a backend whose device is missing refuses
  // to start with a message saying so).
  absl::StatusOr<std::unique_ptr<Backend>> Make(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, Factory> factories_;
};

}  // namespace tlm::worker

#endif  // TLMD_WORKER_BACKEND_H_

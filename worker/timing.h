// The timing harness shared by the backends: TimeCalls for CPU kernels on
// the host clock, TimeRepeats for devices with their own clock.
//
// Method: one warm-up call; `number` (calls per repeat) raised until one
// repeat lasts at least min_repeat_ms; then `repeat` timed repeats of
// `number` back-to-back calls, with the caches flushed before each repeat.
// Every repeat is reported as seconds per call; the latency is their median.
#ifndef TLMD_WORKER_TIMING_H_
#define TLMD_WORKER_TIMING_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tlm/v1/program.pb.h"

namespace tlm::worker {

// Defaults for zero fields: repeat 3, number 1, min_repeat_ms 10,
// build_timeout_s 30, run_timeout_s 60.
tlm::v1::MeasureOptions WithDefaults(tlm::v1::MeasureOptions options);

// Evicts the data caches by writing a buffer twice the size of the last-level
// cache (read from sysfs; 32 MiB assumed when unknown). Not thread-safe.
class CacheFlusher {
 public:
  CacheFlusher();
  void Flush();
  size_t bytes() const { return buffer_.size(); }

 private:
  std::vector<char> buffer_;
};

struct Timing {
  std::vector<double> repeat_seconds;  // seconds per call, one per repeat
  double median_seconds = 0;
  int number = 0;  // calls per repeat
};

// Median of a non-empty list (mean of the middle two for an even count).
double Median(std::vector<double> values);

// The timing method above with the clock left to the caller:
// `run_repeat(number)` makes `number` back-to-back calls and returns the
// seconds they took (a GPU backend measures with device events);
// `flush` runs before each timed repeat unless options.skip_cache_flush.
// An error from either is returned as is; DEADLINE_EXCEEDED when `deadline`
// passes between repeats.
absl::StatusOr<Timing> TimeRepeats(
    const std::function<absl::StatusOr<double>(int64_t number)>& run_repeat,
    const tlm::v1::MeasureOptions& options, const std::function<absl::Status()>& flush,
    absl::Time deadline);

// Times `call` as described above. `flush` runs before each repeat unless
// options.skip_cache_flush. DEADLINE_EXCEEDED when `deadline` passes between
// calls (a single call that never returns is not interrupted here: backends
// isolate such calls themselves).
absl::StatusOr<Timing> TimeCalls(const std::function<void()>& call,
                                 const tlm::v1::MeasureOptions& options,
                                 const std::function<void()>& flush, absl::Time deadline);

}  // namespace tlm::worker

#endif  // TLMD_WORKER_TIMING_H_

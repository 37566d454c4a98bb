#include "worker/timing.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace tlm::worker {
namespace {

constexpr size_t kDefaultLlcBytes = size_t{32} << 20;
constexpr int kMaxCalibrationRounds = 8;
constexpr int64_t kMaxNumber = int64_t{1} << 30;

// Largest cache size reported under /sys/devices/system/cpu/cpu0/cache.
size_t LastLevelCacheBytes() {
  size_t largest = 0;
  for (int index = 0; index < 8; ++index) {
    std::ifstream in(absl::StrCat("/sys/devices/system/cpu/cpu0/cache/index", index, "/size"));
    std::string text;
    if (!(in >> text)) continue;
    size_t scale = 1;
    if (absl::EndsWith(text, "K")) scale = size_t{1} << 10;
    if (absl::EndsWith(text, "M")) scale = size_t{1} << 20;
    absl::string_view digits = absl::StripSuffix(absl::StripSuffix(text, "K"), "M");
    size_t value = 0;
    if (absl::SimpleAtoi(digits, &value)) largest = std::max(largest, value * scale);
  }
  return largest > 0 ? largest : kDefaultLlcBytes;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::Status Overdue(const tlm::v1::MeasureOptions& options) {
  return absl::DeadlineExceededError(
      absl::StrCat("timing exceeded the run timeout of ", options.run_timeout_s(), " s"));
}

}  // namespace

tlm::v1::MeasureOptions WithDefaults(tlm::v1::MeasureOptions o) {
  if (o.repeat() <= 0) o.set_repeat(3);
  if (o.number() <= 0) o.set_number(1);
  if (o.min_repeat_ms() <= 0) o.set_min_repeat_ms(10);
  if (o.build_timeout_s() <= 0) o.set_build_timeout_s(30);
  if (o.run_timeout_s() <= 0) o.set_run_timeout_s(60);
  return o;
}

CacheFlusher::CacheFlusher() : buffer_(2 * LastLevelCacheBytes(), 0) {}

void CacheFlusher::Flush() {
  // A write per cache line brings every line of the buffer in, dirty.
  for (size_t i = 0; i < buffer_.size(); i += 64) buffer_[i] += 1;
  // Keeps the writes observable so they are not optimised away.
  static volatile char sink;
  sink = buffer_[buffer_.size() / 2];
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

absl::StatusOr<Timing> TimeRepeats(
    const std::function<absl::StatusOr<double>(int64_t number)>& run_repeat,
    const tlm::v1::MeasureOptions& raw_options, const std::function<absl::Status()>& flush,
    absl::Time deadline) {
  const tlm::v1::MeasureOptions options = WithDefaults(raw_options);
  const double min_repeat_s = options.min_repeat_ms() / 1e3;

  absl::StatusOr<double> warm_up = run_repeat(1);
  if (!warm_up.ok()) return warm_up.status();
  if (absl::Now() > deadline) return Overdue(options);

  int64_t number = options.number();
  for (int round = 0; round < kMaxCalibrationRounds; ++round) {
    absl::StatusOr<double> elapsed = run_repeat(number);
    if (!elapsed.ok()) return elapsed.status();
    if (absl::Now() > deadline) return Overdue(options);
    if (*elapsed >= min_repeat_s || number >= kMaxNumber) break;
    // Aim 20% past the minimum; at least double when the estimate is noisy.
    const double scale = *elapsed > 0 ? 1.2 * min_repeat_s / *elapsed : 10.0;
    number =
        std::min<int64_t>(kMaxNumber, std::max<int64_t>(2 * number, std::ceil(number * scale)));
  }

  Timing timing;
  timing.number = static_cast<int>(number);
  for (int r = 0; r < options.repeat(); ++r) {
    if (!options.skip_cache_flush()) {
      const absl::Status flushed = flush();
      if (!flushed.ok()) return flushed;
    }
    absl::StatusOr<double> elapsed = run_repeat(number);
    if (!elapsed.ok()) return elapsed.status();
    timing.repeat_seconds.push_back(*elapsed / static_cast<double>(number));
    if (absl::Now() > deadline) return Overdue(options);
  }
  timing.median_seconds = Median(timing.repeat_seconds);
  return timing;
}

absl::StatusOr<Timing> TimeCalls(const std::function<void()>& call,
                                 const tlm::v1::MeasureOptions& options,
                                 const std::function<void()>& flush, absl::Time deadline) {
  return TimeRepeats(
      [&call](int64_t number) -> absl::StatusOr<double> {
        const auto start = std::chrono::steady_clock::now();
        for (int64_t n = 0; n < number; ++n) call();
        return SecondsSince(start);
      },
      options,
      [&flush] {
        flush();
        return absl::OkStatus();
      },
      deadline);
}

}  // namespace tlm::worker

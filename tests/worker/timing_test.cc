#include "worker/timing.h"

#include <catch2/catch.hpp>
#include <chrono>

#include "absl/time/clock.h"

namespace tlm::worker {
namespace {

void Spin(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

TEST_CASE("defaults fill zero options only") {
  tlm::v1::MeasureOptions o;
  o.set_repeat(7);
  o = WithDefaults(o);
  CHECK(o.repeat() == 7);
  CHECK(o.number() == 1);
  CHECK(o.min_repeat_ms() == 10);
  CHECK(o.build_timeout_s() == 30);
  CHECK(o.run_timeout_s() == 60);
}

TEST_CASE("median of odd and even lists") {
  CHECK(Median({3, 1, 2}) == 2);
  CHECK(Median({4, 1, 3, 2}) == 2.5);
  CHECK(Median({5}) == 5);
}

TEST_CASE("calls per repeat are raised to reach min_repeat_ms; every repeat is reported") {
  tlm::v1::MeasureOptions o;
  o.set_repeat(5);
  o.set_min_repeat_ms(20);
  int calls = 0;
  int flushes = 0;
  absl::StatusOr<Timing> t = TimeCalls(
      [&] {
        ++calls;
        Spin(std::chrono::microseconds(50));
      },
      o, [&] { ++flushes; }, absl::Now() + absl::Seconds(60));
  REQUIRE(t.ok());
  CHECK(t->repeat_seconds.size() == 5);
  CHECK(t->number > 1);
  CHECK(flushes == 5);
  CHECK(t->median_seconds == Median(t->repeat_seconds));
  for (double s : t->repeat_seconds) CHECK(s >= 50e-6);  // per call, never less than the spin
  // Warm-up, calibration and the timed repeats all call the function.
  CHECK(calls >= 1 + 5 * t->number);
}

TEST_CASE("cache flushing can be skipped") {
  tlm::v1::MeasureOptions o;
  o.set_repeat(2);
  o.set_min_repeat_ms(0.01);
  o.set_skip_cache_flush(true);
  int flushes = 0;
  absl::StatusOr<Timing> t =
      TimeCalls([] {}, o, [&] { ++flushes; }, absl::Now() + absl::Seconds(60));
  REQUIRE(t.ok());
  CHECK(flushes == 0);
  CHECK(t->repeat_seconds.size() == 2);
}

TEST_CASE("a passed deadline gives DEADLINE_EXCEEDED") {
  tlm::v1::MeasureOptions o;
  o.set_run_timeout_s(0.001);
  absl::StatusOr<Timing> t = TimeCalls([] { Spin(std::chrono::microseconds(2000)); }, o, [] {},
                                       absl::Now() + absl::Milliseconds(1));
  REQUIRE_FALSE(t.ok());
  CHECK(absl::IsDeadlineExceeded(t.status()));
}

TEST_CASE("TimeRepeats takes its clock from the caller and passes errors on") {
  tlm::v1::MeasureOptions o;
  o.set_repeat(3);
  o.set_min_repeat_ms(10);
  // A device clock: every call "takes" 1 ms, whatever the host time.
  std::vector<int64_t> numbers;
  int flushes = 0;
  absl::StatusOr<Timing> t = TimeRepeats(
      [&](int64_t number) -> absl::StatusOr<double> {
        numbers.push_back(number);
        return number * 1e-3;
      },
      o,
      [&] {
        ++flushes;
        return absl::OkStatus();
      },
      absl::Now() + absl::Seconds(60));
  REQUIRE(t.ok());
  CHECK(t->number >= 10);
  CHECK(flushes == 3);
  REQUIRE(t->repeat_seconds.size() == 3);
  for (double s : t->repeat_seconds) CHECK(s == Approx(1e-3));
  CHECK(numbers.front() == 1);  // the warm-up
  CHECK(numbers.back() == t->number);

  int calls = 0;
  t = TimeRepeats(
      [&](int64_t number) -> absl::StatusOr<double> {
        if (++calls == 3) return absl::InternalError("launch failed");
        return number * 1e-2;
      },
      o, [] { return absl::OkStatus(); }, absl::Now() + absl::Seconds(60));
  CHECK(t.status() == absl::InternalError("launch failed"));

  t = TimeRepeats([](int64_t number) -> absl::StatusOr<double> { return number * 1e-2; }, o,
                  [] { return absl::AbortedError("flush failed"); },
                  absl::Now() + absl::Seconds(60));
  CHECK(t.status() == absl::AbortedError("flush failed"));
}

TEST_CASE("the cache flusher covers at least two megabytes and runs") {
  CacheFlusher flusher;
  CHECK(flusher.bytes() >= (size_t{2} << 20));
  flusher.Flush();
}

}  // namespace
}  // namespace tlm::worker

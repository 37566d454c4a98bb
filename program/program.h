// Programs of the tensor program language: a workload, a target and the
// decisions that fill its sketch.
//
// Sketch rules (Ansor's, per target class) give every stage of the
// workload's DAG a tiling pattern, read outermost first: S is one level of
// every spatial axis, R one level of every reduction axis.
//
//   cpu  multi-level  SSRSRS   stages with data reuse (dense, convolutions):
//                              the outer S loops are fused and run in
//                              parallel, the innermost loop of the last
//                              spatial axis is vectorized, the reduction
//                              finishes in a cache-write buffer (or in the
//                              output) at S level `at`, where the fused
//                              epilogue is applied; an unroll bound.
//   cpu  simple       SRS / SS other stages: parallel outer, vectorized
//                              inner, the same accumulator and unroll.
//   cuda multi-level  SSSRRSRS S0 -> blockIdx, S1 -> vthread, S2 ->
//                              threadIdx; inputs cached in shared memory at
//                              R0 with cooperative fetching; a local
//                              cache-write; an unroll bound.
//   cuda simple       SRS / SS S0 -> blockIdx, S1 -> threadIdx.
//
// Decisions, in slot order per stage: for every spatial then reduction
// axis the factors of its levels 1.. (level 0 is the rest of the extent),
// then (cpu) parallel fuse depth, `at` and `local` where the stage reduces,
// then the unroll bound. Canonical text (one line, words separated by one
// space) is the prompt, "<eop>", and the completion (decisions in slot
// order):
//
//   dense M 64 N 64 K 64 epilogue relu dtype float32 target cpu
//   stage dense SSRSRS i 64 ? ? ? j 64 ? ? ? k 64 ? parallel ? at ? local ?
//   unroll ? <eop> 2 4 2 1 2 16 8 1 1 1 64
#ifndef TLMD_PROGRAM_PROGRAM_H_
#define TLMD_PROGRAM_PROGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "program/compute.h"
#include "program/workload.h"
#include "tlm/v1/program.pb.h"

namespace tlm::program {

inline constexpr char kEndOfPrompt[] = "<eop>";

// Device limits that decisions must respect. The defaults hold on every
// supported device; a cuda worker reports its own threads, shared memory and
// registers per block (LimitsFromProto), and a task's programs respect the
// tightest limits over the workers serving it.
struct TargetLimits {
  int64_t max_vector_length = 64;          // cpu: lanes of one vectorized loop
  int64_t max_local_bytes = 256 * 1024;    // cpu: one cache-write buffer
  int64_t max_threads_per_block = 1024;    // cuda
  int64_t max_vthreads = 8;                // cuda
  int64_t max_shared_bytes = 48 * 1024;    // cuda, per block
  int64_t max_registers_per_block = 65536; // cuda
};

// cuda: registers a thread may hold (every architecture since sm_35), and
// the registers a thread is estimated to need besides its accumulators
// (indices, addresses, loaded operands). A stage fits a device when
//   accumulators + kReservedRegisters <= min(kMaxRegistersPerThread,
//                                            max_registers_per_block / threads).
inline constexpr int64_t kMaxRegistersPerThread = 255;
inline constexpr int64_t kReservedRegisters = 16;

// Limits no supported device exceeds (the opt-in shared memory of the
// largest GPUs): a program that breaks them is invalid on every device and
// does not parse; one within them may still not fit a given device.
TargetLimits WidestLimits();

// The defaults with the non-zero fields of `limits` in place.
TargetLimits LimitsFromProto(const tlm::v1::TargetLimits& limits);
// Every cuda field, filled in.
tlm::v1::TargetLimits LimitsToProto(const TargetLimits& limits);
// INVALID_ARGUMENT naming the field ("target.limits.max_threads_per_block")
// when a non-zero field is outside what any device may report.
absl::Status ValidateLimits(const tlm::v1::TargetLimits& limits);
// "1024 threads, 49152 B shared memory, 65536 registers per block".
std::string LimitsSummary(const TargetLimits& limits);

// Target kinds with sketch rules.
const std::vector<std::string>& TargetKinds();

enum class SlotKind { kTile, kParallel, kAt, kLocal, kUnroll };

// One decision of a sketch.
struct Slot {
  int stage = 0;
  SlotKind kind = SlotKind::kTile;
  int axis = -1;   // kTile: stage axis id
  int level = -1;  // kTile: level among the axis's S or R levels (>= 1)
};

// The schedule of one stage, read from the decisions.
struct StageSchedule {
  std::string pattern;
  // Per stage axis id: factors of its levels, outermost (level 0) first.
  std::vector<std::vector<int64_t>> factors;
  int parallel = 0;  // cpu: outer S loops fused into the parallel loop
  int at = 0;        // S level after which the accumulator tile begins
  bool local = false;  // accumulate in a local buffer (else in the output)
  int64_t unroll = 0;  // loops of at most this many iterations are unrolled
};

// The sketch of a workload on a target: its DAG, patterns and slots.
class Sketch {
 public:
  // INVALID_ARGUMENT for an invalid workload or an unknown target kind.
  static absl::StatusOr<Sketch> Make(const Workload& workload, absl::string_view target,
                                     const TargetLimits& limits = {});

  const Workload& workload() const { return workload_; }
  const std::string& target() const { return target_; }
  const ComputeDag& dag() const { return dag_; }
  const std::vector<std::string>& patterns() const { return patterns_; }
  const std::vector<Slot>& slots() const { return slots_; }

  // The prompt: signature, target and stages with one "?" per slot, ending
  // in kEndOfPrompt.
  std::string Prompt() const;

  // OK if `value` may fill slot `slot` after decisions `prefix` (of size
  // `slot`); otherwise INVALID_ARGUMENT saying why. Every prefix built from
  // allowed values can be completed, so sampling slot by slot from
  // Candidates() always yields a valid program.
  absl::Status Check(size_t slot, const std::vector<int64_t>& prefix, int64_t value) const;
  // The allowed values of a slot after `prefix`, ascending; never empty.
  std::vector<int64_t> Candidates(size_t slot, const std::vector<int64_t>& prefix) const;

  // Schedules of every stage; `decisions` must be complete and valid.
  std::vector<StageSchedule> Schedules(const std::vector<int64_t>& decisions) const;

 private:
  int64_t Remaining(const Slot& s, const std::vector<int64_t>& prefix) const;
  std::vector<std::vector<int64_t>> Factors(int stage, const std::vector<int64_t>& prefix) const;

  Workload workload_;
  std::string target_;
  TargetLimits limits_;
  ComputeDag dag_;
  std::vector<std::string> patterns_;  // per stage
  std::vector<Slot> slots_;
};

struct Program {
  Workload workload;
  std::string target = "cpu";
  std::vector<int64_t> decisions;

  friend bool operator==(const Program& a, const Program& b) {
    return a.workload == b.workload && a.target == b.target && a.decisions == b.decisions;
  }
  friend bool operator!=(const Program& a, const Program& b) { return !(a == b); }
};

// OK when the program is valid within `limits`; otherwise INVALID_ARGUMENT
// saying why, e.g. "stage dense, axis i, level 2: 3 does not divide the
// remaining extent 32".
absl::Status ValidateProgram(const Program& p, const TargetLimits& limits = WidestLimits());

// Canonical text form; Parse(Print(p)) == p for every valid p.
std::string Print(const Program& p);
// Parses and validates the canonical text form (within WidestLimits()).
absl::StatusOr<Program> Parse(absl::string_view text);

// Stable 64-bit FNV-1a hash of a program's canonical text, as 16 hex digits.
std::string HashText(absl::string_view text);
// HashText(Print(p)): the key programs are deduplicated by.
std::string ProgramHash(const Program& p);

tlm::v1::Program ProgramToProto(const Program& p);
// Parses program.text; the hash, when present, must match the text.
absl::StatusOr<Program> ProgramFromProto(const tlm::v1::Program& proto);

// The untuned schedule: no tiling, no parallelism, no unrolling.
absl::StatusOr<Program> DefaultProgram(const Workload& w, absl::string_view target = "cpu");

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_PROGRAM_H_

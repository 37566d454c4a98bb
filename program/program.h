// Programs of the tensor program language: a workload plus a schedule.
//
// The dense schedule tiles each axis on two levels, so every axis of extent E
// becomes three nested loops: outer (E / (middle*inner)), middle and inner.
// The loop nest is
//
//   for each axis x in `order`:  outer loop of x
//   for each axis x in `order`:  middle loop of x
//   inner loops: i, k, j (j innermost, contiguous in B and C)
//
// followed by the epilogue over C. Canonical text form (one line):
//
//   dense M=128 N=768 K=3072 epilogue=bias,relu | tile i=4x8 j=8x16 k=16x4 order=ikj
//
// "epilogue=none" when there is none; tiles are "<middle>x<inner>".
#ifndef TLMD_PROGRAM_PROGRAM_H_
#define TLMD_PROGRAM_PROGRAM_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "program/workload.h"
#include "tlm/v1/program.pb.h"

namespace tlm::program {

// Tiling of one axis: extent = outer * middle * inner.
struct AxisTiling {
  int64_t middle = 1;
  int64_t inner = 1;

  friend bool operator==(const AxisTiling& a, const AxisTiling& b) {
    return a.middle == b.middle && a.inner == b.inner;
  }
};

struct DenseSchedule {
  AxisTiling i;
  AxisTiling j;
  AxisTiling k;
  // Permutation of "ijk": order of the outer loops and of the middle loops.
  std::string order = "ijk";

  friend bool operator==(const DenseSchedule& a, const DenseSchedule& b) {
    return a.i == b.i && a.j == b.j && a.k == b.k && a.order == b.order;
  }
};

struct DenseProgram {
  DenseWorkload workload;
  DenseSchedule schedule;

  friend bool operator==(const DenseProgram& a, const DenseProgram& b) {
    return a.workload == b.workload && a.schedule == b.schedule;
  }
  friend bool operator!=(const DenseProgram& a, const DenseProgram& b) { return !(a == b); }
};

// OK when the program is valid; otherwise INVALID_ARGUMENT saying why, e.g.
// "tile i: middle*inner = 12 does not divide M = 128".
absl::Status ValidateProgram(const DenseProgram& p);

// Canonical text form; Parse(Print(p)) == p for every valid p.
std::string Print(const DenseProgram& p);
// Parses and validates the canonical text form.
absl::StatusOr<DenseProgram> Parse(absl::string_view text);

// Stable 64-bit FNV-1a hash of a program's canonical text, as 16 hex digits.
std::string HashText(absl::string_view text);

tlm::v1::Program ProgramToProto(const DenseProgram& p);
// Parses program.text; the hash, when present, must match the text.
absl::StatusOr<DenseProgram> ProgramFromProto(const tlm::v1::Program& proto);

// Trip counts of a dense program's loops, by axis (0 = i, 1 = j, 2 = k).
struct DenseLoops {
  int64_t outer[3];
  int64_t middle[3];
  int64_t inner[3];
  int order[3];  // axes of the outer and middle levels, outermost first
};
DenseLoops LoopsOf(const DenseProgram& p);

// The loop nest the schedule describes, as readable pseudo-code.
std::string PrintLoopNest(const DenseProgram& p);

// The untuned schedule: no tiling, loops in i, j, k order.
DenseProgram DefaultProgram(const DenseWorkload& w);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_PROGRAM_H_

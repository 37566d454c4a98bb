// The loop-nest IR every backend generates code from, and the lowering of
// a program's stages into it.
//
// A loop nest works on flat buffers: first one per tensor of the workload's
// DAG (same ids, row-major), then local buffers (accumulator tiles) and
// shared buffers (a GPU block's cache of an input tile) that an Alloc
// statement brings to life for the rest of its block. All indices are affine
// in the loop variables; Let statements decompose a fused loop into the
// variables of the loops it replaces.
//
// cpu nests: top-level loops, some parallel or vectorized.
// cuda nests: every top-level statement is a kBlock loop (one kernel: its
// variable is blockIdx.x, its extent the grid) holding Lets, shared Allocs
// and exactly one kThread loop (threadIdx.x, extent the block size). Shared
// buffers are written and read by different threads only across a kSync
// (__syncthreads) reached by every thread of the block, never under a kIf.
#ifndef TLMD_PROGRAM_LOOP_NEST_H_
#define TLMD_PROGRAM_LOOP_NEST_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "program/compute.h"
#include "program/program.h"

namespace tlm::program {

// sum(coefficient * variable) + offset over loop variables.
struct Index {
  std::vector<std::pair<int, int64_t>> terms;
  int64_t offset = 0;

  // Coefficient of `var` (0 when absent).
  int64_t CoefficientOf(int var) const;
};

struct LoopGuard {
  Index value;
  int64_t lo = 0;
  int64_t hi = 0;
};

// An expression of the loop nest: ExprOp without kValue.
struct LExpr {
  ExprOp op = ExprOp::kConst;
  double constant = 0;
  int buffer = -1;                // kLoad
  Index index;                    // kLoad: flat element index
  bool clamp = false;             // kLoad: clamp the index into the buffer
                                  // (the load sits under a kSelect guard)
  std::vector<LoopGuard> guards;  // kSelect
  std::vector<LExpr> args;
};

enum class LoopKind { kSerial, kParallel, kVectorized, kUnrolled, kBlock, kThread };
enum class StmtKind { kFor, kLet, kStore, kAlloc, kIf, kSync };

struct Stmt {
  StmtKind kind = StmtKind::kStore;
  // kFor: for var in [0, extent) { body }
  int var = -1;
  int64_t extent = 1;
  LoopKind loop = LoopKind::kSerial;
  std::vector<Stmt> body;  // kFor, kIf
  // kLet: var = (index / div) % mod
  int64_t div = 1;
  int64_t mod = 1;
  // kStore: buffer[index] = value;  kAlloc: buffer
  int buffer = -1;
  Index index;
  LExpr value;
  // kIf: body runs when every guard holds.
  std::vector<LoopGuard> guards;
};

enum class BufferScope { kGlobal, kLocal, kShared };

struct LBuffer {
  std::string name;
  int64_t elements = 0;
  BufferScope scope = BufferScope::kGlobal;  // local and shared buffers are fp32
};

struct LoopNest {
  std::string target = "cpu";
  DType dtype = DType::kFloat32;  // element type of the global buffers
  std::vector<LBuffer> buffers;
  std::vector<std::string> vars;
  std::vector<Stmt> body;
};

// Lowers a program for its target (cpu or cuda); INVALID_ARGUMENT when it is
// not valid within `limits` (a cuda worker passes its device's).
absl::StatusOr<LoopNest> Lower(const Program& program, const TargetLimits& limits = {});

// Readable pseudo-code, one statement per line.
std::string PrintLoopNest(const LoopNest& nest);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_LOOP_NEST_H_

// Internal to the loop_nest library: building blocks shared by the cpu and
// cuda lowerings.
#ifndef TLMD_PROGRAM_LOOP_NEST_BUILDER_H_
#define TLMD_PROGRAM_LOOP_NEST_BUILDER_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "program/compute.h"
#include "program/loop_nest.h"

namespace tlm::program::internal {

Index Scaled(const Index& i, int64_t k);
Index Sum(const Index& a, const Index& b);
Index VarIndex(int var, int64_t coef = 1);

Stmt For(int var, int64_t extent, std::vector<Stmt> body, LoopKind kind = LoopKind::kSerial);
Stmt Store(int buffer, Index index, LExpr value);
// var = (index / div) % mod
Stmt Let(int var, Index index, int64_t div, int64_t mod);
Stmt Alloc(int buffer);
LExpr LoadOf(int buffer, Index index);
LExpr ConstOf(double c);

// Flat element index of `tensor` at `index` (one affine per dimension, in
// stage axes), with every stage axis a given loop-nest index.
Index FlatIndex(const ComputeDag& dag, int tensor, const std::vector<Affine>& index,
                const std::vector<Index>& axes);
// A stage axis affine in loop-nest terms.
Index ToIndex(const Affine& a, const std::vector<Index>& axes);

// Replaces an unguarded load of a stage expression, or returns nullopt to
// keep it a load of the tensor.
using LoadRewrite = std::function<std::optional<LExpr>(const Expr& load)>;

// A stage expression in loop-nest terms; kValue leaves become `*value`.
// Loads under a kSelect guard clamp their index.
LExpr ToLExpr(const ComputeDag& dag, const Expr& e, const std::vector<Index>& axes,
              const LExpr* value, const LoadRewrite& rewrite = nullptr, bool clamp = false);

// Marks serial loops whose subtree runs at most `unroll` stores (a
// vectorized loop counting once) as unrolled.
void MarkUnrolled(Stmt& s, int64_t unroll);

int AddVar(LoopNest& nest, std::string name);

// Name of stage axis `a` (spatial axes first, then reduction axes).
const std::string& AxisName(const Stage& stage, int a);

// The loop variables of a stage's tiled axes, per axis and level: the
// variable, named PREFIX + axis + "." + level (-1 where the level's factor
// is 1 and needs no loop), and the level's stride within the axis.
struct TiledAxes {
  std::vector<std::vector<int>> var;
  std::vector<std::vector<int64_t>> stride;
};
TiledAxes MakeTiledAxes(const Stage& stage, const StageSchedule& sched, const std::string& prefix,
                        LoopNest& nest);
// One kernel: `stage` under its cuda schedule, as a kBlock loop (see
// loop_nest.h for the shape of cuda nests). Adds its variables and local and
// shared buffers to `nest`.
Stmt LowerCudaStage(const ComputeDag& dag, const Stage& stage, const StageSchedule& sched,
                    LoopNest& nest);
int AddBuffer(LoopNest& nest, std::string name, int64_t elements, BufferScope scope);

}  // namespace tlm::program::internal

#endif  // TLMD_PROGRAM_LOOP_NEST_BUILDER_H_

// Lowering of cuda schedules (program.h: SSSRRSRS multi-level, SRS / SS
// simple) to kernels.
//
// Multi-level stage, one kernel:
//   blockIdx b:   lets s0.. from b                  (spatial level 0)
//     shared float in0[..], in1[..]                 (one per body load)
//     threadIdx t: lets s2.. from t                 (spatial level 2)
//       local float acc[vthread * S3 * S4 tile]
//       acc = init
//       for r0..:                                   (reduction level 0)
//         cooperative fetch of every input tile into shared; sync
//         for r1.., s1.. (vthread), s3.., r2.., s4..: acc op= body
//         sync
//       for s1.., s3.., s4..: out = post(acc)
// The block's tile of a spatial axis covers its levels 1..4, a thread's
// levels 1, 3 and 4 (the vthreads of a thread lie a block-tile of threads
// apart, so neighbouring threads touch neighbouring elements).
//
// Simple stage: blockIdx from spatial level 0, threadIdx from level 1, one
// output element per thread, the reduction (if any) serial in the thread.
#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "program/loop_nest_builder.h"

namespace tlm::program::internal {
namespace {

class CudaStageLowering {
 public:
  CudaStageLowering(const ComputeDag& dag, const Stage& stage, const StageSchedule& sched,
                    LoopNest& nest)
      : dag_(dag), stage_(stage), sched_(sched), nest_(nest) {}

  Stmt Lower() {
    multi_ = sched_.pattern.size() > 3;
    TiledAxes axes = MakeTiledAxes(stage_, sched_, stage_.name + ".", nest_);
    var_ = std::move(axes.var);
    stride_ = std::move(axes.stride);
    const int block = AddVar(nest_, absl::StrCat(stage_.name, ".block"));
    const int thread = AddVar(nest_, absl::StrCat(stage_.name, ".thread"));
    const int thread_level = multi_ ? 2 : 1;
    threads_ = ProductAt(thread_level);

    std::vector<Stmt> thread_body = Decompose(thread, thread_level);
    std::vector<Stmt> block_body = Decompose(block, 0);
    std::vector<Stmt> work = multi_ ? MultiLevel(thread, &block_body) : Simple();
    for (Stmt& s : work) thread_body.push_back(std::move(s));
    block_body.push_back(For(thread, threads_, std::move(thread_body), LoopKind::kThread));
    Stmt kernel = For(block, ProductAt(0), std::move(block_body), LoopKind::kBlock);
    if (sched_.unroll > 0) MarkUnrolled(kernel, sched_.unroll);
    return kernel;
  }

 private:
  int n_spatial() const { return static_cast<int>(stage_.spatial.size()); }
  int64_t ProductAt(int level) const {
    int64_t p = 1;
    for (int a = 0; a < n_spatial(); ++a) p *= sched_.factors[a][level];
    return p;
  }
  // Lets giving the spatial level-`level` variables from a fused `var`,
  // the first axis outermost.
  std::vector<Stmt> Decompose(int var, int level) const {
    std::vector<Stmt> lets;
    int64_t div = ProductAt(level);
    for (int a = 0; a < n_spatial(); ++a) {
      const int64_t f = sched_.factors[a][level];
      div /= f;
      if (var_[a][level] >= 0) lets.push_back(Let(var_[a][level], VarIndex(var), div, f));
    }
    return lets;
  }
  // Sum of var * stride over the axis's levels in `levels`.
  Index AxisPart(int a, std::initializer_list<int> levels) const {
    Index r;
    for (int l : levels) {
      if (l < static_cast<int>(var_[a].size()) && var_[a][l] >= 0) {
        r = Sum(r, VarIndex(var_[a][l], stride_[a][l]));
      }
    }
    return r;
  }
  std::vector<Index> FullAxes() const {
    std::vector<Index> axes;
    for (int a = 0; a < stage_.num_axes(); ++a) axes.push_back(AxisPart(a, {0, 1, 2, 3, 4}));
    return axes;
  }
  // Loops over level `level` of axes [begin, end) around `inner`, the last
  // axis innermost.
  std::vector<Stmt> Loops(int level, int begin, int end, std::vector<Stmt> inner) const {
    for (int a = end - 1; a >= begin; --a) {
      if (level < static_cast<int>(var_[a].size()) && var_[a][level] >= 0) {
        inner = {For(var_[a][level], sched_.factors[a][level], std::move(inner))};
      }
    }
    return inner;
  }
  std::vector<Stmt> SpatialLoops(std::initializer_list<int> levels, std::vector<Stmt> inner) const {
    std::vector<int> order(levels);
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      inner = Loops(*it, 0, n_spatial(), std::move(inner));
    }
    return inner;
  }
  std::vector<Stmt> ReduceLoops(int level, std::vector<Stmt> inner) const {
    return Loops(level, n_spatial(), stage_.num_axes(), std::move(inner));
  }
  LExpr Combine(LExpr acc, LExpr value) const {
    LExpr combined;
    combined.op = stage_.reduce_kind == Reduce::kMax ? ExprOp::kMax : ExprOp::kAdd;
    combined.args = {std::move(acc), std::move(value)};
    return combined;
  }
  Index OutputIndex(const std::vector<Index>& axes) const {
    std::vector<Affine> out_index;
    for (int a = 0; a < n_spatial(); ++a) out_index.push_back(Affine::Axis(a));
    return FlatIndex(dag_, stage_.output, out_index, axes);
  }

  std::vector<Stmt> Simple() {
    const std::vector<Index> axes = FullAxes();
    LExpr body = ToLExpr(dag_, stage_.body, axes, nullptr);
    if (stage_.reduce.empty()) {
      return {Store(stage_.output, OutputIndex(axes), ToLExpr(dag_, stage_.post, axes, &body))};
    }
    const int acc = AddBuffer(nest_, absl::StrCat(stage_.name, ".acc"), 1, BufferScope::kLocal);
    std::vector<Stmt> out;
    out.push_back(Alloc(acc));
    out.push_back(Store(acc, Index{}, ConstOf(stage_.init())));
    for (Stmt& s : ReduceLoops(0, {Store(acc, Index{}, Combine(LoadOf(acc, Index{}), body))})) {
      out.push_back(std::move(s));
    }
    const LExpr value = LoadOf(acc, Index{});
    out.push_back(Store(stage_.output, OutputIndex(axes), ToLExpr(dag_, stage_.post, axes, &value)));
    return out;
  }

  // One body load cached in shared memory for a block and an R0 step.
  struct SharedTile {
    const Expr* load = nullptr;
    int buffer = -1;
    std::vector<int64_t> low;   // per dimension: lowest local offset
    std::vector<int64_t> span;  // per dimension
    int64_t elements = 1;
  };

  int64_t TileOf(int a) const {
    int64_t t = 1;
    const std::vector<int64_t>& f = sched_.factors[a];
    for (size_t l = 1; l < f.size(); ++l) t *= f[l];
    return t;
  }
  // Offset of axis a inside the block's tile (levels 1..).
  Index Local(int a) const { return AxisPart(a, {1, 2, 3, 4}); }
  Index Base(int a) const { return AxisPart(a, {0}); }

  SharedTile MakeTile(const Expr& load) {
    SharedTile tile;
    tile.load = &load;
    for (const Affine& dim : load.index) {
      int64_t low = 0, span = 1;
      for (const auto& [axis, coef] : dim.terms) {
        const int64_t reach = coef * (TileOf(axis) - 1);
        low += std::min<int64_t>(0, reach);
        span += std::abs(reach);
      }
      tile.low.push_back(low);
      tile.span.push_back(span);
      tile.elements *= span;
    }
    tile.buffer = AddBuffer(nest_, absl::StrCat(stage_.name, ".", dag_.tensors[load.tensor].name, ".shared"),
                            tile.elements, BufferScope::kShared);
    return tile;
  }

  // The tile's element read by this thread at the current loop variables.
  LExpr SharedLoad(const SharedTile& tile) const {
    std::vector<Index> local;
    for (int a = 0; a < stage_.num_axes(); ++a) local.push_back(Local(a));
    Index flat;
    int64_t stride = 1;
    for (int d = static_cast<int>(tile.span.size()) - 1; d >= 0; --d) {
      Affine dim = tile.load->index[d];
      dim.offset = -tile.low[d];
      flat = Sum(flat, Scaled(ToIndex(dim, local), stride));
      stride *= tile.span[d];
    }
    return LoadOf(tile.buffer, flat);
  }

  // Threads of the block copy the tile from global memory, element `linear`
  // = e * threads + thread for e in [0, ceil(elements / threads)).
  std::vector<Stmt> Fetch(const SharedTile& tile, int thread) {
    const int64_t rounds = (tile.elements + threads_ - 1) / threads_;
    Index linear = VarIndex(thread);
    int round_var = -1;
    if (rounds > 1) {
      round_var = AddVar(nest_, absl::StrCat(nest_.buffers[tile.buffer].name, ".round"));
      linear = Sum(linear, VarIndex(round_var, threads_));
    }
    std::vector<Index> base;
    for (int a = 0; a < stage_.num_axes(); ++a) base.push_back(Base(a));
    std::vector<Stmt> body;
    Index global;
    const std::vector<int64_t>& shape = dag_.tensors[tile.load->tensor].shape;
    int64_t global_stride = 1;
    int64_t div = tile.elements;
    std::vector<Index> dims(tile.span.size());
    for (size_t d = 0; d < tile.span.size(); ++d) {
      div /= tile.span[d];
      Affine dim = tile.load->index[d];
      dim.offset += tile.low[d];
      dims[d] = ToIndex(dim, base);
      if (tile.span[d] > 1) {
        const int v = AddVar(nest_, absl::StrCat(nest_.buffers[tile.buffer].name, ".", d));
        body.push_back(Let(v, linear, div, tile.span[d]));
        dims[d] = Sum(dims[d], VarIndex(v));
      }
    }
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      global = Sum(global, Scaled(dims[d], global_stride));
      global_stride *= shape[d];
    }
    body.push_back(Store(tile.buffer, linear, LoadOf(tile.load->tensor, global)));
    if (tile.elements % threads_ != 0) {
      Stmt guard;
      guard.kind = StmtKind::kIf;
      guard.guards.push_back({linear, 0, tile.elements});
      guard.body = std::move(body);
      body = {std::move(guard)};
    }
    if (round_var >= 0) body = {For(round_var, rounds, std::move(body))};
    return body;
  }

  std::vector<Stmt> MultiLevel(int thread, std::vector<Stmt>* block_body) {
    // Cache every body load (multi-level stages have no guarded loads:
    // padding is its own stage); the loads of `post` (epilogue operands)
    // read global memory once per output element.
    std::vector<const Expr*> loads;
    CollectLoads(stage_.body, &loads);
    std::vector<SharedTile> tiles;
    for (const Expr* load : loads) {
      tiles.push_back(MakeTile(*load));
      block_body->push_back(Alloc(tiles.back().buffer));
    }

    // The thread's accumulators: per axis levels 1, 3 and 4, row-major.
    int64_t elements = 1;
    std::vector<int64_t> acc_stride(n_spatial());
    for (int a = n_spatial() - 1; a >= 0; --a) {
      acc_stride[a] = elements;
      const std::vector<int64_t>& f = sched_.factors[a];
      elements *= f[1] * f[3] * f[4];
    }
    Index acc_index;
    for (int a = 0; a < n_spatial(); ++a) {
      const std::vector<int64_t>& f = sched_.factors[a];
      Index in_axis;
      if (var_[a][1] >= 0) in_axis = Sum(in_axis, VarIndex(var_[a][1], f[3] * f[4]));
      if (var_[a][3] >= 0) in_axis = Sum(in_axis, VarIndex(var_[a][3], f[4]));
      if (var_[a][4] >= 0) in_axis = Sum(in_axis, VarIndex(var_[a][4]));
      acc_index = Sum(acc_index, Scaled(in_axis, acc_stride[a]));
    }
    const int acc = AddBuffer(nest_, absl::StrCat(stage_.name, ".acc"), elements, BufferScope::kLocal);

    std::vector<Stmt> out;
    out.push_back(Alloc(acc));
    for (Stmt& s : SpatialLoops({1, 3, 4}, {Store(acc, acc_index, ConstOf(stage_.init()))})) {
      out.push_back(std::move(s));
    }

    LoadRewrite rewrite = [&](const Expr& load) -> std::optional<LExpr> {
      for (size_t i = 0; i < tiles.size(); ++i) {
        if (tiles[i].load == &load) return SharedLoad(tiles[i]);
      }
      return std::nullopt;
    };
    const std::vector<Index> axes = FullAxes();
    LExpr body = ToLExpr(dag_, stage_.body, axes, nullptr, rewrite);
    std::vector<Stmt> update = {Store(acc, acc_index, Combine(LoadOf(acc, acc_index), std::move(body)))};
    update = Loops(4, 0, n_spatial(), std::move(update));
    update = ReduceLoops(2, std::move(update));
    update = Loops(3, 0, n_spatial(), std::move(update));
    update = Loops(1, 0, n_spatial(), std::move(update));
    update = ReduceLoops(1, std::move(update));

    std::vector<Stmt> step;
    for (const SharedTile& tile : tiles) {
      for (Stmt& s : Fetch(tile, thread)) step.push_back(std::move(s));
    }
    step.push_back(Sync());
    for (Stmt& s : update) step.push_back(std::move(s));
    step.push_back(Sync());
    for (Stmt& s : ReduceLoops(0, std::move(step))) out.push_back(std::move(s));

    const LExpr value = LoadOf(acc, acc_index);
    for (Stmt& s : SpatialLoops({1, 3, 4}, {Store(stage_.output, OutputIndex(axes),
                                                  ToLExpr(dag_, stage_.post, axes, &value))})) {
      out.push_back(std::move(s));
    }
    return out;
  }

  static Stmt Sync() {
    Stmt s;
    s.kind = StmtKind::kSync;
    return s;
  }

  const ComputeDag& dag_;
  const Stage& stage_;
  const StageSchedule& sched_;
  LoopNest& nest_;
  bool multi_ = false;
  int64_t threads_ = 1;
  std::vector<std::vector<int>> var_;         // per axis and level; -1 for extent 1
  std::vector<std::vector<int64_t>> stride_;  // per axis and level
};

}  // namespace

Stmt LowerCudaStage(const ComputeDag& dag, const Stage& stage, const StageSchedule& sched,
                    LoopNest& nest) {
  return CudaStageLowering(dag, stage, sched, nest).Lower();
}

}  // namespace tlm::program::internal

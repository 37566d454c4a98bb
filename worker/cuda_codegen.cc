#include "worker/cuda_codegen.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace tlm::worker {
namespace {

using program::BufferScope;
using program::ExprOp;
using program::Index;
using program::LExpr;
using program::LoopKind;
using program::LoopNest;
using program::Stmt;
using program::StmtKind;

// IEEE half <-> float with PTX conversions (round to nearest even). A host
// build of the source (tests) defines TLM_HOST_HALF and its own h2f/f2h.
constexpr char kHalfHelpers[] = R"(#ifndef TLM_HOST_HALF
__device__ __forceinline__ float h2f(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ unsigned short f2h(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
#endif
)";

// The dynamic shared memory every kernel's shared buffers point into. A
// host build of the source (tests) defines TLM_HOST_SHARED and its own
// tlm_shared.
constexpr char kSharedArray[] = R"(#ifndef TLM_HOST_SHARED
extern __shared__ float __align__(16) tlm_shared[];
#endif
)";

// Shared buffers start at multiples of 16 bytes (4 floats) of tlm_shared.
constexpr int64_t kSharedAlignFloats = 4;

std::string FloatLiteral(double c) {
  if (std::isinf(c)) return c > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
  if (std::isnan(c)) return "__int_as_float(0x7fffffff)";
  return absl::StrFormat("%.9ef", c);
}

class Emitter {
 public:
  Emitter(const LoopNest& nest, CudaSource* out) : nest_(nest), out_(out) {
    bool large = false;
    for (const program::LBuffer& b : nest.buffers) {
      large = large || b.elements > std::numeric_limits<int32_t>::max();
    }
    index_type_ = large ? "long long" : "int";
  }

  absl::Status EmitKernel(const Stmt& block, int number) {
    if (block.kind != StmtKind::kFor || block.loop != LoopKind::kBlock) {
      return absl::InvalidArgumentError(
          "not a cuda loop nest: a top-level statement is not a blockIdx loop");
    }
    CudaKernel kernel;
    kernel.name = absl::StrCat("tlm_kernel_", number);
    kernel.grid = block.extent;
    int thread_loops = 0;
    for (const Stmt& s : block.body) {
      if (s.kind == StmtKind::kFor && s.loop == LoopKind::kThread) {
        kernel.block = s.extent;
        ++thread_loops;
      }
    }
    if (thread_loops != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "not a cuda loop nest: kernel ", number, " has ", thread_loops,
          " threadIdx loops directly in its blockIdx loop (expected 1)"));
    }
    std::vector<std::string> params;
    for (int b = 0; b < out_->num_buffers; ++b) {
      params.push_back(absl::StrCat(out_->half ? "unsigned short" : "float", "* __restrict__ ",
                                    BufferName(b)));
    }
    absl::StrAppend(&code_, "extern \"C\" __global__ void __launch_bounds__(", kernel.block, ") ",
                    kernel.name, "(", absl::StrJoin(params, ", "), ") {\n");
    shared_floats_ = 0;
    if (absl::Status s = Emit(block, 1); !s.ok()) return s;
    absl::StrAppend(&code_, "}\n\n");
    kernel.shared_bytes = 4 * shared_floats_;
    out_->kernels.push_back(std::move(kernel));
    return absl::OkStatus();
  }

  // True when some kernel uses shared memory (and so tlm_shared).
  bool uses_shared() const { return uses_shared_; }
  std::string code() && { return std::move(code_); }

 private:
  std::string BufferName(int b) const {
    switch (nest_.buffers[b].scope) {
      case BufferScope::kGlobal:
        return absl::StrCat("g", b);
      case BufferScope::kLocal:
        return absl::StrCat("l", b);
      case BufferScope::kShared:
        return absl::StrCat("s", b);
    }
    return "?";
  }
  static std::string Var(int v) { return absl::StrCat("v", v); }

  std::string IndexCode(const Index& index) const {
    std::vector<std::string> parts;
    for (const auto& [var, coef] : index.terms) {
      if (coef == 0) continue;
      parts.push_back(coef == 1 ? Var(var) : absl::StrCat(coef, " * ", Var(var)));
    }
    if (index.offset != 0 || parts.empty()) parts.push_back(absl::StrCat(index.offset));
    return absl::StrCat("(", absl::StrJoin(parts, " + "), ")");
  }

  std::string Guards(const std::vector<program::LoopGuard>& guards) const {
    std::vector<std::string> conds;
    for (const program::LoopGuard& g : guards) {
      const std::string v = IndexCode(g.value);
      conds.push_back(absl::StrCat(g.lo, " <= ", v, " && ", v, " < ", g.hi));
    }
    return conds.empty() ? "true" : absl::StrJoin(conds, " && ");
  }

  bool IsHalf(int buffer) const {
    return out_->half && nest_.buffers[buffer].scope == BufferScope::kGlobal;
  }

  std::string Expr(const LExpr& e) const {
    auto arg = [&](int i) { return Expr(e.args[i]); };
    switch (e.op) {
      case ExprOp::kConst:
        return FloatLiteral(e.constant);
      case ExprOp::kLoad: {
        std::string index = IndexCode(e.index);
        if (e.clamp) {
          index = absl::StrCat("min(max(", index, ", 0), ", nest_.buffers[e.buffer].elements - 1, ")");
        }
        const std::string load = absl::StrCat(BufferName(e.buffer), "[", index, "]");
        return IsHalf(e.buffer) ? absl::StrCat("h2f(", load, ")") : load;
      }
      case ExprOp::kAdd:
        return absl::StrCat("(", arg(0), " + ", arg(1), ")");
      case ExprOp::kSub:
        return absl::StrCat("(", arg(0), " - ", arg(1), ")");
      case ExprOp::kMul:
        return absl::StrCat("(", arg(0), " * ", arg(1), ")");
      case ExprOp::kDiv:
        return absl::StrCat("(", arg(0), " / ", arg(1), ")");
      case ExprOp::kMax:
        return absl::StrCat("fmaxf(", arg(0), ", ", arg(1), ")");
      case ExprOp::kMin:
        return absl::StrCat("fminf(", arg(0), ", ", arg(1), ")");
      case ExprOp::kExp:
        return absl::StrCat("expf(", arg(0), ")");
      case ExprOp::kErf:
        return absl::StrCat("erff(", arg(0), ")");
      case ExprOp::kSqrt:
        return absl::StrCat("sqrtf(", arg(0), ")");
      case ExprOp::kSelect:
        return absl::StrCat("((", Guards(e.guards), ") ? ", arg(0), " : ", arg(1), ")");
      case ExprOp::kValue:
        break;
    }
    return "0.0f";
  }

  absl::Status EmitBody(const std::vector<Stmt>& body, int depth) {
    for (const Stmt& s : body) {
      if (absl::Status st = Emit(s, depth); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  absl::Status Emit(const Stmt& s, int depth) {
    const std::string pad(2 * depth, ' ');
    switch (s.kind) {
      case StmtKind::kFor:
        switch (s.loop) {
          case LoopKind::kBlock:
            absl::StrAppend(&code_, pad, "const ", index_type_, " ", Var(s.var),
                            " = blockIdx.x;  // ", nest_.vars[s.var], "\n");
            return EmitBody(s.body, depth);
          case LoopKind::kThread:
            absl::StrAppend(&code_, pad, "const ", index_type_, " ", Var(s.var),
                            " = threadIdx.x;  // ", nest_.vars[s.var], "\n");
            return EmitBody(s.body, depth);
          case LoopKind::kUnrolled:
            absl::StrAppend(&code_, pad, "#pragma unroll\n");
            break;
          case LoopKind::kSerial:
            break;
          case LoopKind::kParallel:
          case LoopKind::kVectorized:
            return absl::InvalidArgumentError(absl::StrCat(
                "not a cuda loop nest: loop ", nest_.vars[s.var], " is parallel or vectorized"));
        }
        absl::StrAppend(&code_, pad, "for (", index_type_, " ", Var(s.var), " = 0; ", Var(s.var),
                        " < ", s.extent, "; ++", Var(s.var), ") {  // ", nest_.vars[s.var], "\n");
        if (absl::Status st = EmitBody(s.body, depth + 1); !st.ok()) return st;
        absl::StrAppend(&code_, pad, "}\n");
        return absl::OkStatus();
      case StmtKind::kLet: {
        std::string value = IndexCode(s.index);
        if (s.div != 1) value = absl::StrCat("(", value, " / ", s.div, ")");
        absl::StrAppend(&code_, pad, "const ", index_type_, " ", Var(s.var), " = ", value, " % ",
                        s.mod, ";  // ", nest_.vars[s.var], "\n");
        return absl::OkStatus();
      }
      case StmtKind::kAlloc: {
        const program::LBuffer& b = nest_.buffers[s.buffer];
        if (b.scope == BufferScope::kGlobal) {
          return absl::InvalidArgumentError(absl::StrCat("cannot allocate global buffer ", b.name));
        }
        if (b.scope == BufferScope::kLocal) {
          absl::StrAppend(&code_, pad, "float ", BufferName(s.buffer), "[", b.elements, "];  // ",
                          b.name, "\n");
          return absl::OkStatus();
        }
        const int64_t offset =
            (shared_floats_ + kSharedAlignFloats - 1) / kSharedAlignFloats * kSharedAlignFloats;
        shared_floats_ = offset + b.elements;
        uses_shared_ = true;
        absl::StrAppend(&code_, pad, "float* ", BufferName(s.buffer), " = tlm_shared + ", offset,
                        ";  // ", b.name, ", ", b.elements, " floats\n");
        return absl::OkStatus();
      }
      case StmtKind::kStore: {
        std::string value = Expr(s.value);
        if (IsHalf(s.buffer)) value = absl::StrCat("f2h(", value, ")");
        absl::StrAppend(&code_, pad, BufferName(s.buffer), "[", IndexCode(s.index), "] = ", value,
                        ";\n");
        return absl::OkStatus();
      }
      case StmtKind::kIf:
        absl::StrAppend(&code_, pad, "if (", Guards(s.guards), ") {\n");
        if (absl::Status st = EmitBody(s.body, depth + 1); !st.ok()) return st;
        absl::StrAppend(&code_, pad, "}\n");
        return absl::OkStatus();
      case StmtKind::kSync:
        absl::StrAppend(&code_, pad, "__syncthreads();\n");
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  const LoopNest& nest_;
  CudaSource* out_;
  std::string index_type_;
  std::string code_;
  // Floats of tlm_shared the current kernel's buffers reach so far.
  int64_t shared_floats_ = 0;
  bool uses_shared_ = false;
};

}  // namespace

absl::StatusOr<CudaSource> GenerateCuda(const program::LoopNest& nest) {
  if (nest.target != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("the CUDA code generator takes cuda loop nests, not ", nest.target));
  }
  CudaSource source;
  source.half = nest.dtype == program::DType::kFloat16;
  for (const program::LBuffer& b : nest.buffers) {
    if (b.scope != BufferScope::kGlobal) break;
    ++source.num_buffers;
  }
  Emitter emitter(nest, &source);
  for (size_t i = 0; i < nest.body.size(); ++i) {
    if (absl::Status s = emitter.EmitKernel(nest.body[i], static_cast<int>(i)); !s.ok()) return s;
  }
  const bool shared = emitter.uses_shared();
  source.code = absl::StrCat(source.half ? kHalfHelpers : "", shared ? kSharedArray : "",
                             std::move(emitter).code());
  return source;
}

}  // namespace tlm::worker

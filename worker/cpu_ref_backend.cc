#include "worker/cpu_ref_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tlm::worker {
namespace {

using program::ExprOp;
using program::LExpr;
using program::Stmt;
using program::StmtKind;

// Runs a loop nest statement by statement. The threads of a kThread loop run
// in lockstep: each statement completes for every thread before the next
// begins (a valid schedule of a correctly synchronised kernel). Accesses to
// shared buffers are checked for races: an element written by one thread
// and read or written by another between the same two barriers is an
// error, and so is a barrier some threads of the block do not reach.
class Interpreter {
 public:
  Interpreter(const program::LoopNest& nest, float* const* buffers) : nest_(nest) {
    Thread root;
    root.vars.assign(nest.vars.size(), 0);
    root.locals.resize(nest.buffers.size());
    for (size_t i = 0; i < nest.buffers.size(); ++i) {
      root.buffers.push_back(nest.buffers[i].scope == program::BufferScope::kGlobal ? buffers[i]
                                                                                     : nullptr);
    }
    shared_.resize(nest.buffers.size());
    threads_.push_back(std::move(root));
  }

  absl::Status Run() {
    Run(nest_.body, threads_, std::vector<char>(1, 1));
    return error_.empty() ? absl::OkStatus() : absl::InternalError(error_);
  }

 private:
  struct Thread {
    int id = 0;
    std::vector<int64_t> vars;
    std::vector<float*> buffers;
    std::vector<std::vector<float>> locals;
  };
  // A shared buffer and, per element, who last wrote and read it when.
  struct Shared {
    std::vector<float> data;
    std::vector<int64_t> write_epoch, read_epoch;
    std::vector<int> writer, reader;  // reader -1: several threads
  };

  void Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }

  void Run(const std::vector<Stmt>& stmts, std::vector<Thread>& threads,
           const std::vector<char>& active) {
    for (const Stmt& s : stmts) {
      if (!error_.empty()) return;
      switch (s.kind) {
        case StmtKind::kFor:
          if (s.loop == program::LoopKind::kThread) {
            RunThreads(s, threads, active);
            break;
          }
          for (int64_t i = 0; i < s.extent; ++i) {
            ForActive(threads, active, [&](Thread& t) { t.vars[s.var] = i; });
            Run(s.body, threads, active);
          }
          break;
        case StmtKind::kLet:
          ForActive(threads, active,
                    [&](Thread& t) { t.vars[s.var] = (Offset(t, s.index) / s.div) % s.mod; });
          break;
        case StmtKind::kAlloc:
          if (nest_.buffers[s.buffer].scope == program::BufferScope::kShared) {
            AllocShared(s.buffer, threads, active);
            break;
          }
          ForActive(threads, active, [&](Thread& t) {
            t.locals[s.buffer].assign(nest_.buffers[s.buffer].elements, 0.0f);
            t.buffers[s.buffer] = t.locals[s.buffer].data();
          });
          break;
        case StmtKind::kStore:
          ForActive(threads, active, [&](Thread& t) {
            const float value = Eval(t, s.value);
            if (float* p = Access(t, s.buffer, Offset(t, s.index), /*write=*/true)) *p = value;
          });
          break;
        case StmtKind::kIf: {
          std::vector<char> taken(active);
          for (size_t i = 0; i < threads.size(); ++i) {
            if (taken[i]) taken[i] = Holds(threads[i], s.guards);
          }
          Run(s.body, threads, taken);
          break;
        }
        case StmtKind::kSync:
          if (std::find(active.begin(), active.end(), 0) != active.end()) {
            Fail("a barrier is not reached by every thread of the block");
          }
          ++epoch_;
          break;
      }
    }
  }

  void RunThreads(const Stmt& loop, std::vector<Thread>& outer, const std::vector<char>& active) {
    if (outer.size() != 1) {
      Fail("a threadIdx loop inside another threadIdx loop");
      return;
    }
    std::vector<Thread> threads(loop.extent, outer[0]);
    for (int64_t i = 0; i < loop.extent; ++i) {
      threads[i].id = static_cast<int>(i);
      threads[i].vars[loop.var] = i;
    }
    Run(loop.body, threads, std::vector<char>(threads.size(), 1));
  }

  void AllocShared(int buffer, std::vector<Thread>& threads, const std::vector<char>& active) {
    const size_t n = nest_.buffers[buffer].elements;
    Shared& sh = shared_[buffer];
    sh.data.assign(n, 0.0f);
    sh.write_epoch.assign(n, -1);
    sh.read_epoch.assign(n, -1);
    sh.writer.assign(n, 0);
    sh.reader.assign(n, 0);
    ForActive(threads, active, [&](Thread& t) { t.buffers[buffer] = sh.data.data(); });
  }

  template <typename F>
  static void ForActive(std::vector<Thread>& threads, const std::vector<char>& active, F f) {
    for (size_t i = 0; i < threads.size(); ++i) {
      if (active[i]) f(threads[i]);
    }
  }

  static int64_t Offset(const Thread& t, const program::Index& index) {
    int64_t v = index.offset;
    for (const auto& [var, coef] : index.terms) v += coef * t.vars[var];
    return v;
  }

  bool Holds(const Thread& t, const std::vector<program::LoopGuard>& guards) const {
    for (const program::LoopGuard& g : guards) {
      const int64_t v = Offset(t, g.value);
      if (v < g.lo || v >= g.hi) return false;
    }
    return true;
  }

  // The element, after bounds and race checks; nullptr (and an error) when
  // it must not be touched.
  float* Access(const Thread& t, int buffer, int64_t offset, bool write) {
    const program::LBuffer& b = nest_.buffers[buffer];
    if (offset < 0 || offset >= b.elements || t.buffers[buffer] == nullptr) {
      Fail(absl::StrCat(b.name, "[", offset, "] is outside the buffer of ", b.elements,
                        " elements (or not allocated)"));
      return nullptr;
    }
    if (b.scope == program::BufferScope::kShared) {
      Shared& sh = shared_[buffer];
      auto race = [&](int other, const char* what) {
        Fail(absl::StrCat("data race on ", b.name, "[", offset, "]: thread ", t.id, " ",
                          write ? "writes" : "reads", " what thread ", other, " ", what,
                          " since the last barrier"));
      };
      if (sh.write_epoch[offset] == epoch_ && sh.writer[offset] != t.id) {
        race(sh.writer[offset], "wrote");
        return nullptr;
      }
      if (write) {
        if (sh.read_epoch[offset] == epoch_ && sh.reader[offset] != t.id) {
          race(sh.reader[offset], "read");
          return nullptr;
        }
        sh.write_epoch[offset] = epoch_;
        sh.writer[offset] = t.id;
      } else if (sh.read_epoch[offset] != epoch_) {
        sh.read_epoch[offset] = epoch_;
        sh.reader[offset] = t.id;
      } else if (sh.reader[offset] != t.id) {
        sh.reader[offset] = -1;
      }
    }
    return t.buffers[buffer] + offset;
  }

  float Eval(const Thread& t, const LExpr& e) {
    auto arg = [&](int i) { return Eval(t, e.args[i]); };
    switch (e.op) {
      case ExprOp::kConst:
        return static_cast<float>(e.constant);
      case ExprOp::kLoad: {
        int64_t offset = Offset(t, e.index);
        if (e.clamp) offset = std::clamp<int64_t>(offset, 0, nest_.buffers[e.buffer].elements - 1);
        const float* p = Access(t, e.buffer, offset, /*write=*/false);
        return p == nullptr ? 0.0f : *p;
      }
      case ExprOp::kAdd:
        return arg(0) + arg(1);
      case ExprOp::kSub:
        return arg(0) - arg(1);
      case ExprOp::kMul:
        return arg(0) * arg(1);
      case ExprOp::kDiv:
        return arg(0) / arg(1);
      case ExprOp::kMax:
        return std::fmax(arg(0), arg(1));
      case ExprOp::kMin:
        return std::fmin(arg(0), arg(1));
      case ExprOp::kExp:
        return std::exp(arg(0));
      case ExprOp::kErf:
        return std::erf(arg(0));
      case ExprOp::kSqrt:
        return std::sqrt(arg(0));
      case ExprOp::kSelect:
        return Holds(t, e.guards) ? arg(0) : arg(1);
      case ExprOp::kValue:
        break;
    }
    return 0;
  }

  const program::LoopNest& nest_;
  std::vector<Thread> threads_;
  std::vector<Shared> shared_;
  int64_t epoch_ = 0;
  std::string error_;
};

}  // namespace

absl::Status RunLoopNest(const program::LoopNest& nest, float* const* buffers) {
  return Interpreter(nest, buffers).Run();
}

CpuRefBackend::CpuRefBackend(Options options) {
  harness_.set_corrupt_output_for_testing(options.corrupt_output_for_testing);
}

tlm::v1::WorkerCapabilities CpuRefBackend::Capabilities() const {
  return CpuCapabilities(name(), CpuModelName(), 1);
}

tlm::v1::MeasureResult CpuRefBackend::Measure(const tlm::v1::Program& program,
                                              const tlm::v1::MeasureOptions& options) {
  const auto build_start = std::chrono::steady_clock::now();
  tlm::v1::MeasureResult failure;
  absl::StatusOr<program::Program> parsed = ParseProgramFor(program, "cpu", &failure);
  if (!parsed.ok()) return failure;
  absl::StatusOr<program::LoopNest> nest = program::Lower(*parsed);
  if (!nest.ok()) {
    return FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "build",
                             std::string(nest.status().message()));
  }
  const double build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
  const program::LoopNest& n = *nest;
  return harness_.Measure(
      *parsed, [&n](float* const* buffers) {
        // cpu nests have no shared buffers and lowering keeps indices in
        // bounds, so there is nothing to report; the output check catches
        // anything else.
        RunLoopNest(n, buffers).IgnoreError();
      }, options, build_seconds,
      program::PrintLoopNest(n));
}

}  // namespace tlm::worker

#include "worker/llvm_codegen.h"

#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/Host.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

namespace tlm::worker {
namespace {

using program::ExprOp;
using program::Index;
using program::LExpr;
using program::LoopKind;
using program::LoopNest;
using program::Stmt;
using program::StmtKind;

constexpr char kKernelName[] = "tlm_kernel";
constexpr char kParallelForName[] = "tlm_parallel_for";

using ChunkFn = void (*)(float* const* buffers, int64_t begin, int64_t end);

// Called by generated code for every parallel loop.
void ParallelFor(ThreadPool* pool, ChunkFn fn, float* const* buffers, int64_t extent) {
  pool->ParallelFor(extent, [&](int64_t begin, int64_t end) { fn(buffers, begin, end); });
}

void InitializeLlvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

absl::Status ToStatus(llvm::Error error) {
  return absl::InternalError(llvm::toString(std::move(error)));
}

// Emits the functions of one loop nest. Every statement list is emitted into
// an "impl" function whose global buffers are noalias arguments:
//   impl(ptr buffers, ptr pool, i64 begin, i64 end, ptr noalias b0, ...)
// and entered through a wrapper that loads the pointers from the array:
//   tlm_kernel(ptr buffers, ptr pool)          the kernel
//   tlm_chunk_N(ptr buffers, i64 begin, i64 end)  a parallel loop's chunk
class Emitter {
 public:
  Emitter(const LoopNest& nest, llvm::Module& module)
      : nest_(nest),
        module_(module),
        ctx_(module.getContext()),
        b_(ctx_),
        f32_(b_.getFloatTy()),
        i64_(b_.getInt64Ty()),
        ptr_(llvm::PointerType::getUnqual(ctx_)) {
    for (const program::LBuffer& buf : nest.buffers) n_global_ += buf.scope == program::BufferScope::kGlobal ? 1 : 0;
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true);  // a*b+c may become one FMA
    b_.setFastMathFlags(fmf);
  }

  void EmitKernel() {
    llvm::Function* impl = NewImpl("tlm_kernel_impl");
    EmitStmts(nest_.body);
    b_.CreateRetVoid();
    llvm::Function* entry = llvm::Function::Create(
        llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_}, false),
        llvm::Function::ExternalLinkage, kKernelName, module_);
    CallImpl(entry, impl, entry->getArg(1), b_.getInt64(0), b_.getInt64(0));
  }

 private:
  struct FnState {
    llvm::Function* f = nullptr;
    std::vector<llvm::Value*> buffers;  // by buffer id; locals once allocated
  };

  llvm::Function* NewImpl(const std::string& name) {
    std::vector<llvm::Type*> params = {ptr_, ptr_, i64_, i64_};
    for (int i = 0; i < n_global_; ++i) params.push_back(ptr_);
    llvm::Function* f = llvm::Function::Create(
        llvm::FunctionType::get(b_.getVoidTy(), params, false), llvm::Function::InternalLinkage,
        name, module_);
    f->addFnAttr(llvm::Attribute::AlwaysInline);
    fn_ = FnState{f, std::vector<llvm::Value*>(nest_.buffers.size(), nullptr)};
    for (int i = 0; i < n_global_; ++i) {
      llvm::Argument* arg = f->getArg(4 + i);
      arg->addAttr(llvm::Attribute::NoAlias);
      arg->addAttr(llvm::Attribute::NoCapture);
      fn_.buffers[i] = arg;
    }
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
    return f;
  }

  // Body of `wrapper`: load the buffer pointers and call `impl`.
  void CallImpl(llvm::Function* wrapper, llvm::Function* impl, llvm::Value* pool,
                llvm::Value* begin, llvm::Value* end) {
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", wrapper));
    llvm::Value* array = wrapper->getArg(0);
    std::vector<llvm::Value*> args = {array, pool, begin, end};
    for (int i = 0; i < n_global_; ++i) {
      args.push_back(b_.CreateLoad(ptr_, b_.CreateConstGEP1_64(ptr_, array, i)));
    }
    b_.CreateCall(impl, args);
    b_.CreateRetVoid();
  }

  // for (var = begin; var < end; ++var) body, with begin < end.
  void EmitLoop(int var, llvm::Value* begin, llvm::Value* end, const std::vector<Stmt>& body) {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    const std::string& name = nest_.vars[var];
    llvm::BasicBlock* loop = llvm::BasicBlock::Create(ctx_, name, f);
    llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx_, name + ".exit", f);
    b_.CreateBr(loop);
    b_.SetInsertPoint(loop);
    llvm::PHINode* iv = b_.CreatePHI(i64_, 2, name);
    iv->addIncoming(begin, pre);
    vars_[var] = iv;
    EmitStmts(body);
    llvm::Value* next = b_.CreateAdd(iv, b_.getInt64(1), name + ".next", true, true);
    iv->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(next, end), loop, exit);
    b_.SetInsertPoint(exit);
  }

  void EmitStmts(const std::vector<Stmt>& stmts) {
    for (const Stmt& s : stmts) EmitStmt(s);
  }

  void EmitStmt(const Stmt& s) {
    switch (s.kind) {
      case StmtKind::kLet:
        vars_[s.var] = b_.CreateURem(b_.CreateUDiv(Offset(s.index), b_.getInt64(s.div)),
                                     b_.getInt64(s.mod), nest_.vars[s.var]);
        return;
      case StmtKind::kIf:
      case StmtKind::kSync:
        return;  // GPU statements: CompileLoopNest refuses nests that are not cpu
      case StmtKind::kAlloc: {
        llvm::IRBuilder<> entry(&fn_.f->getEntryBlock(), fn_.f->getEntryBlock().begin());
        llvm::AllocaInst* a = entry.CreateAlloca(
            f32_, b_.getInt64(nest_.buffers[s.buffer].elements), nest_.buffers[s.buffer].name);
        a->setAlignment(llvm::Align(64));
        fn_.buffers[s.buffer] = a;
        return;
      }
      case StmtKind::kStore:
        b_.CreateAlignedStore(Scalar(s.value), Address(s.buffer, Offset(s.index)), llvm::Align(4));
        return;
      case StmtKind::kFor:
        break;
    }
    switch (s.loop) {
      case LoopKind::kParallel:
        return EmitParallel(s);
      case LoopKind::kUnrolled:
        for (int64_t i = 0; i < s.extent; ++i) {
          vars_[s.var] = b_.getInt64(i);
          EmitStmts(s.body);
        }
        return;
      case LoopKind::kVectorized:
        if (CanVectorize(s)) return EmitVectorized(s);
        break;
      case LoopKind::kSerial:
      case LoopKind::kBlock:
      case LoopKind::kThread:
        break;
    }
    EmitLoop(s.var, b_.getInt64(0), b_.getInt64(s.extent), s.body);
  }

  // The loop's chunks run in a new function through tlm_parallel_for.
  void EmitParallel(const Stmt& s) {
    const FnState outer = fn_;
    const llvm::IRBuilderBase::InsertPoint resume = b_.saveIP();
    const std::string name = absl::StrCat("tlm_chunk_", chunks_++);
    llvm::Function* impl = NewImpl(name + "_impl");
    EmitLoop(s.var, impl->getArg(2), impl->getArg(3), s.body);
    b_.CreateRetVoid();
    llvm::Function* entry = llvm::Function::Create(
        llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, i64_}, false),
        llvm::Function::InternalLinkage, name, module_);
    CallImpl(entry, impl, llvm::ConstantPointerNull::get(ptr_), entry->getArg(1),
             entry->getArg(2));
    fn_ = outer;
    b_.restoreIP(resume);
    llvm::FunctionCallee parallel_for = module_.getOrInsertFunction(
        kParallelForName, llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, ptr_, i64_}, false));
    b_.CreateCall(parallel_for,
                  {fn_.f->getArg(1), entry, fn_.f->getArg(0), b_.getInt64(s.extent)});
  }

  llvm::Value* Offset(const Index& index) {
    llvm::Value* v = b_.getInt64(index.offset);
    for (const auto& [var, coef] : index.terms) {
      if (coef != 0) v = b_.CreateAdd(v, b_.CreateMul(vars_[var], b_.getInt64(coef)));
    }
    return v;
  }
  llvm::Value* Address(int buffer, llvm::Value* offset) {
    return b_.CreateGEP(f32_, fn_.buffers[buffer], offset);
  }
  llvm::Value* Clamped(int buffer, llvm::Value* offset) {
    const int64_t last = nest_.buffers[buffer].elements - 1;
    offset = b_.CreateSelect(b_.CreateICmpSLT(offset, b_.getInt64(0)), b_.getInt64(0), offset);
    return b_.CreateSelect(b_.CreateICmpSGT(offset, b_.getInt64(last)), b_.getInt64(last), offset);
  }

  llvm::Value* Call(llvm::Intrinsic::ID id, llvm::Value* x) {
    return b_.CreateCall(llvm::Intrinsic::getDeclaration(&module_, id, {x->getType()}), {x});
  }
  // erf(x) as a rational function of x on [-4, 4] (erf is +-1 to fp32
  // precision beyond): x * P(x^2) / Q(x^2), the approximation Eigen and XLA
  // use for fp32, so scalar and vector code stay inline and vectorized.
  llvm::Value* Erf(llvm::Value* x) {
    static constexpr double kP[] = {-2.72614225801306e-10, 2.77068142495902e-08,
                                    -2.10102402082508e-06, -5.69250639462346e-05,
                                    -7.34990630326855e-04, -2.95459980854025e-03,
                                    -1.60960333262415e-02};
    static constexpr double kQ[] = {-1.45660718464996e-05, -2.13374055278905e-04,
                                    -1.68282697438203e-03, -7.37332916720468e-03,
                                    -1.42647390514189e-02};
    llvm::Type* type = x->getType();
    auto c = [&](double v) { return llvm::ConstantFP::get(type, v); };
    x = b_.CreateMinNum(b_.CreateMaxNum(x, c(-4.0)), c(4.0));
    llvm::Value* x2 = b_.CreateFMul(x, x);
    auto horner = [&](const double* coefficients, int n) {
      llvm::Value* v = c(coefficients[0]);
      for (int i = 1; i < n; ++i) v = b_.CreateFAdd(b_.CreateFMul(v, x2), c(coefficients[i]));
      return v;
    };
    return b_.CreateFDiv(b_.CreateFMul(x, horner(kP, 7)), horner(kQ, 5));
  }

  // Operations shared by scalar and vector code.
  llvm::Value* Arith(ExprOp op, const std::vector<llvm::Value*>& a) {
    switch (op) {
      case ExprOp::kAdd:
        return b_.CreateFAdd(a[0], a[1]);
      case ExprOp::kSub:
        return b_.CreateFSub(a[0], a[1]);
      case ExprOp::kMul:
        return b_.CreateFMul(a[0], a[1]);
      case ExprOp::kDiv:
        return b_.CreateFDiv(a[0], a[1]);
      case ExprOp::kMax:
        return b_.CreateMaxNum(a[0], a[1]);
      case ExprOp::kMin:
        return b_.CreateMinNum(a[0], a[1]);
      case ExprOp::kExp:
        return Call(llvm::Intrinsic::exp, a[0]);
      case ExprOp::kSqrt:
        return Call(llvm::Intrinsic::sqrt, a[0]);
      default:
        return nullptr;
    }
  }

  llvm::Value* Scalar(const LExpr& e) {
    switch (e.op) {
      case ExprOp::kConst:
        return llvm::ConstantFP::get(f32_, e.constant);
      case ExprOp::kLoad: {
        llvm::Value* offset = Offset(e.index);
        if (e.clamp) offset = Clamped(e.buffer, offset);
        return b_.CreateAlignedLoad(f32_, Address(e.buffer, offset), llvm::Align(4));
      }
      case ExprOp::kErf:
        return Erf(Scalar(e.args[0]));
      case ExprOp::kSelect: {
        llvm::Value* ok = b_.getTrue();
        for (const program::LoopGuard& g : e.guards) {
          llvm::Value* v = Offset(g.value);
          ok = b_.CreateAnd(ok, b_.CreateAnd(b_.CreateICmpSGE(v, b_.getInt64(g.lo)),
                                             b_.CreateICmpSLT(v, b_.getInt64(g.hi))));
        }
        return b_.CreateSelect(ok, Scalar(e.args[0]), Scalar(e.args[1]));
      }
      default: {
        std::vector<llvm::Value*> args;
        for (const LExpr& a : e.args) args.push_back(Scalar(a));
        return Arith(e.op, args);
      }
    }
  }

  // A vectorized loop is emitted as vector code when its body stores
  // contiguously (coefficient 1 of the loop variable); otherwise it stays a
  // scalar loop for LLVM's own vectorizer.
  bool CanVectorize(const Stmt& loop) const {
    for (const Stmt& s : loop.body) {
      if (s.kind != StmtKind::kStore || s.index.CoefficientOf(loop.var) != 1) return false;
    }
    return loop.extent > 1;
  }

  void EmitVectorized(const Stmt& loop) {
    vars_[loop.var] = b_.getInt64(0);
    for (const Stmt& s : loop.body) {
      llvm::Value* value = Vector(s.value, loop.var, loop.extent);
      b_.CreateAlignedStore(value, Address(s.buffer, Offset(s.index)), llvm::Align(4));
    }
  }

  // Lane offsets c * <0, 1, ..., lanes-1> added to a scalar base index.
  llvm::Value* LaneIndices(llvm::Value* base, int64_t c, int64_t lanes) {
    std::vector<llvm::Constant*> steps;
    for (int64_t l = 0; l < lanes; ++l) steps.push_back(b_.getInt64(c * l));
    return b_.CreateAdd(b_.CreateVectorSplat(lanes, base), llvm::ConstantVector::get(steps));
  }

  // `e` for lanes of the vectorized variable `var` (its value is the lane
  // number; vars_[var] is 0).
  llvm::Value* Vector(const LExpr& e, int var, int64_t lanes) {
    const auto n = static_cast<unsigned>(lanes);
    switch (e.op) {
      case ExprOp::kConst:
        return b_.CreateVectorSplat(n, llvm::ConstantFP::get(f32_, e.constant));
      case ExprOp::kLoad: {
        const int64_t c = e.index.CoefficientOf(var);
        llvm::Value* base = Offset(e.index);
        if (!e.clamp && c == 0) {
          return b_.CreateVectorSplat(
              n, b_.CreateAlignedLoad(f32_, Address(e.buffer, base), llvm::Align(4)));
        }
        if (!e.clamp && c == 1) {
          return b_.CreateAlignedLoad(llvm::FixedVectorType::get(f32_, n),
                                      Address(e.buffer, base), llvm::Align(4));
        }
        llvm::Value* v = llvm::UndefValue::get(llvm::FixedVectorType::get(f32_, n));
        for (int64_t l = 0; l < lanes; ++l) {
          llvm::Value* offset = b_.CreateAdd(base, b_.getInt64(c * l));
          if (e.clamp) offset = Clamped(e.buffer, offset);
          v = b_.CreateInsertElement(
              v, b_.CreateAlignedLoad(f32_, Address(e.buffer, offset), llvm::Align(4)), l);
        }
        return v;
      }
      case ExprOp::kErf:
        return Erf(Vector(e.args[0], var, lanes));
      case ExprOp::kSelect: {
        llvm::Value* ok = b_.CreateVectorSplat(n, b_.getTrue());
        for (const program::LoopGuard& g : e.guards) {
          llvm::Value* v = LaneIndices(Offset(g.value), g.value.CoefficientOf(var), lanes);
          ok = b_.CreateAnd(
              ok, b_.CreateAnd(b_.CreateICmpSGE(v, b_.CreateVectorSplat(n, b_.getInt64(g.lo))),
                               b_.CreateICmpSLT(v, b_.CreateVectorSplat(n, b_.getInt64(g.hi)))));
        }
        return b_.CreateSelect(ok, Vector(e.args[0], var, lanes), Vector(e.args[1], var, lanes));
      }
      default: {
        std::vector<llvm::Value*> args;
        for (const LExpr& a : e.args) args.push_back(Vector(a, var, lanes));
        return Arith(e.op, args);
      }
    }
  }

  const LoopNest& nest_;
  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  llvm::Type* f32_;
  llvm::Type* i64_;
  llvm::PointerType* ptr_;
  int n_global_ = 0;
  int chunks_ = 0;
  FnState fn_;
  std::vector<llvm::Value*> vars_ = std::vector<llvm::Value*>(nest_.vars.size(), nullptr);
};

class JitKernel final : public CompiledKernel {
 public:
  JitKernel(std::unique_ptr<llvm::orc::LLJIT> jit, KernelFn fn) : jit_(std::move(jit)), fn_(fn) {}
  KernelFn fn() const override { return fn_; }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  KernelFn fn_;
};

}  // namespace

std::string HostTargetDescription() {
  InitializeLlvm();
  llvm::Expected<llvm::orc::JITTargetMachineBuilder> jtmb =
      llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) {
    llvm::consumeError(jtmb.takeError());
    return "unknown target";
  }
  std::string features;
  for (const std::string& f : jtmb->getFeatures().getFeatures()) {
    if (f == "+avx2" || f == "+avx512f" || f == "+fma" || f == "+avx") {
      absl::StrAppend(&features, features.empty() ? "" : ",", f);
    }
  }
  return absl::StrCat(jtmb->getCPU(), " (", features, ")");
}

absl::StatusOr<std::unique_ptr<CompiledKernel>> CompileLoopNest(const LoopNest& nest) {
  if (nest.target != "cpu") {
    return absl::InvalidArgumentError(
        absl::StrCat("the LLVM CPU code generator takes cpu loop nests, not ", nest.target));
  }
  InitializeLlvm();
  llvm::Expected<llvm::orc::JITTargetMachineBuilder> jtmb =
      llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return ToStatus(jtmb.takeError());
  jtmb->setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> tm = jtmb->createTargetMachine();
  if (!tm) return ToStatus(tm.takeError());

  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>("tlm", *context);
  module->setDataLayout((*tm)->createDataLayout());
  module->setTargetTriple((*tm)->getTargetTriple().str());
  Emitter(nest, *module).EmitKernel();
  for (llvm::Function& f : *module) {
    if (f.isDeclaration()) continue;
    f.addFnAttr("target-cpu", (*tm)->getTargetCPU());
    f.addFnAttr("target-features", (*tm)->getTargetFeatureString());
  }
  std::string verify_errors;
  llvm::raw_string_ostream verify_stream(verify_errors);
  if (llvm::verifyModule(*module, &verify_stream)) {
    return absl::InternalError(absl::StrCat("generated IR is invalid: ", verify_stream.str()));
  }

  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(tm->get());
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(*module, mam);

  llvm::Expected<std::unique_ptr<llvm::orc::LLJIT>> jit =
      llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!jit) return ToStatus(jit.takeError());
  llvm::orc::JITDylib& dylib = (*jit)->getMainJITDylib();
  // expf, erff, memset and friends come from this process's C library.
  llvm::Expected<std::unique_ptr<llvm::orc::DynamicLibrarySearchGenerator>> process_symbols =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
          (*jit)->getDataLayout().getGlobalPrefix());
  if (!process_symbols) return ToStatus(process_symbols.takeError());
  dylib.addGenerator(std::move(*process_symbols));
  llvm::orc::SymbolMap runtime;
  runtime[(*jit)->mangleAndIntern(kParallelForName)] = llvm::JITEvaluatedSymbol(
      llvm::pointerToJITTargetAddress(&ParallelFor), llvm::JITSymbolFlags::Exported);
  if (llvm::Error e = dylib.define(llvm::orc::absoluteSymbols(std::move(runtime)))) {
    return ToStatus(std::move(e));
  }
  if (llvm::Error e =
          (*jit)->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
    return ToStatus(std::move(e));
  }
  llvm::Expected<llvm::orc::ExecutorAddr> symbol = (*jit)->lookup(kKernelName);
  if (!symbol) return ToStatus(symbol.takeError());
  const KernelFn fn = symbol->toPtr<KernelFn>();
  return std::unique_ptr<CompiledKernel>(new JitKernel(std::move(*jit), fn));
}

}  // namespace tlm::worker

#include "worker/llvm_cpu_backend.h"

#include <chrono>
#include <functional>
#include <mutex>

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

using program::DenseProgram;
using program::Epilogue;

constexpr char kKernelName[] = "tlm_dense_kernel";

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

// Emits `for (iv = 0; iv < extent; ++iv) body(iv)` at the builder's position
// (extent >= 1) and leaves the builder after the loop.
void EmitLoop(llvm::IRBuilder<>& b, int64_t extent, const llvm::Twine& name,
              const std::function<void(llvm::Value*)>& body) {
  llvm::Function* f = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* loop = llvm::BasicBlock::Create(b.getContext(), name, f);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(b.getContext(), name + ".exit", f);
  b.CreateBr(loop);
  b.SetInsertPoint(loop);
  llvm::PHINode* iv = b.CreatePHI(b.getInt64Ty(), 2, name);
  iv->addIncoming(b.getInt64(0), pre);
  body(iv);
  llvm::Value* next = b.CreateAdd(iv, b.getInt64(1), name + ".next", /*HasNUW=*/true,
                                  /*HasNSW=*/true);
  iv->addIncoming(next, b.GetInsertBlock());
  b.CreateCondBr(b.CreateICmpULT(next, b.getInt64(extent)), loop, exit);
  b.SetInsertPoint(exit);
}

// The kernel: C = epilogue(A * B) with the program's loop nest.
void EmitKernel(const DenseProgram& p, llvm::Module& module) {
  llvm::LLVMContext& ctx = module.getContext();
  llvm::IRBuilder<> b(ctx);
  llvm::Type* f32 = b.getFloatTy();
  llvm::Type* ptr = llvm::PointerType::getUnqual(f32);
  llvm::FunctionType* type = llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, ptr, ptr}, false);
  llvm::Function* f =
      llvm::Function::Create(type, llvm::Function::ExternalLinkage, kKernelName, module);
  for (llvm::Argument& arg : f->args()) {
    arg.addAttr(llvm::Attribute::NoAlias);
    arg.addAttr(llvm::Attribute::NoCapture);
  }
  llvm::Value* a = f->getArg(0);
  llvm::Value* bm = f->getArg(1);
  llvm::Value* bias = f->getArg(2);
  llvm::Value* c = f->getArg(3);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", f));

  const program::DenseWorkload& w = p.workload;
  const program::DenseLoops loops = program::LoopsOf(p);
  const int64_t* outer = loops.outer;
  const int64_t* middle = loops.middle;
  const int64_t* inner = loops.inner;
  const char* names[3] = {"i", "j", "k"};

  b.CreateMemSet(c, b.getInt8(0), b.getInt64(w.m * w.n * 4), llvm::MaybeAlign(4));

  llvm::Value* o[3] = {};
  llvm::Value* m[3] = {};
  llvm::Function* fmuladd =
      llvm::Intrinsic::getDeclaration(&module, llvm::Intrinsic::fmuladd, {f32});
  // Innermost levels: i, k, j with j contiguous in B and C.
  auto emit_inner = [&] {
    llvm::Value* base[3];
    for (int x = 0; x < 3; ++x) {
      base[x] = b.CreateMul(b.CreateAdd(b.CreateMul(o[x], b.getInt64(middle[x])), m[x]),
                            b.getInt64(inner[x]));
    }
    EmitLoop(b, inner[0], "i.inner", [&](llvm::Value* ii) {
      llvm::Value* i = b.CreateAdd(base[0], ii);
      EmitLoop(b, inner[2], "k.inner", [&](llvm::Value* kk) {
        llvm::Value* k = b.CreateAdd(base[2], kk);
        llvm::Value* av =
            b.CreateLoad(f32, b.CreateGEP(f32, a, b.CreateAdd(b.CreateMul(i, b.getInt64(w.k)), k)));
        EmitLoop(b, inner[1], "j.inner", [&](llvm::Value* jj) {
          llvm::Value* j = b.CreateAdd(base[1], jj);
          llvm::Value* bp = b.CreateGEP(f32, bm, b.CreateAdd(b.CreateMul(k, b.getInt64(w.n)), j));
          llvm::Value* cp = b.CreateGEP(f32, c, b.CreateAdd(b.CreateMul(i, b.getInt64(w.n)), j));
          llvm::Value* sum =
              b.CreateCall(fmuladd, {av, b.CreateLoad(f32, bp), b.CreateLoad(f32, cp)});
          b.CreateStore(sum, cp);
        });
      });
    });
  };
  // Outer then middle levels in the schedule's order.
  std::function<void(int)> emit_level = [&](int depth) {
    if (depth == 6) return emit_inner();
    const int x = loops.order[depth % 3];
    const bool is_outer = depth < 3;
    EmitLoop(b, is_outer ? outer[x] : middle[x],
             llvm::Twine(names[x]) + (is_outer ? ".outer" : ".middle"), [&](llvm::Value* iv) {
               (is_outer ? o : m)[x] = iv;
               emit_level(depth + 1);
             });
  };
  emit_level(0);

  for (Epilogue e : w.epilogue) {
    EmitLoop(b, w.m * w.n, e == Epilogue::kBias ? "bias" : "relu", [&](llvm::Value* n) {
      llvm::Value* cp = b.CreateGEP(f32, c, n);
      llvm::Value* v = b.CreateLoad(f32, cp);
      if (e == Epilogue::kBias) {
        llvm::Value* j = b.CreateURem(n, b.getInt64(w.n));
        v = b.CreateFAdd(v, b.CreateLoad(f32, b.CreateGEP(f32, bias, j)));
      } else {
        v = b.CreateMaxNum(v, llvm::ConstantFP::get(f32, 0.0));
      }
      b.CreateStore(v, cp);
    });
  }
  b.CreateRetVoid();
}

class JitKernel final : public CompiledDense {
 public:
  JitKernel(std::unique_ptr<llvm::orc::LLJIT> jit, DenseKernelFn fn)
      : jit_(std::move(jit)), fn_(fn) {}
  DenseKernelFn fn() const override { return fn_; }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  DenseKernelFn fn_;
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

absl::StatusOr<std::unique_ptr<CompiledDense>> CompileDense(const DenseProgram& p) {
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
  EmitKernel(p, *module);
  llvm::Function* kernel = module->getFunction(kKernelName);
  kernel->addFnAttr("target-cpu", (*tm)->getTargetCPU());
  kernel->addFnAttr("target-features", (*tm)->getTargetFeatureString());
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
  // memset and friends come from this process's C library.
  llvm::Expected<std::unique_ptr<llvm::orc::DynamicLibrarySearchGenerator>> process_symbols =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
          (*jit)->getDataLayout().getGlobalPrefix());
  if (!process_symbols) return ToStatus(process_symbols.takeError());
  (*jit)->getMainJITDylib().addGenerator(std::move(*process_symbols));
  if (llvm::Error e =
          (*jit)->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
    return ToStatus(std::move(e));
  }
  llvm::Expected<llvm::orc::ExecutorAddr> symbol = (*jit)->lookup(kKernelName);
  if (!symbol) return ToStatus(symbol.takeError());
  const DenseKernelFn fn = symbol->toPtr<DenseKernelFn>();
  return std::unique_ptr<CompiledDense>(new JitKernel(std::move(*jit), fn));
}

tlm::v1::WorkerCapabilities LlvmCpuBackend::Capabilities() const {
  return CpuCapabilities(name(), absl::StrCat(CpuModelName(), " / ", HostTargetDescription()));
}

tlm::v1::MeasureResult LlvmCpuBackend::Measure(const tlm::v1::Program& program,
                                               const tlm::v1::MeasureOptions& options) {
  const auto build_start = std::chrono::steady_clock::now();
  absl::StatusOr<DenseProgram> parsed = program::ProgramFromProto(program);
  if (!parsed.ok()) {
    return FailedMeasurement(tlm::v1::ERROR_KIND_INSTANTIATION, "parse",
                             std::string(parsed.status().message()));
  }
  absl::StatusOr<std::unique_ptr<CompiledDense>> compiled = CompileDense(*parsed);
  const double build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
  if (!compiled.ok()) {
    tlm::v1::MeasureResult failure = FailedMeasurement(tlm::v1::ERROR_KIND_COMPILE_HOST, "build",
                                                       std::string(compiled.status().message()));
    failure.set_build_seconds(build_seconds);
    return failure;
  }
  const DenseKernelFn fn = (*compiled)->fn();
  return harness_.Measure(
      *parsed,
      [fn](const float* a, const float* b, const float* bias, float* c) { fn(a, b, bias, c); },
      options, build_seconds,
      absl::StrCat(program::PrintLoopNest(*parsed), "compiled by LLVM 15 (O3) for ",
                   HostTargetDescription(), "\n"));
}

}  // namespace tlm::worker

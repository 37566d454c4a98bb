#include "program/program.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tlm::program {
namespace {

constexpr int64_t kBytesPerElement = 4;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

int CountOf(const std::string& pattern, char c) {
  return static_cast<int>(std::count(pattern.begin(), pattern.end(), c));
}

std::vector<int64_t> UnrollValues(absl::string_view target) {
  if (target == "cuda") return {0, 16, 64, 512, 1024};
  return {0, 16, 64, 512};
}

const char* SlotWord(SlotKind kind) {
  switch (kind) {
    case SlotKind::kParallel:
      return "parallel";
    case SlotKind::kAt:
      return "at";
    case SlotKind::kLocal:
      return "local";
    case SlotKind::kUnroll:
      return "unroll";
    case SlotKind::kTile:
      break;
  }
  return "tile";
}

// Footprint in elements of a load over a tile of the stage's axes: per
// dimension, the span of its affine index when each axis covers
// tile[axis] consecutive values.
int64_t Footprint(const Expr& load, const std::vector<int64_t>& tile) {
  int64_t elements = 1;
  for (const Affine& a : load.index) {
    int64_t span = 1;
    for (const auto& [axis, coef] : a.terms) span += std::abs(coef) * (tile[axis] - 1);
    elements *= span;
  }
  return elements;
}

int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

TargetLimits WidestLimits() {
  TargetLimits widest;
  widest.max_shared_bytes = 256 * 1024;
  return widest;
}

TargetLimits LimitsFromProto(const tlm::v1::TargetLimits& proto) {
  TargetLimits limits;
  if (proto.max_threads_per_block() > 0) limits.max_threads_per_block = proto.max_threads_per_block();
  if (proto.max_shared_bytes_per_block() > 0) {
    limits.max_shared_bytes = proto.max_shared_bytes_per_block();
  }
  if (proto.max_registers_per_block() > 0) {
    limits.max_registers_per_block = proto.max_registers_per_block();
  }
  return limits;
}

tlm::v1::TargetLimits LimitsToProto(const TargetLimits& limits) {
  tlm::v1::TargetLimits proto;
  proto.set_max_threads_per_block(static_cast<int32_t>(limits.max_threads_per_block));
  proto.set_max_shared_bytes_per_block(limits.max_shared_bytes);
  proto.set_max_registers_per_block(static_cast<int32_t>(limits.max_registers_per_block));
  return proto;
}

absl::Status ValidateLimits(const tlm::v1::TargetLimits& limits) {
  const TargetLimits widest = WidestLimits();
  auto check = [](absl::string_view field, int64_t value, int64_t min, int64_t max) {
    if (value == 0 || (value >= min && value <= max)) return absl::OkStatus();
    return Invalid(absl::StrCat("target.limits.", field, ": must be between ", min, " and ", max,
                                " (or 0 for the default), got ", value));
  };
  for (absl::Status s : {
           check("max_threads_per_block", limits.max_threads_per_block(), 32,
                 widest.max_threads_per_block),
           check("max_shared_bytes_per_block", limits.max_shared_bytes_per_block(), 1024,
                 widest.max_shared_bytes),
           check("max_registers_per_block", limits.max_registers_per_block(),
                 32 * (1 + kReservedRegisters), widest.max_registers_per_block),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string LimitsSummary(const TargetLimits& limits) {
  return absl::StrCat(limits.max_threads_per_block, " threads, ", limits.max_shared_bytes,
                      " B shared memory, ", limits.max_registers_per_block,
                      " registers per block");
}

const std::vector<std::string>& TargetKinds() {
  static const std::vector<std::string> kinds = {"cpu", "cuda"};
  return kinds;
}

absl::StatusOr<Sketch> Sketch::Make(const Workload& workload, absl::string_view target,
                                    const TargetLimits& limits) {
  if (std::find(TargetKinds().begin(), TargetKinds().end(), target) == TargetKinds().end()) {
    return Invalid(absl::StrCat("target: unknown kind \"", target, "\" (known: ",
                                absl::StrJoin(TargetKinds(), ", "), ")"));
  }
  if (target == "cpu" && workload.dtype != DType::kFloat32) {
    return Invalid(absl::StrCat("workload.dtype: ", DTypeName(workload.dtype),
                                " is not supported on target cpu (float32 only; cuda takes float16)"));
  }
  absl::StatusOr<ComputeDag> dag = BuildDag(workload);
  if (!dag.ok()) return dag.status();
  Sketch s;
  s.workload_ = workload;
  s.target_ = std::string(target);
  s.limits_ = limits;
  s.dag_ = std::move(*dag);
  const bool cuda = target == "cuda";
  for (size_t i = 0; i < s.dag_.stages.size(); ++i) {
    const Stage& stage = s.dag_.stages[i];
    const bool reduces = !stage.reduce.empty();
    std::string pattern;
    if (NeedsMultiLevelTiling(stage)) {
      pattern = cuda ? "SSSRRSRS" : "SSRSRS";
    } else {
      pattern = reduces ? "SRS" : "SS";
    }
    s.patterns_.push_back(pattern);
    const int stage_id = static_cast<int>(i);
    const int s_levels = CountOf(pattern, 'S');
    const int r_levels = CountOf(pattern, 'R');
    for (int a = 0; a < stage.num_axes(); ++a) {
      const bool spatial = a < static_cast<int>(stage.spatial.size());
      for (int l = 1; l < (spatial ? s_levels : r_levels); ++l) {
        s.slots_.push_back({stage_id, SlotKind::kTile, a, l});
      }
    }
    if (!cuda) {
      s.slots_.push_back({stage_id, SlotKind::kParallel});
      if (s_levels > 2 && reduces) s.slots_.push_back({stage_id, SlotKind::kAt});
      if (reduces) s.slots_.push_back({stage_id, SlotKind::kLocal});
    }
    s.slots_.push_back({stage_id, SlotKind::kUnroll});
  }
  return s;
}

std::string Sketch::Prompt() const {
  std::vector<std::string> words = {workload_.op};
  const std::vector<std::string>& names = OpParams(workload_.op);
  for (size_t i = 0; i < names.size(); ++i) {
    words.push_back(names[i]);
    words.push_back(absl::StrCat(workload_.params[i]));
  }
  words.push_back("epilogue");
  if (workload_.epilogue.empty()) words.push_back("none");
  for (Epilogue e : workload_.epilogue) words.push_back(std::string(EpilogueName(e)));
  words.push_back("dtype");
  words.push_back(std::string(DTypeName(workload_.dtype)));
  words.push_back("target");
  words.push_back(target_);
  size_t next = 0;
  for (size_t i = 0; i < dag_.stages.size(); ++i) {
    const Stage& stage = dag_.stages[i];
    words.push_back("stage");
    words.push_back(stage.name);
    words.push_back(patterns_[i]);
    for (int a = 0; a < stage.num_axes(); ++a) {
      const Axis& axis = a < static_cast<int>(stage.spatial.size())
                             ? stage.spatial[a]
                             : stage.reduce[a - stage.spatial.size()];
      words.push_back(axis.name);
      words.push_back(absl::StrCat(axis.extent));
      for (; next < slots_.size() && slots_[next].stage == static_cast<int>(i) &&
             slots_[next].kind == SlotKind::kTile && slots_[next].axis == a;
           ++next) {
        words.push_back("?");
      }
    }
    for (; next < slots_.size() && slots_[next].stage == static_cast<int>(i); ++next) {
      words.push_back(SlotWord(slots_[next].kind));
      words.push_back("?");
    }
  }
  words.push_back(kEndOfPrompt);
  return absl::StrJoin(words, " ");
}

int64_t Sketch::Remaining(const Slot& s, const std::vector<int64_t>& prefix) const {
  const Stage& stage = dag_.stages[s.stage];
  const size_t n_spatial = stage.spatial.size();
  int64_t remaining = s.axis < static_cast<int>(n_spatial) ? stage.spatial[s.axis].extent
                                                           : stage.reduce[s.axis - n_spatial].extent;
  for (size_t i = 0; i < prefix.size(); ++i) {
    const Slot& o = slots_[i];
    if (o.stage == s.stage && o.kind == SlotKind::kTile && o.axis == s.axis && o.level < s.level) {
      remaining /= prefix[i];
    }
  }
  return remaining;
}

std::vector<std::vector<int64_t>> Sketch::Factors(int stage_id,
                                                  const std::vector<int64_t>& prefix) const {
  const Stage& stage = dag_.stages[stage_id];
  const std::string& pattern = patterns_[stage_id];
  std::vector<std::vector<int64_t>> factors;
  for (int a = 0; a < stage.num_axes(); ++a) {
    const bool spatial = a < static_cast<int>(stage.spatial.size());
    factors.emplace_back(CountOf(pattern, spatial ? 'S' : 'R'), 1);
    factors.back()[0] = spatial ? stage.spatial[a].extent : stage.reduce[a - stage.spatial.size()].extent;
  }
  for (size_t i = 0; i < prefix.size() && i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.stage != stage_id || s.kind != SlotKind::kTile) continue;
    factors[s.axis][s.level] = prefix[i];
    factors[s.axis][0] /= prefix[i];
  }
  return factors;
}

absl::Status Sketch::Check(size_t index, const std::vector<int64_t>& prefix, int64_t value) const {
  const Slot& s = slots_[index];
  const Stage& stage = dag_.stages[s.stage];
  const std::string& pattern = patterns_[s.stage];
  const int n_spatial = static_cast<int>(stage.spatial.size());
  const bool cuda = target_ == "cuda";
  const bool multi = pattern.size() > 3;
  std::string where = absl::StrCat("stage ", stage.name);
  if (s.kind == SlotKind::kTile) {
    const std::string& axis_name =
        s.axis < n_spatial ? stage.spatial[s.axis].name : stage.reduce[s.axis - n_spatial].name;
    absl::StrAppend(&where, ", axis ", axis_name, ", level ", s.level);
    const int64_t remaining = Remaining(s, prefix);
    if (value < 1 || remaining % value != 0) {
      return Invalid(absl::StrCat(where, ": ", value, " does not divide the remaining extent ",
                                  remaining));
    }
    if (s.axis >= n_spatial && !cuda) return absl::OkStatus();
    std::vector<int64_t> with = prefix;
    with.push_back(value);
    const std::vector<std::vector<int64_t>> f = Factors(s.stage, with);
    const int s_levels = CountOf(pattern, 'S');
    auto product_at = [&](std::initializer_list<int> levels) {
      int64_t p = 1;
      for (int a = 0; a < n_spatial; ++a) {
        for (int l : levels) p *= f[a][l];
      }
      return p;
    };
    if (!cuda) {
      if (s.axis == n_spatial - 1 && s.level == s_levels - 1 &&
          value > limits_.max_vector_length) {
        return Invalid(absl::StrCat(where, ": vector length ", value, " exceeds the limit ",
                                    limits_.max_vector_length));
      }
      return absl::OkStatus();
    }
    const int thread_level = multi ? 2 : 1;
    if (product_at({thread_level}) > limits_.max_threads_per_block) {
      return Invalid(absl::StrCat(where, ": ", product_at({thread_level}),
                                  " threads per block exceed the limit ",
                                  limits_.max_threads_per_block));
    }
    if (!multi) return absl::OkStatus();
    if (product_at({1}) > limits_.max_vthreads) {
      return Invalid(absl::StrCat(where, ": ", product_at({1}), " virtual threads exceed the limit ",
                                  limits_.max_vthreads));
    }
    const int64_t threads = product_at({thread_level});
    const int64_t accumulators = product_at({1, 3, 4});
    const int64_t registers =
        std::min(kMaxRegistersPerThread, limits_.max_registers_per_block / threads);
    if (accumulators + kReservedRegisters > registers) {
      return Invalid(absl::StrCat(where, ": ", accumulators, " accumulators per thread need about ",
                                  accumulators + kReservedRegisters, " registers; ", threads,
                                  " threads of a block may use ", registers, " each"));
    }
    // Shared memory: every input's footprint over one block's tile and one
    // R0 step.
    std::vector<int64_t> tile(stage.num_axes(), 1);
    for (int a = 0; a < stage.num_axes(); ++a) {
      for (size_t l = 1; l < f[a].size(); ++l) tile[a] *= f[a][l];
    }
    std::vector<const Expr*> loads;
    CollectLoads(stage.body, &loads);
    int64_t bytes = 0;
    // Each buffer starts 16-byte aligned in the kernel's dynamic shared memory.
    for (const Expr* load : loads) bytes += RoundUp(kBytesPerElement * Footprint(*load, tile), 16);
    if (bytes > limits_.max_shared_bytes) {
      return Invalid(absl::StrCat(where, ": shared memory of ", bytes, " B exceeds the limit ",
                                  limits_.max_shared_bytes, " B"));
    }
    return absl::OkStatus();
  }
  absl::StrAppend(&where, ", ", SlotWord(s.kind));
  switch (s.kind) {
    case SlotKind::kParallel:
      if (value < 0 || value > n_spatial) {
        return Invalid(absl::StrCat(where, ": must be in [0, ", n_spatial, "], got ", value));
      }
      return absl::OkStatus();
    case SlotKind::kAt:
      if (value != 0 && value != 1) {
        return Invalid(absl::StrCat(where, ": must be 0 or 1, got ", value));
      }
      return absl::OkStatus();
    case SlotKind::kLocal: {
      if (value != 0 && value != 1) {
        return Invalid(absl::StrCat(where, ": must be 0 or 1, got ", value));
      }
      if (value == 0) return absl::OkStatus();
      int at = 0;
      if (index > 0 && slots_[index - 1].kind == SlotKind::kAt) at = static_cast<int>(prefix[index - 1]);
      const std::vector<std::vector<int64_t>> f = Factors(s.stage, prefix);
      int64_t bytes = kBytesPerElement;
      for (int a = 0; a < n_spatial; ++a) {
        for (size_t l = at + 1; l < f[a].size(); ++l) bytes *= f[a][l];
      }
      if (bytes > limits_.max_local_bytes) {
        return Invalid(absl::StrCat(where, ": a cache-write buffer of ", bytes,
                                    " B exceeds the limit ", limits_.max_local_bytes, " B"));
      }
      return absl::OkStatus();
    }
    case SlotKind::kUnroll: {
      const std::vector<int64_t> allowed = UnrollValues(target_);
      if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
        return Invalid(absl::StrCat(where, ": must be one of ", absl::StrJoin(allowed, ", "),
                                    ", got ", value));
      }
      return absl::OkStatus();
    }
    case SlotKind::kTile:
      break;
  }
  return absl::OkStatus();
}

std::vector<int64_t> Sketch::Candidates(size_t index, const std::vector<int64_t>& prefix) const {
  const Slot& s = slots_[index];
  std::vector<int64_t> values;
  switch (s.kind) {
    case SlotKind::kTile: {
      const int64_t remaining = Remaining(s, prefix);
      for (int64_t d = 1; d * d <= remaining; ++d) {
        if (remaining % d != 0) continue;
        values.push_back(d);
        if (d * d != remaining) values.push_back(remaining / d);
      }
      std::sort(values.begin(), values.end());
      break;
    }
    case SlotKind::kParallel:
      for (int64_t v = 0; v <= static_cast<int64_t>(dag_.stages[s.stage].spatial.size()); ++v) {
        values.push_back(v);
      }
      break;
    case SlotKind::kAt:
    case SlotKind::kLocal:
      values = {0, 1};
      break;
    case SlotKind::kUnroll:
      values = UnrollValues(target_);
      break;
  }
  std::vector<int64_t> allowed;
  for (int64_t v : values) {
    if (Check(index, prefix, v).ok()) allowed.push_back(v);
  }
  return allowed;
}

std::vector<StageSchedule> Sketch::Schedules(const std::vector<int64_t>& decisions) const {
  std::vector<StageSchedule> schedules(dag_.stages.size());
  for (size_t i = 0; i < dag_.stages.size(); ++i) {
    schedules[i].pattern = patterns_[i];
    schedules[i].factors = Factors(static_cast<int>(i), decisions);
    // A local accumulator is implied on cuda (registers).
    schedules[i].local = target_ == "cuda";
  }
  for (size_t i = 0; i < slots_.size() && i < decisions.size(); ++i) {
    StageSchedule& s = schedules[slots_[i].stage];
    switch (slots_[i].kind) {
      case SlotKind::kParallel:
        s.parallel = static_cast<int>(decisions[i]);
        break;
      case SlotKind::kAt:
        s.at = static_cast<int>(decisions[i]);
        break;
      case SlotKind::kLocal:
        s.local = decisions[i] != 0;
        break;
      case SlotKind::kUnroll:
        s.unroll = decisions[i];
        break;
      case SlotKind::kTile:
        break;
    }
  }
  return schedules;
}

absl::Status ValidateProgram(const Program& p, const TargetLimits& limits) {
  absl::StatusOr<Sketch> sketch = Sketch::Make(p.workload, p.target, limits);
  if (!sketch.ok()) return sketch.status();
  const size_t n = sketch->slots().size();
  if (p.decisions.size() != n) {
    return Invalid(absl::StrCat("the sketch has ", n, " decisions, got ", p.decisions.size()));
  }
  std::vector<int64_t> prefix;
  for (size_t i = 0; i < n; ++i) {
    if (absl::Status s = sketch->Check(i, prefix, p.decisions[i]); !s.ok()) return s;
    prefix.push_back(p.decisions[i]);
  }
  return absl::OkStatus();
}

std::string Print(const Program& p) {
  absl::StatusOr<Sketch> sketch = Sketch::Make(p.workload, p.target);
  std::string text = sketch.ok() ? sketch->Prompt() : kEndOfPrompt;
  for (int64_t d : p.decisions) absl::StrAppend(&text, " ", d);
  return text;
}

absl::StatusOr<Program> Parse(absl::string_view text) {
  const std::vector<absl::string_view> words = absl::StrSplit(text, ' ');
  size_t pos = 0;
  auto next = [&](absl::string_view what) -> absl::StatusOr<absl::string_view> {
    if (pos >= words.size()) {
      return Invalid(absl::StrCat("program text: ends where ", what, " was expected"));
    }
    return words[pos++];
  };
  auto number = [&](absl::string_view what) -> absl::StatusOr<int64_t> {
    absl::StatusOr<absl::string_view> w = next(what);
    if (!w.ok()) return w.status();
    int64_t v;
    if (!absl::SimpleAtoi(*w, &v)) {
      return Invalid(absl::StrCat("program text: word ", pos, " is \"", *w, "\", expected ", what));
    }
    return v;
  };
  auto expect = [&](absl::string_view word) -> absl::Status {
    absl::StatusOr<absl::string_view> w = next(word);
    if (!w.ok()) return w.status();
    if (*w != word) {
      return Invalid(absl::StrCat("program text: word ", pos, " is \"", *w, "\", expected \"",
                                  word, "\""));
    }
    return absl::OkStatus();
  };

  Program p;
  absl::StatusOr<absl::string_view> op = next("an operator");
  if (!op.ok()) return op.status();
  p.workload.op = std::string(*op);
  const std::vector<std::string>& names = OpParams(*op);
  if (names.empty()) return ValidateWorkload(p.workload);
  for (const std::string& name : names) {
    if (absl::Status s = expect(name); !s.ok()) return s;
    absl::StatusOr<int64_t> v = number(absl::StrCat("a value for ", name));
    if (!v.ok()) return v.status();
    p.workload.params.push_back(*v);
  }
  if (absl::Status s = expect("epilogue"); !s.ok()) return s;
  for (;;) {
    absl::StatusOr<absl::string_view> w = next("\"dtype\"");
    if (!w.ok()) return w.status();
    if (*w == "dtype") break;
    if (*w == "none") continue;
    absl::StatusOr<Epilogue> e = ParseEpilogue(*w);
    if (!e.ok()) return Invalid(absl::StrCat("program text: ", e.status().message()));
    p.workload.epilogue.push_back(*e);
  }
  absl::StatusOr<absl::string_view> dtype = next("a dtype");
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<DType> t = ParseDType(*dtype);
  if (!t.ok()) return Invalid(absl::StrCat("program text: ", t.status().message()));
  p.workload.dtype = *t;
  if (absl::Status s = expect("target"); !s.ok()) return s;
  absl::StatusOr<absl::string_view> target = next("a target kind");
  if (!target.ok()) return target.status();
  p.target = std::string(*target);

  absl::StatusOr<Sketch> sketch = Sketch::Make(p.workload, p.target);
  if (!sketch.ok()) return sketch.status();
  const std::string prompt_text = sketch->Prompt();  // outlives the views into it
  const std::vector<absl::string_view> prompt = absl::StrSplit(prompt_text, ' ');
  for (size_t i = pos; i < prompt.size(); ++i) {
    if (absl::Status s = expect(prompt[i]); !s.ok()) {
      return Invalid(absl::StrCat(s.message(), " (the sketch of this workload on ", p.target,
                                  " differs)"));
    }
  }
  while (pos < words.size()) {
    absl::StatusOr<int64_t> v = number("a decision");
    if (!v.ok()) return v.status();
    p.decisions.push_back(*v);
  }
  if (absl::Status s = ValidateProgram(p); !s.ok()) return s;
  if (Print(p) != text) return Invalid("program text: not in canonical form");
  return p;
}

std::string HashText(absl::string_view text) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, h);
  return buf;
}

std::string ProgramHash(const Program& p) { return HashText(Print(p)); }

tlm::v1::Program ProgramToProto(const Program& p) {
  tlm::v1::Program proto;
  proto.set_text(Print(p));
  proto.set_hash(HashText(proto.text()));
  return proto;
}

absl::StatusOr<Program> ProgramFromProto(const tlm::v1::Program& proto) {
  if (!proto.hash().empty() && proto.hash() != HashText(proto.text())) {
    return Invalid(absl::StrCat("program.hash: ", proto.hash(), " does not match the text (",
                                HashText(proto.text()), ")"));
  }
  return Parse(proto.text());
}

absl::StatusOr<Program> DefaultProgram(const Workload& w, absl::string_view target) {
  absl::StatusOr<Sketch> sketch = Sketch::Make(w, target);
  if (!sketch.ok()) return sketch.status();
  Program p;
  p.workload = w;
  p.target = std::string(target);
  // The smallest allowed value of every slot: factor 1, no parallel loop,
  // the outermost accumulator level, no local buffer, no unrolling.
  for (size_t i = 0; i < sketch->slots().size(); ++i) {
    p.decisions.push_back(sketch->Candidates(i, p.decisions).front());
  }
  return p;
}

}  // namespace tlm::program

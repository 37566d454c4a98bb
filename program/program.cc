#include "program/program.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tlm::program {
namespace {

int AxisIndex(char axis) { return axis == 'i' ? 0 : axis == 'j' ? 1 : 2; }

absl::Status CheckAxis(const char* axis, const char* extent_name, int64_t extent,
                       const AxisTiling& t) {
  if (t.middle < 1 || t.inner < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tile ", axis, ": factors must be at least 1, got ", t.middle, "x", t.inner));
  }
  if (t.middle > extent || t.inner > extent || extent % (t.middle * t.inner) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tile ", axis, ": middle*inner = ", t.middle,
                                                   "*", t.inner, " does not divide ", extent_name,
                                                   " = ", extent));
  }
  return absl::OkStatus();
}

absl::Status ParseError(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("program text \"", text, "\": ", what));
}

absl::StatusOr<int64_t> ParseInt(absl::string_view s) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", s, "\" is not an integer"));
  }
  return v;
}

absl::StatusOr<AxisTiling> ParseTiling(absl::string_view s) {
  std::vector<absl::string_view> parts = absl::StrSplit(s, 'x');
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("tile \"", s, "\" is not <middle>x<inner>"));
  }
  AxisTiling t;
  absl::StatusOr<int64_t> middle = ParseInt(parts[0]);
  if (!middle.ok()) return middle.status();
  absl::StatusOr<int64_t> inner = ParseInt(parts[1]);
  if (!inner.ok()) return inner.status();
  t.middle = *middle;
  t.inner = *inner;
  return t;
}

}  // namespace

absl::Status ValidateProgram(const DenseProgram& p) {
  if (absl::Status s = ValidateWorkload(p.workload); !s.ok()) return s;
  const DenseSchedule& s = p.schedule;
  if (absl::Status st = CheckAxis("i", "M", p.workload.m, s.i); !st.ok()) return st;
  if (absl::Status st = CheckAxis("j", "N", p.workload.n, s.j); !st.ok()) return st;
  if (absl::Status st = CheckAxis("k", "K", p.workload.k, s.k); !st.ok()) return st;
  std::string sorted = s.order;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != "ijk") {
    return absl::InvalidArgumentError(
        absl::StrCat("order \"", s.order, "\" is not a permutation of ijk"));
  }
  return absl::OkStatus();
}

std::string Print(const DenseProgram& p) {
  const DenseWorkload& w = p.workload;
  std::vector<std::string> epilogue;
  for (Epilogue e : w.epilogue) epilogue.emplace_back(EpilogueName(e));
  const DenseSchedule& s = p.schedule;
  return absl::StrCat("dense M=", w.m, " N=", w.n, " K=", w.k,
                      " epilogue=", epilogue.empty() ? "none" : absl::StrJoin(epilogue, ","),
                      " | tile i=", s.i.middle, "x", s.i.inner, " j=", s.j.middle, "x", s.j.inner,
                      " k=", s.k.middle, "x", s.k.inner, " order=", s.order);
}

absl::StatusOr<DenseProgram> Parse(absl::string_view text) {
  std::vector<absl::string_view> halves = absl::StrSplit(text, " | ");
  if (halves.size() != 2) return ParseError(text, "expected \"<workload> | <schedule>\"");

  std::vector<absl::string_view> head = absl::StrSplit(halves[0], ' ');
  if (head.size() != 5 || head[0] != "dense") {
    return ParseError(text, "workload must be \"dense M=<m> N=<n> K=<k> epilogue=<list>\"");
  }
  std::vector<absl::string_view> tail = absl::StrSplit(halves[1], ' ');
  if (tail.size() != 5 || tail[0] != "tile") {
    return ParseError(text, "schedule must be \"tile i=<a>x<b> j=<a>x<b> k=<a>x<b> order=<perm>\"");
  }

  // Each field is key=value at a fixed position, so the form stays canonical.
  auto value_of = [&](absl::string_view field,
                      absl::string_view key) -> absl::StatusOr<absl::string_view> {
    const std::string prefix = absl::StrCat(key, "=");
    if (!absl::StartsWith(field, prefix)) {
      return ParseError(text, absl::StrCat("expected ", key, "=..., got \"", field, "\""));
    }
    return field.substr(prefix.size());
  };

  DenseProgram p;
  int64_t* extents[] = {&p.workload.m, &p.workload.n, &p.workload.k};
  const char* extent_keys[] = {"M", "N", "K"};
  for (int a = 0; a < 3; ++a) {
    absl::StatusOr<absl::string_view> v = value_of(head[1 + a], extent_keys[a]);
    if (!v.ok()) return v.status();
    absl::StatusOr<int64_t> n = ParseInt(*v);
    if (!n.ok()) return ParseError(text, n.status().message());
    *extents[a] = *n;
  }
  absl::StatusOr<absl::string_view> epi = value_of(head[4], "epilogue");
  if (!epi.ok()) return epi.status();
  if (*epi != "none") {
    for (absl::string_view name : absl::StrSplit(*epi, ',')) {
      absl::StatusOr<Epilogue> e = ParseEpilogue(name);
      if (!e.ok()) return ParseError(text, e.status().message());
      p.workload.epilogue.push_back(*e);
    }
  }

  AxisTiling* tilings[] = {&p.schedule.i, &p.schedule.j, &p.schedule.k};
  const char* axis_keys[] = {"i", "j", "k"};
  for (int a = 0; a < 3; ++a) {
    absl::StatusOr<absl::string_view> v = value_of(tail[1 + a], axis_keys[a]);
    if (!v.ok()) return v.status();
    absl::StatusOr<AxisTiling> t = ParseTiling(*v);
    if (!t.ok()) return ParseError(text, t.status().message());
    *tilings[a] = *t;
  }
  absl::StatusOr<absl::string_view> order = value_of(tail[4], "order");
  if (!order.ok()) return order.status();
  p.schedule.order = std::string(*order);

  if (absl::Status s = ValidateProgram(p); !s.ok()) return ParseError(text, s.message());
  if (Print(p) != text) return ParseError(text, "not in canonical form");
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

tlm::v1::Program ProgramToProto(const DenseProgram& p) {
  tlm::v1::Program proto;
  proto.set_text(Print(p));
  proto.set_hash(HashText(proto.text()));
  return proto;
}

absl::StatusOr<DenseProgram> ProgramFromProto(const tlm::v1::Program& proto) {
  if (!proto.hash().empty() && proto.hash() != HashText(proto.text())) {
    return absl::InvalidArgumentError(absl::StrCat("program.hash ", proto.hash(),
                                                   " does not match its text (expected ",
                                                   HashText(proto.text()), ")"));
  }
  return Parse(proto.text());
}

DenseLoops LoopsOf(const DenseProgram& p) {
  const DenseSchedule& s = p.schedule;
  const int64_t extent[3] = {p.workload.m, p.workload.n, p.workload.k};
  const AxisTiling* tiling[3] = {&s.i, &s.j, &s.k};
  DenseLoops loops;
  for (int x = 0; x < 3; ++x) {
    loops.middle[x] = tiling[x]->middle;
    loops.inner[x] = tiling[x]->inner;
    loops.outer[x] = extent[x] / (tiling[x]->middle * tiling[x]->inner);
    loops.order[x] = AxisIndex(s.order[x]);
  }
  return loops;
}

std::string PrintLoopNest(const DenseProgram& p) {
  const DenseWorkload& w = p.workload;
  const DenseLoops loops = LoopsOf(p);
  const char names[3] = {'i', 'j', 'k'};
  std::string out = absl::StrCat("C[0:", w.m, ", 0:", w.n, "] = 0\n");
  std::string indent;
  auto loop = [&](int x, const char* level, int64_t trips) {
    absl::StrAppend(&out, indent, "for ", std::string(1, names[x]), ".", level, " in 0..", trips,
                    ":\n");
    indent += "  ";
  };
  for (int x : loops.order) loop(x, "outer", loops.outer[x]);
  for (int x : loops.order) loop(x, "middle", loops.middle[x]);
  for (int x : {0, 2, 1}) loop(x, "inner", loops.inner[x]);
  absl::StrAppend(&out, indent, "C[i, j] += A[i, k] * B[k, j]\n");
  for (Epilogue e : w.epilogue) {
    absl::StrAppend(&out, e == Epilogue::kBias ? "C[i, j] += bias[j]" : "C[i, j] = max(C[i, j], 0)",
                    "  for all i, j\n");
  }
  return out;
}

DenseProgram DefaultProgram(const DenseWorkload& w) {
  DenseProgram p;
  p.workload = w;
  return p;
}

}  // namespace tlm::program

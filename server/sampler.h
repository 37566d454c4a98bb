// Samplers choose which programs of a task to measure next.
#ifndef TLMD_SERVER_SAMPLER_H_
#define TLMD_SERVER_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "program/program.h"

namespace tlm::server {

// Proposes programs for one task. Not thread-safe: the tuner keeps one
// instance per task and calls it under that task's lock.
class Sampler {
 public:
  virtual ~Sampler() = default;

  // Up to `count` distinct valid programs whose hashes (program::HashText of
  // the canonical text) are not in `exclude`. Fewer than `count`, possibly
  // none, means the space holds no more unseen programs.
  virtual std::vector<program::Program> Propose(
      int count, const absl::flat_hash_set<std::string>& exclude) = 0;

  // A measured program of the task: its median time in seconds, or nullopt
  // when it failed. Called once per stored result (also for results stored
  // before a restart). Samplers that do not learn ignore it.
  virtual void Observe(const program::Program& program, std::optional<double> seconds) {}
};

// Random search: every decision drawn uniformly from its slot's allowed
// values (program::SampleProgram). Once draws stop finding unseen programs,
// a small space is enumerated, so a task can exhaust it exactly.
class RandomSampler : public Sampler {
 public:
  RandomSampler(program::Sketch sketch, uint64_t seed);

  std::vector<program::Program> Propose(
      int count, const absl::flat_hash_set<std::string>& exclude) override;

 private:
  program::Sketch sketch_;
  std::mt19937_64 rng_;
};

// The untuned schedule (program::DefaultProgram) and nothing else: a task's
// baseline.
class DefaultSampler : public Sampler {
 public:
  explicit DefaultSampler(program::Sketch sketch) : sketch_(std::move(sketch)) {}
  std::vector<program::Program> Propose(
      int count, const absl::flat_hash_set<std::string>& exclude) override;

 private:
  program::Sketch sketch_;
};

// Builds a sampler for one task. An error is the submission's error.
using SamplerMaker = std::function<absl::StatusOr<std::unique_ptr<Sampler>>(
    program::Sketch sketch, uint64_t seed)>;

// The samplers a server offers, by name. Filled before serving, then only
// read (reads are thread-safe).
class SamplerRegistry {
 public:
  // Offers "random" (the default), "evolutionary" and "default" (the
  // untuned schedule only).
  SamplerRegistry();

  // Offers `name` (replacing a sampler of that name).
  void Add(const std::string& name, SamplerMaker maker);
  // The names offered; the first is the default.
  const std::vector<std::string>& names() const { return names_; }

  // A sampler for the task whose programs respect `limits`; "" means the
  // default. INVALID_ARGUMENT "sampler: ..." for an unknown name, the
  // workload's or target's error, or the maker's.
  absl::StatusOr<std::unique_ptr<Sampler>> Make(const std::string& name,
                                                const program::Workload& workload,
                                                const std::string& target, uint64_t seed,
                                                const program::TargetLimits& limits = {}) const;

 private:
  std::vector<std::string> names_;
  std::vector<SamplerMaker> makers_;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_SAMPLER_H_

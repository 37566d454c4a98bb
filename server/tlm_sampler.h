// The tensor language model as a sampler, and the slot holding the model
// tlmd generates with.
#ifndef TLMD_SERVER_TLM_SAMPLER_H_
#define TLMD_SERVER_TLM_SAMPLER_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "models/model.h"
#include "server/sampler.h"

namespace tlm::server {

// The model in use. Publishing swaps it atomically: a caller that took the
// previous model keeps it until it lets go, so a generation in flight
// finishes on the model it started with. Thread-safe.
class ModelSlot {
 public:
  // The current model; null before the first Publish.
  std::shared_ptr<const models::Model> Get() const;
  // Makes `model` current and returns its version (1, 2, ...).
  int64_t Publish(std::shared_ptr<const models::Model> model);
  // Loads a checkpoint and publishes it; on error the current model stays.
  absl::Status PublishFile(const std::string& path);
  int64_t version() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const models::Model> model_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
};

// Publishes a checkpoint file into a slot whenever the file changes (a new
// checkpoint is written under a temporary name and renamed over it). A file
// that does not load is logged and the current model stays. Stops when
// destroyed.
class CheckpointWatcher {
 public:
  CheckpointWatcher(std::string path, ModelSlot* slot, absl::Duration period);
  ~CheckpointWatcher();
  CheckpointWatcher(const CheckpointWatcher&) = delete;
  CheckpointWatcher& operator=(const CheckpointWatcher&) = delete;

 private:
  void Loop();

  const std::string path_;
  ModelSlot* const slot_;
  const absl::Duration period_;
  std::string seen_;  // identity of the file last tried: inode, size, mtime
  absl::Notification stop_;
  std::thread thread_;
};

// Proposes the programs the current model generates for the task's sketch,
// skipping those already stored for the task. Should generation fail (a
// libtorch error), that call falls back to random sampling and logs why,
// so the task goes on.
class TlmSampler : public Sampler {
 public:
  TlmSampler(program::Sketch sketch, const ModelSlot* slot, models::GenerateOptions options,
             uint64_t seed);

  std::vector<program::Program> Propose(
      int count, const absl::flat_hash_set<std::string>& exclude) override;

 private:
  const program::Sketch sketch_;
  const ModelSlot* const slot_;
  const models::GenerateOptions options_;
  std::mt19937_64 rng_;
  RandomSampler fallback_;
};

// Offers "tlm" in `registry`, generating with `slot`'s model (which must
// outlive the registry). A task asking for it is refused with
// FAILED_PRECONDITION while the slot is empty, and with INVALID_ARGUMENT
// when its prompt does not fit the model.
void AddTlmSampler(SamplerRegistry& registry, const ModelSlot* slot,
                   const models::GenerateOptions& options);

}  // namespace tlm::server

#endif  // TLMD_SERVER_TLM_SAMPLER_H_

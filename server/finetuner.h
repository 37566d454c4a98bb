// Online fine-tuning: the model learns from the programs tlmd measures.
#ifndef TLMD_SERVER_FINETUNER_H_
#define TLMD_SERVER_FINETUNER_H_

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "models/trainer.h"
#include "program/program.h"
#include "server/store.h"
#include "server/tlm_sampler.h"

namespace tlm::server {

// The supervised fine-tuning set: for every workload and target in the
// store, the fastest successfully measured program over all its tasks
// (failures are never in it), in order of the oldest task.
absl::StatusOr<std::vector<program::Program>> BestPrograms(Store& store);

// After every `results_per_round` successful results, and whenever a round
// is requested (a session's round ended), fine-tunes a copy of the model in
// use on BestPrograms on a background thread (one round at a time; results
// and requests arriving meanwhile count towards the next) and writes it to
// `checkpoint_path` atomically, from where tlmd's CheckpointWatcher
// publishes it. The model in use keeps serving throughout.
class FineTuner {
 public:
  struct Options {
    // 0: only requested rounds.
    int results_per_round = 64;
    models::TrainOptions train;  // see the constructor for the defaults used
    std::string checkpoint_path;
  };

  // `store` and `slot` must outlive the fine-tuner. Unset training options
  // default to 100 steps, peak learning rate 3e-4, one libtorch thread (the
  // measuring workers may share this machine).
  FineTuner(Store* store, const ModelSlot* slot, Options options);
  // Finishes a round in progress, then stops.
  ~FineTuner();
  FineTuner(const FineTuner&) = delete;
  FineTuner& operator=(const FineTuner&) = delete;

  // Counts a stored result. Thread-safe and quick.
  void OnResult(const tlm::v1::MeasureResult& result);
  // Asks for a round as soon as the one in progress (if any) is done; one
  // pending request at most. Thread-safe and quick.
  void RequestRound();
  // Rounds that wrote a checkpoint so far.
  int64_t rounds() const;

 private:
  void Loop();
  absl::Status RunRound();

  Store* const store_;
  const ModelSlot* const slot_;
  const Options options_;
  mutable absl::Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;  // successful results since the last round began
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_FINETUNER_H_

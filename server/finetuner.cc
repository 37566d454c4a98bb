#include "server/finetuner.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace tlm::server {

absl::StatusOr<std::vector<program::Program>> BestPrograms(Store& store) {
  absl::StatusOr<std::vector<tlm::v1::Task>> tasks = store.ListTasks(0, {});
  if (!tasks.ok()) return tasks.status();
  // Per workload and target (its sketch): the fastest over all its tasks, so
  // a baseline task's untuned schedule is never taught when a tuned one is
  // faster.
  std::vector<std::string> order;
  absl::flat_hash_map<std::string, std::pair<double, program::Program>> best;
  for (auto it = tasks->rbegin(); it != tasks->rend(); ++it) {  // newest first -> oldest first
    absl::StatusOr<tlm::v1::Trial> trial = store.GetBest(it->id());
    if (absl::IsNotFound(trial.status())) continue;  // nothing measured successfully yet
    if (!trial.ok()) return trial.status();
    absl::StatusOr<program::Program> p = program::ProgramFromProto(trial->program());
    if (!p.ok()) {
      spdlog::warn("task {}: best program not usable for fine-tuning: {}", it->id(),
                   p.status().ToString());
      continue;
    }
    const std::string key = absl::StrCat(program::WorkloadSummary(p->workload), " on ", p->target);
    const double seconds = trial->result().median_seconds();
    auto [slot, inserted] = best.try_emplace(key, seconds, *p);
    if (inserted) {
      order.push_back(key);
    } else if (seconds < slot->second.first) {
      slot->second = {seconds, *std::move(p)};
    }
  }
  std::vector<program::Program> out;
  for (const std::string& key : order) out.push_back(best.at(key).second);
  return out;
}

namespace {

FineTuner::Options WithDefaults(FineTuner::Options o) {
  const models::TrainOptions defaults;
  if (o.train.steps == defaults.steps) o.train.steps = 100;
  if (o.train.learning_rate == defaults.learning_rate) o.train.learning_rate = 3e-4;
  if (o.train.threads == 0) o.train.threads = 1;
  o.train.warmup_steps = std::min<int64_t>(o.train.warmup_steps, o.train.steps / 10);
  o.train.log_every = o.train.steps;
  return o;
}

}  // namespace

FineTuner::FineTuner(Store* store, const ModelSlot* slot, Options options)
    : store_(store), slot_(slot), options_(WithDefaults(std::move(options))) {
  thread_ = std::thread([this] { Loop(); });
}

FineTuner::~FineTuner() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void FineTuner::OnResult(const tlm::v1::MeasureResult& result) {
  if (result.error_kind() != tlm::v1::ERROR_KIND_NONE) return;
  absl::MutexLock lock(&mu_);
  ++pending_;
}

void FineTuner::RequestRound() {
  absl::MutexLock lock(&mu_);
  requested_ = true;
}

int64_t FineTuner::rounds() const {
  absl::MutexLock lock(&mu_);
  return rounds_;
}

void FineTuner::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](FineTuner* f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(f->mu_) {
            return f->stop_ || f->requested_ ||
                   (f->options_.results_per_round > 0 &&
                    f->pending_ >= f->options_.results_per_round);
          },
          this));
      if (stop_) return;
      pending_ = 0;
      requested_ = false;
    }
    if (absl::Status s = RunRound(); !s.ok()) {
      spdlog::error("fine-tuning round skipped: {}", s.ToString());
      continue;
    }
    absl::MutexLock lock(&mu_);
    ++rounds_;
  }
}

absl::Status FineTuner::RunRound() {
  absl::StatusOr<std::vector<program::Program>> best = BestPrograms(*store_);
  if (!best.ok()) return best.status();
  if (best->empty()) return absl::FailedPreconditionError("no successful measurement yet");
  const std::shared_ptr<const models::Model> serving = slot_->Get();
  if (serving == nullptr) return absl::FailedPreconditionError("no model in use");
  absl::StatusOr<models::Model> model = serving->Clone();
  if (!model.ok()) return model.status();
  absl::StatusOr<models::TrainReport> report = models::Train(*model, *best, options_.train);
  if (!report.ok()) return report.status();
  const int64_t round = rounds() + 1;
  model->metadata()["online_sft"] =
      absl::StrCat("round ", round, ": ", best->size(), " programs, ", options_.train.steps,
                   " steps, final loss ", report->curve.back().loss);
  if (absl::Status s = model->Save(options_.checkpoint_path); !s.ok()) return s;
  spdlog::info("fine-tuning round {}: {} best programs, {} steps in {:.1f} s, loss {:.4f}; wrote {}",
               round, best->size(), options_.train.steps, report->seconds,
               report->curve.back().loss, options_.checkpoint_path);
  return absl::OkStatus();
}

}  // namespace tlm::server

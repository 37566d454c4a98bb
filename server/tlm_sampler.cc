#include "server/tlm_sampler.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace tlm::server {

std::shared_ptr<const models::Model> ModelSlot::Get() const {
  absl::MutexLock lock(&mu_);
  return model_;
}

int64_t ModelSlot::Publish(std::shared_ptr<const models::Model> model) {
  absl::MutexLock lock(&mu_);
  model_ = std::move(model);
  return ++version_;
}

absl::Status ModelSlot::PublishFile(const std::string& path) {
  absl::StatusOr<models::Model> model = models::Model::Load(path);
  if (!model.ok()) return model.status();
  const int64_t version = Publish(std::make_shared<const models::Model>(*std::move(model)));
  spdlog::info("model version {} in use: {}", version, path);
  return absl::OkStatus();
}

int64_t ModelSlot::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

namespace {

// Changes when the file is replaced or rewritten; "" when it is missing.
std::string FileIdentity(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec);
}

}  // namespace

CheckpointWatcher::CheckpointWatcher(std::string path, ModelSlot* slot, absl::Duration period)
    : path_(std::move(path)), slot_(slot), period_(period), seen_(FileIdentity(path_)) {
  thread_ = std::thread([this] { Loop(); });
}

CheckpointWatcher::~CheckpointWatcher() {
  stop_.Notify();
  thread_.join();
}

void CheckpointWatcher::Loop() {
  while (!stop_.WaitForNotificationWithTimeout(period_)) {
    const std::string now = FileIdentity(path_);
    if (now.empty() || now == seen_) continue;
    seen_ = now;
    if (absl::Status s = slot_->PublishFile(path_); !s.ok()) {
      spdlog::error("new checkpoint not used, the current model stays: {}", s.ToString());
    }
  }
}

TlmSampler::TlmSampler(program::Sketch sketch, const ModelSlot* slot,
                       models::GenerateOptions options, uint64_t seed)
    : sketch_(sketch), slot_(slot), options_(options), rng_(seed), fallback_(sketch, seed + 1) {}

std::vector<program::Program> TlmSampler::Propose(
    int count, const absl::flat_hash_set<std::string>& exclude) {
  if (count <= 0) return {};
  const std::shared_ptr<const models::Model> model = slot_->Get();
  models::GenerateOptions o = options_;
  o.exclude = &exclude;
  o.seed = rng_();
  absl::StatusOr<std::vector<program::Program>> programs =
      model != nullptr ? model->Generate(sketch_, count, o)
                       : absl::FailedPreconditionError("no model published");
  if (!programs.ok()) {
    spdlog::error("tlm sampler: {}; sampling {} programs at random instead",
                  programs.status().ToString(), count);
    return fallback_.Propose(count, exclude);
  }
  // The model found no more unseen programs: the rest come from random
  // search, which enumerates a nearly exhausted space exactly.
  if (static_cast<int>(programs->size()) < count) {
    absl::flat_hash_set<std::string> taken = exclude;
    for (const program::Program& p : *programs) taken.insert(program::ProgramHash(p));
    for (program::Program& p : fallback_.Propose(count - programs->size(), taken)) {
      programs->push_back(std::move(p));
    }
  }
  return *std::move(programs);
}

void AddTlmSampler(SamplerRegistry& registry, const ModelSlot* slot,
                   const models::GenerateOptions& options) {
  registry.Add("tlm", [slot, options](program::Sketch sketch,
                                      uint64_t seed) -> absl::StatusOr<std::unique_ptr<Sampler>> {
    const std::shared_ptr<const models::Model> model = slot->Get();
    if (model == nullptr) {
      return absl::FailedPreconditionError(
          "sampler: tlm needs a model; start tlmd with --model=CHECKPOINT");
    }
    const size_t tokens = model->tokenizer().Encode(sketch.Prompt()).size() + sketch.slots().size();
    if (static_cast<int64_t>(tokens) > model->config().max_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampler: the task's program is ", tokens,
                       " tokens, more than the model's max_len ", model->config().max_len));
    }
    return std::make_unique<TlmSampler>(std::move(sketch), slot, options, seed);
  });
}

}  // namespace tlm::server

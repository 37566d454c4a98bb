// The tensor language model: a tokenizer and a decoder-only transformer that
// completes a sketch's prompt with its decisions.
//
// libtorch stays behind this header: no torch type appears here, and every
// libtorch exception raised inside becomes an absl::Status.
#ifndef TLMD_MODELS_MODEL_H_
#define TLMD_MODELS_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/tokenizer.h"
#include "program/program.h"

namespace tlm::models {

struct ModelConfig {
  int64_t d_model = 128;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_ff = 512;
  int64_t max_len = 320;  // prompt and completion tokens together

  // INVALID_ARGUMENT naming the field for a size that cannot work.
  absl::Status Validate() const;
  friend bool operator==(const ModelConfig& a, const ModelConfig& b) {
    return a.d_model == b.d_model && a.n_layer == b.n_layer && a.n_head == b.n_head &&
           a.d_ff == b.d_ff && a.max_len == b.max_len;
  }
};

struct GenerateOptions {
  // Softmax temperature over the allowed values; <= 0 picks the most likely.
  double temperature = 1.0;
  // Keep only the k most likely allowed values (0: all).
  int top_k = 0;
  // Probability, per decision, of drawing uniformly among all allowed values
  // instead of from the model. (A value the model has no token for, such as
  // a factor above 1024 of a large prime extent, is scored as the largest
  // number token when drawing from the model.)
  double explore = 0;
  // Sequences decoded together.
  int batch_size = 64;
  // Reuse the keys and values of earlier positions (off only to check it).
  bool use_kv_cache = true;
  uint64_t seed = 1;
  // Programs whose hash (program::HashText of the text) is here are not
  // returned, nor is any program twice.
  const absl::flat_hash_set<std::string>* exclude = nullptr;
  // Sequences decoded at most per program asked for, before giving up on
  // finding unseen ones.
  int max_attempts_per_program = 8;
};

// A model is immutable once built or loaded, except by models::Train, and
// then safe to use from many threads at once.
class Model {
 public:
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  // A freshly initialized model (weights from `seed`).
  static absl::StatusOr<Model> Create(const ModelConfig& config, Tokenizer tokenizer,
                                      uint64_t seed);
  // Reads a checkpoint written by Save. A missing, truncated, corrupted or
  // foreign file, or weights that do not fit the stored config, give an
  // error naming the file and what is wrong.
  static absl::StatusOr<Model> Load(const std::string& path);
  // Writes a checkpoint atomically: a temporary file in the same directory,
  // flushed, then renamed over `path`.
  absl::Status Save(const std::string& path) const;

  // An independent copy (weights, vocabulary, metadata), e.g. to fine-tune
  // while this one keeps serving.
  absl::StatusOr<Model> Clone() const;

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  int64_t num_parameters() const;
  // Free-form facts kept in the checkpoint (what it was trained on, ...).
  std::map<std::string, std::string>& metadata();
  const std::map<std::string, std::string>& metadata() const;

  // Up to `count` programs for the sketch, decoded with constrained
  // decoding: at every decision only the values Sketch::Candidates allows
  // can be drawn, so every program is valid. Fewer than `count` only when
  // options.exclude and the attempt limit leave no more.
  // FAILED_PRECONDITION when the prompt and decisions exceed max_len.
  absl::StatusOr<std::vector<program::Program>> Generate(const program::Sketch& sketch, int count,
                                                         const GenerateOptions& options) const;

  // Mean loss (nats per completion token) of `programs` and its perplexity.
  struct Evaluation {
    double loss = 0;
    double perplexity = 0;
    int64_t tokens = 0;
  };
  absl::StatusOr<Evaluation> Evaluate(const std::vector<program::Program>& programs) const;

  // Internals, for models/ and its tests only.
  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A multi-line description of a model: config, vocabulary, parameters,
// metadata.
std::string Describe(const Model& model);

}  // namespace tlm::models

#endif  // TLMD_MODELS_MODEL_H_

// Word-level tokenizer of the tensor program language.
//
// A program's canonical text is a sequence of words separated by single
// spaces (program::Print); each word is one token. The vocabulary holds the
// special tokens, every integer in [0, kNumberTokens) (so decision values
// and shapes of workloads never seen in training still have a token), and
// the remaining words of the corpus it was built from, in sorted order.
// Words outside the vocabulary encode as kUnk.
#ifndef TLMD_MODELS_TOKENIZER_H_
#define TLMD_MODELS_TOKENIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlm::models {

class Tokenizer {
 public:
  static constexpr int32_t kPad = 0;
  static constexpr int32_t kBegin = 1;
  static constexpr int32_t kEnd = 2;
  static constexpr int32_t kEndOfPrompt = 3;
  static constexpr int32_t kUnk = 4;
  static constexpr int64_t kNumberTokens = 1025;  // integers 0..1024

  // A vocabulary of the special tokens and numbers only.
  Tokenizer();

  // The vocabulary of `texts` (canonical program texts or prompts).
  static Tokenizer Build(const std::vector<std::string>& texts);

  // The form Serialize writes: one word per line, in id order.
  std::string Serialize() const;
  // INVALID_ARGUMENT for an empty, duplicated or misordered vocabulary.
  static absl::StatusOr<Tokenizer> Deserialize(absl::string_view text);

  int32_t size() const { return static_cast<int32_t>(words_.size()); }
  const std::string& word(int32_t id) const { return words_.at(id); }

  // The token of one word, kUnk if it has none.
  int32_t Id(absl::string_view word) const;
  // The token of an integer, nullopt if it has none.
  std::optional<int32_t> NumberId(int64_t value) const;
  // The integer a token spells, nullopt for a token that is not one.
  std::optional<int64_t> NumberOf(int32_t id) const;

  // kBegin followed by the words of `text` (the canonical "<eop>" word is
  // kEndOfPrompt); no kEnd, so a prompt encodes to the prefix a completion
  // continues.
  std::vector<int32_t> Encode(absl::string_view text) const;
  // The words of `ids` joined by spaces; kPad, kBegin and kEnd are skipped.
  std::string Decode(const std::vector<int32_t>& ids) const;

 private:
  void Add(std::string word);

  std::vector<std::string> words_;
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<std::optional<int64_t>> numbers_;  // per id
};

}  // namespace tlm::models

#endif  // TLMD_MODELS_TOKENIZER_H_

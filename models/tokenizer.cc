#include "models/tokenizer.h"

#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "program/program.h"

namespace tlm::models {
namespace {

constexpr const char* kSpecial[] = {"<pad>", "<bos>", "<eos>", program::kEndOfPrompt, "<unk>"};

// The integer a word spells in canonical decimal form ("7", not "07").
std::optional<int64_t> CanonicalNumber(absl::string_view word) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(word, &value) || absl::StrCat(value) != word) return std::nullopt;
  return value;
}

}  // namespace

Tokenizer::Tokenizer() {
  for (const char* s : kSpecial) Add(s);
  for (int64_t n = 0; n < kNumberTokens; ++n) Add(absl::StrCat(n));
}

void Tokenizer::Add(std::string word) {
  ids_.emplace(word, size());
  numbers_.push_back(CanonicalNumber(word));
  words_.push_back(std::move(word));
}

Tokenizer Tokenizer::Build(const std::vector<std::string>& texts) {
  Tokenizer t;
  std::set<std::string> extra;
  for (const std::string& text : texts) {
    for (absl::string_view w : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
      if (!t.ids_.contains(w)) extra.emplace(w);
    }
  }
  for (const std::string& w : extra) t.Add(w);
  return t;
}

std::string Tokenizer::Serialize() const { return absl::StrJoin(words_, "\n"); }

absl::StatusOr<Tokenizer> Tokenizer::Deserialize(absl::string_view text) {
  const std::vector<std::string> words = absl::StrSplit(text, '\n');
  const Tokenizer base;
  if (words.size() < base.words_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary: ", words.size(),
                                                   " words, fewer than the ",
                                                   base.words_.size(), " fixed ones"));
  }
  for (size_t i = 0; i < base.words_.size(); ++i) {
    if (words[i] != base.words_[i]) {
      return absl::InvalidArgumentError(absl::StrCat("vocabulary: word ", i, " is '", words[i],
                                                     "', expected '", base.words_[i], "'"));
    }
  }
  Tokenizer t = base;
  for (size_t i = base.words_.size(); i < words.size(); ++i) {
    if (words[i].empty() || words[i].find(' ') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("vocabulary: word ", i, " is malformed"));
    }
    if (t.ids_.contains(words[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary: word '", words[i], "' appears twice"));
    }
    t.Add(words[i]);
  }
  return t;
}

int32_t Tokenizer::Id(absl::string_view word) const {
  auto it = ids_.find(word);
  return it == ids_.end() ? kUnk : it->second;
}

std::optional<int32_t> Tokenizer::NumberId(int64_t value) const {
  if (value >= 0 && value < kNumberTokens) {
    return static_cast<int32_t>(std::size(kSpecial) + value);
  }
  auto it = ids_.find(absl::StrCat(value));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> Tokenizer::NumberOf(int32_t id) const {
  if (id < 0 || id >= size()) return std::nullopt;
  return numbers_[id];
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids = {kBegin};
  for (absl::string_view w : absl::StrSplit(text, ' ', absl::SkipEmpty())) ids.push_back(Id(w));
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::vector<absl::string_view> out;
  for (int32_t id : ids) {
    if (id == kPad || id == kBegin || id == kEnd) continue;
    out.push_back(id >= 0 && id < size() ? absl::string_view(words_[id])
                                         : absl::string_view(words_[kUnk]));
  }
  return absl::StrJoin(out, " ");
}

}  // namespace tlm::models

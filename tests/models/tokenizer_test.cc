#include "models/tokenizer.h"

#include <random>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "program/program.h"
#include "program/sampler.h"
#include "tests/program/small_workloads.h"

namespace tlm::models {
namespace {

std::vector<std::string> SampleTexts() {
  std::mt19937_64 rng(3);
  std::vector<std::string> texts;
  for (const program::Workload& w : testing::SmallWorkloads()) {
    for (const std::string& target : program::TargetKinds()) {
      const program::Sketch sketch = *program::Sketch::Make(w, target);
      for (int i = 0; i < 5; ++i) texts.push_back(program::Print(program::SampleProgram(sketch, rng)));
    }
  }
  return texts;
}

TEST_CASE("every program text encodes and decodes to itself") {
  const std::vector<std::string> texts = SampleTexts();
  const Tokenizer t = Tokenizer::Build(texts);
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = t.Encode(text);
    REQUIRE(ids.front() == Tokenizer::kBegin);
    for (int32_t id : ids) REQUIRE(id != Tokenizer::kUnk);
    REQUIRE(t.Decode(ids) == text);
  }
}

TEST_CASE("the end-of-prompt word is its special token") {
  const Tokenizer t = Tokenizer::Build({"a <eop> 3"});
  REQUIRE(t.Encode("a <eop> 3") ==
          std::vector<int32_t>{Tokenizer::kBegin, t.Id("a"), Tokenizer::kEndOfPrompt, *t.NumberId(3)});
}

TEST_CASE("numbers have tokens whether or not the corpus had them") {
  const Tokenizer t = Tokenizer::Build({"dense M 3072 <eop> 4"});
  REQUIRE(t.NumberOf(*t.NumberId(0)) == 0);
  REQUIRE(t.NumberOf(*t.NumberId(1024)) == 1024);
  REQUIRE(t.NumberOf(*t.NumberId(3072)) == 3072);  // from the corpus
  REQUIRE_FALSE(t.NumberId(5000).has_value());
  REQUIRE_FALSE(t.NumberId(-1).has_value());
  REQUIRE_FALSE(t.NumberOf(t.Id("dense")).has_value());
  REQUIRE(t.Id("conv2d_nchw") == Tokenizer::kUnk);
  REQUIRE(t.Decode({Tokenizer::kBegin, t.Id("zzz"), Tokenizer::kEnd}) == "<unk>");
}

TEST_CASE("the vocabulary survives serialization, and a damaged one is refused") {
  const Tokenizer t = Tokenizer::Build(SampleTexts());
  absl::StatusOr<Tokenizer> back = Tokenizer::Deserialize(t.Serialize());
  REQUIRE(back.ok());
  REQUIRE(back->size() == t.size());
  for (int32_t id = 0; id < t.size(); ++id) REQUIRE(back->word(id) == t.word(id));

  REQUIRE(Tokenizer::Deserialize("<pad>\n<bos>").status().message().find("fewer") !=
          std::string::npos);
  std::string swapped = t.Serialize();
  swapped.replace(0, 5, "<bos>");
  REQUIRE(Tokenizer::Deserialize(swapped).status().message().find("word 0") != std::string::npos);
  REQUIRE(Tokenizer::Deserialize(Tokenizer().Serialize() + "\ndense\ndense")
              .status()
              .message()
              .find("twice") != std::string::npos);
}

}  // namespace
}  // namespace tlm::models

#include "models/model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "models/model_impl.h"

namespace tlm::models {
namespace {

// Checkpoint layout (integers little-endian):
//   8 bytes  kMagic
//   u32      kFormatVersion
//   3 times  u64 length + bytes: config text, vocabulary, weights
//            (a torch::serialize archive)
//   u64      FNV-1a 64 of every byte before it
constexpr char kMagic[8] = {'T', 'L', 'M', 'C', 'K', 'P', 'T', '\n'};
constexpr uint32_t kFormatVersion = 1;

uint64_t Fnv1a(absl::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

template <typename T>
void PutInt(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads the checkpoint's fields in order; every read is bounds-checked.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  bool Int(T& v) {
    if (bytes_.size() - pos_ < sizeof(T)) return false;
    v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v |= static_cast<T>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
    }
    pos_ += sizeof(T);
    return true;
  }
  bool Section(absl::string_view& out) {
    uint64_t n = 0;
    if (!Int(n) || n > bytes_.size() - pos_) return false;
    out = bytes_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  absl::string_view bytes_;
  size_t pos_ = 0;
};

std::string ConfigText(const ModelConfig& c, const std::map<std::string, std::string>& meta) {
  std::string out = absl::StrCat("d_model ", c.d_model, "\nn_layer ", c.n_layer, "\nn_head ",
                                 c.n_head, "\nd_ff ", c.d_ff, "\nmax_len ", c.max_len, "\n");
  for (const auto& [k, v] : meta) absl::StrAppend(&out, "meta ", k, " ", v, "\n");
  return out;
}

absl::Status ParseConfigText(absl::string_view text, ModelConfig& c,
                             std::map<std::string, std::string>& meta) {
  const std::map<std::string, int64_t*> fields = {{"d_model", &c.d_model},
                                                  {"n_layer", &c.n_layer},
                                                  {"n_head", &c.n_head},
                                                  {"d_ff", &c.d_ff},
                                                  {"max_len", &c.max_len}};
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> words = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    if (words[0] == "meta" && words.size() == 3) {
      meta[std::string(words[1])] = std::string(words[2]);
      continue;
    }
    auto it = fields.find(std::string(words[0]));
    if (it == fields.end() || words.size() != 2 || !absl::SimpleAtoi(words[1], it->second)) {
      return absl::InvalidArgumentError(absl::StrCat("config line '", line, "' is malformed"));
    }
  }
  return c.Validate();
}

}  // namespace

absl::Status CatchTorch(const char* what, const std::function<absl::Status()>& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, ": libtorch: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {  // Debian's libtorch throws std::runtime_error too
    return absl::InternalError(absl::StrCat(what, ": libtorch: ", e.what()));
  }
}

absl::Status ModelConfig::Validate() const {
  auto bad = [](const char* field, int64_t v, const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("model config: ", field, " = ", v, " ", why));
  };
  if (d_model < 8 || d_model > 8192) return bad("d_model", d_model, "is outside [8, 8192]");
  if (n_layer < 1 || n_layer > 64) return bad("n_layer", n_layer, "is outside [1, 64]");
  if (n_head < 1 || d_model % n_head != 0) return bad("n_head", n_head, "must divide d_model");
  if (d_ff < 1 || d_ff > 65536) return bad("d_ff", d_ff, "is outside [1, 65536]");
  if (max_len < 16 || max_len > 8192) return bad("max_len", max_len, "is outside [16, 8192]");
  return absl::OkStatus();
}

EncodedProgram EncodeProgram(const Tokenizer& tokenizer, const program::Program& p) {
  EncodedProgram e;
  e.ids = tokenizer.Encode(program::Print(p));
  auto eop = std::find(e.ids.begin(), e.ids.end(), Tokenizer::kEndOfPrompt);
  e.prompt_length = eop - e.ids.begin() + 1;
  return e;
}

absl::StatusOr<TokenBatch> MakeBatch(const std::vector<const EncodedProgram*>& programs,
                                     int64_t max_len) {
  size_t longest = 0;
  for (const EncodedProgram* p : programs) longest = std::max(longest, p->ids.size());
  if (static_cast<int64_t>(longest) > max_len) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a program of ", longest, " tokens does not fit the model's max_len ", max_len));
  }
  const int64_t b = programs.size(), t = std::max<int64_t>(1, longest - 1);
  TokenBatch batch;
  batch.inputs = torch::full({b, t}, Tokenizer::kPad, torch::kLong);
  batch.targets = torch::full({b, t}, Tokenizer::kPad, torch::kLong);
  batch.mask = torch::zeros({b, t});
  auto in = batch.inputs.accessor<int64_t, 2>();
  auto out = batch.targets.accessor<int64_t, 2>();
  auto mask = batch.mask.accessor<float, 2>();
  for (int64_t r = 0; r < b; ++r) {
    const EncodedProgram& p = *programs[r];
    for (size_t i = 0; i + 1 < p.ids.size(); ++i) {
      in[r][i] = p.ids[i];
      out[r][i] = p.ids[i + 1];
      mask[r][i] = i + 1 >= p.prompt_length ? 1.0f : 0.0f;
    }
  }
  return batch;
}

torch::Tensor SummedLoss(Transformer& net, const TokenBatch& batch, const torch::Device& device) {
  const torch::Tensor logits = net->forward(batch.inputs.to(device));
  const torch::Tensor nll = -torch::log_softmax(logits, -1)
                                 .gather(-1, batch.targets.to(device).unsqueeze(-1))
                                 .squeeze(-1);
  return (nll * batch.mask.to(device)).sum();
}

void InitNetwork(Model::Impl& impl) {
  impl.net = Transformer(impl.config, impl.tokenizer.size());
  impl.device = torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::kCPU;
  impl.net->to(impl.device);
  impl.net->eval();
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelConfig& Model::config() const { return impl_->config; }
const Tokenizer& Model::tokenizer() const { return impl_->tokenizer; }
std::map<std::string, std::string>& Model::metadata() { return impl_->metadata; }
const std::map<std::string, std::string>& Model::metadata() const { return impl_->metadata; }

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (const torch::Tensor& p : impl_->net->parameters()) n += p.numel();
  return n;
}

absl::StatusOr<Model> Model::Create(const ModelConfig& config, Tokenizer tokenizer,
                                    uint64_t seed) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->tokenizer = std::move(tokenizer);
  absl::Status s = CatchTorch("creating the model", [&] {
    torch::manual_seed(seed);
    InitNetwork(*impl);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return Model(std::move(impl));
}

absl::StatusOr<Model> Model::Clone() const {
  auto impl = std::make_unique<Impl>();
  impl->config = impl_->config;
  impl->tokenizer = impl_->tokenizer;
  impl->metadata = impl_->metadata;
  absl::Status s = CatchTorch("copying the model", [&] {
    InitNetwork(*impl);
    torch::NoGradGuard no_grad;
    const std::vector<torch::Tensor> from = impl_->net->parameters();
    const std::vector<torch::Tensor> to = impl->net->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return Model(std::move(impl));
}

absl::Status Model::Save(const std::string& path) const {
  std::string weights;
  absl::Status s = CatchTorch("saving the weights", [&] {
    // Flat: one entry per parameter, under its dotted name.
    torch::serialize::OutputArchive archive;
    for (const auto& p : impl_->net->named_parameters()) {
      archive.write(p.key(), p.value().cpu());
    }
    std::ostringstream os;
    archive.save_to(os);
    weights = os.str();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::string bytes(kMagic, sizeof(kMagic));
  PutInt<uint32_t>(bytes, kFormatVersion);
  for (const std::string& section :
       {ConfigText(impl_->config, impl_->metadata), impl_->tokenizer.Serialize(), weights}) {
    PutInt<uint64_t>(bytes, section.size());
    bytes += section;
  }
  PutInt<uint64_t>(bytes, Fnv1a(bytes));

  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += n;
  }
  const bool ok = done == bytes.size() && fsync(fd) == 0;
  const int saved_errno = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(ok ? errno : saved_errno);
    unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat(path, ": cannot write the checkpoint: ", why));
  }
  return absl::OkStatus();
}

absl::StatusOr<Model> Model::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(path, ": not a usable tlmd checkpoint: ", why));
  };
  if (bytes.size() < sizeof(kMagic) || bytes.compare(0, sizeof(kMagic), kMagic, sizeof(kMagic))) {
    return bad("wrong magic (not a checkpoint)");
  }
  Reader r(absl::string_view(bytes).substr(sizeof(kMagic)));
  uint32_t version = 0;
  if (!r.Int(version)) return bad("truncated header");
  if (version != kFormatVersion) {
    return bad(absl::StrCat("format version ", version, ", this build reads ", kFormatVersion));
  }
  absl::string_view config_text, vocab_text, weights;
  uint64_t checksum = 0;
  if (!r.Section(config_text) || !r.Section(vocab_text) || !r.Section(weights) ||
      !r.Int(checksum)) {
    return bad("truncated");
  }
  const size_t body = sizeof(kMagic) + r.pos() - sizeof(uint64_t);
  if (sizeof(kMagic) + r.pos() != bytes.size()) return bad("trailing bytes after the checksum");
  if (Fnv1a(absl::string_view(bytes).substr(0, body)) != checksum) {
    return bad("checksum mismatch (corrupted)");
  }
  auto impl = std::make_unique<Impl>();
  if (absl::Status s = ParseConfigText(config_text, impl->config, impl->metadata); !s.ok()) {
    return bad(s.message());
  }
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::Deserialize(vocab_text);
  if (!tokenizer.ok()) return bad(tokenizer.status().message());
  impl->tokenizer = *std::move(tokenizer);

  std::string mismatch;
  absl::Status s = CatchTorch("loading the weights", [&] {
    InitNetwork(*impl);
    torch::serialize::InputArchive archive;
    std::istringstream is{std::string(weights)};
    archive.load_from(is);
    torch::NoGradGuard no_grad;
    for (auto& p : impl->net->named_parameters()) {
      torch::Tensor stored;
      if (!archive.try_read(p.key(), stored)) {
        mismatch = absl::StrCat("weights lack ", p.key());
        return absl::OkStatus();
      }
      if (stored.sizes() != p.value().sizes()) {
        std::ostringstream os;
        os << p.key() << " has shape " << stored.sizes() << ", the config needs "
           << p.value().sizes();
        mismatch = os.str();
        return absl::OkStatus();
      }
      p.value().copy_(stored);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return bad(s.message());
  if (!mismatch.empty()) return bad(mismatch);
  return Model(std::move(impl));
}

namespace {

// Draws one allowed value from a row of logits, value i scored by the logit
// of token tokens[i] (none when negative); returns its index.
size_t Choose(const float* logits, const std::vector<int64_t>& values,
              const std::vector<int32_t>& tokens, const GenerateOptions& o,
              std::mt19937_64& rng) {
  if (o.explore > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < o.explore) {
    return std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng);
  }
  std::vector<std::pair<double, size_t>> scored;
  for (size_t i = 0; i < values.size(); ++i) {
    if (tokens[i] >= 0) scored.emplace_back(logits[tokens[i]], i);
  }
  if (scored.empty()) return std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng);
  if (o.temperature <= 0) {
    return std::max_element(scored.begin(), scored.end(),
                            [](const auto& a, const auto& b) { return a.first < b.first; })
        ->second;
  }
  if (o.top_k > 0 && static_cast<size_t>(o.top_k) < scored.size()) {
    std::partial_sort(scored.begin(), scored.begin() + o.top_k, scored.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    scored.resize(o.top_k);
  }
  double top = scored[0].first;
  for (const auto& s : scored) top = std::max(top, s.first);
  double total = 0;
  for (auto& s : scored) {
    s.first = std::exp((s.first - top) / o.temperature);
    total += s.first;
  }
  double u = std::uniform_real_distribution<double>(0, total)(rng);
  for (const auto& s : scored) {
    if (u < s.first) return s.second;
    u -= s.first;
  }
  return scored.back().second;
}

}  // namespace

absl::StatusOr<std::vector<program::Program>> Model::Generate(
    const program::Sketch& sketch, int count, const GenerateOptions& o) const {
  const std::vector<int32_t> prompt = impl_->tokenizer.Encode(sketch.Prompt());
  const int64_t slots = sketch.slots().size();
  if (static_cast<int64_t>(prompt.size()) + slots > impl_->config.max_len) {
    return absl::FailedPreconditionError(
        absl::StrCat("generate: the prompt (", prompt.size(), " tokens) and ", slots,
                     " decisions exceed the model's max_len ", impl_->config.max_len));
  }
  if (o.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("generate: batch_size ", o.batch_size, " must be positive"));
  }
  std::vector<program::Program> out;
  absl::Status s = CatchTorch("generate", [&] {
    c10::InferenceMode inference;
    Transformer& net = impl_->net;
    std::mt19937_64 rng(o.seed);
    absl::flat_hash_set<std::string> seen;
    // A value beyond the number tokens is scored as the largest of them: the
    // model's liking for a large factor in that place carries over to it.
    const int32_t largest_number = *impl_->tokenizer.NumberId(Tokenizer::kNumberTokens - 1);
    const torch::Tensor prompt_tokens =
        torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kLong)
            .unsqueeze(0)
            .to(impl_->device);
    KvCache prompt_cache;
    const torch::Tensor prompt_logits =
        net->forward(prompt_tokens, o.use_kv_cache ? &prompt_cache : nullptr).select(1, -1);
    int64_t attempts = static_cast<int64_t>(count) * std::max(1, o.max_attempts_per_program);
    if (o.exclude == nullptr) attempts = count;
    while (static_cast<int>(out.size()) < count && attempts > 0) {
      const int64_t b = std::min<int64_t>({o.batch_size, attempts, count - int64_t(out.size())});
      attempts -= b;
      KvCache cache = prompt_cache;
      if (o.use_kv_cache) cache.Expand(b);
      torch::Tensor sequences = prompt_tokens.repeat({b, 1});
      torch::Tensor logits = prompt_logits.expand({b, prompt_logits.size(1)}).cpu().contiguous();
      std::vector<std::vector<int64_t>> decisions(b);
      std::vector<int64_t> next(b);
      for (int64_t slot = 0; slot < slots; ++slot) {
        const float* rows = logits.data_ptr<float>();
        for (int64_t r = 0; r < b; ++r) {
          const std::vector<int64_t> values = sketch.Candidates(slot, decisions[r]);
          std::vector<int32_t> tokens(values.size());
          std::vector<int32_t> scored_as(values.size());
          for (size_t i = 0; i < values.size(); ++i) {
            tokens[i] = impl_->tokenizer.NumberId(values[i]).value_or(-1);
            scored_as[i] = tokens[i] >= 0 ? tokens[i] : largest_number;
          }
          const size_t chosen = Choose(rows + r * logits.size(1), values, scored_as, o, rng);
          decisions[r].push_back(values[chosen]);
          next[r] = tokens[chosen] >= 0 ? tokens[chosen] : Tokenizer::kUnk;
        }
        if (slot + 1 == slots) break;
        const torch::Tensor step =
            torch::tensor(next, torch::kLong).view({b, 1}).to(impl_->device);
        if (o.use_kv_cache) {
          logits = net->forward(step, &cache).select(1, 0).cpu().contiguous();
        } else {
          sequences = torch::cat({sequences, step}, 1);
          logits = net->forward(sequences).select(1, -1).cpu().contiguous();
        }
      }
      for (std::vector<int64_t>& d : decisions) {
        program::Program p{sketch.workload(), sketch.target(), std::move(d)};
        if (o.exclude != nullptr) {
          const std::string hash = program::ProgramHash(p);
          if (o.exclude->contains(hash) || !seen.insert(hash).second) continue;
        }
        if (static_cast<int>(out.size()) < count) out.push_back(std::move(p));
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Model::Evaluation> Model::Evaluate(
    const std::vector<program::Program>& programs) const {
  std::vector<EncodedProgram> encoded;
  for (const program::Program& p : programs) encoded.push_back(EncodeProgram(impl_->tokenizer, p));
  Evaluation e;
  double total = 0;
  absl::Status s = CatchTorch("evaluate", [&] {
    c10::InferenceMode inference;
    constexpr size_t kBatch = 64;
    for (size_t i = 0; i < encoded.size(); i += kBatch) {
      std::vector<const EncodedProgram*> chunk;
      for (size_t j = i; j < std::min(encoded.size(), i + kBatch); ++j) chunk.push_back(&encoded[j]);
      absl::StatusOr<TokenBatch> batch = MakeBatch(chunk, impl_->config.max_len);
      if (!batch.ok()) return batch.status();
      total += SummedLoss(impl_->net, *batch, impl_->device).item<double>();
      e.tokens += batch->mask.sum().item<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (e.tokens > 0) {
    e.loss = total / e.tokens;
    e.perplexity = std::exp(e.loss);
  }
  return e;
}

std::string Describe(const Model& m) {
  const ModelConfig& c = m.config();
  std::string out = absl::StrCat("decoder-only transformer: d_model ", c.d_model, ", ", c.n_layer,
                                 " layers, ", c.n_head, " heads, d_ff ", c.d_ff, ", max_len ",
                                 c.max_len, "\nparameters: ", m.num_parameters(),
                                 "\nvocabulary: ", m.tokenizer().size(), " words\n");
  for (const auto& [k, v] : m.metadata()) absl::StrAppend(&out, k, ": ", v, "\n");
  return out;
}

}  // namespace tlm::models

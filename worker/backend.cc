#include "worker/backend.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlm::worker {

void BackendRegistry::Register(const std::string& name, Factory factory) {
  factories_[name] = std::move(factory);
}

absl::StatusOr<std::unique_ptr<Backend>> BackendRegistry::Make(const std::string& name) const {
  auto it = factories_.find(name);
  if (it == factories_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown backend \"", name, "\" (known: ", absl::StrJoin(names(), ", "), ")"));
  }
  return it->second();
}

std::vector<std::string> BackendRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, factory] : factories_) out.push_back(name);
  return out;
}

}  // namespace tlm::worker

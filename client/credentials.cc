#include "client/credentials.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tlm::client {

absl::StatusOr<std::string> ReadSecretFile(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  std::string text(absl::StripAsciiWhitespace(contents.str()));
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", path, " is empty"));
  return text;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientSecurity& security) {
  if (security.tls_ca_file.empty()) {
    if (!security.token_file.empty()) {
      return absl::InvalidArgumentError("token_file: a token is only sent over TLS; set tls_ca");
    }
    return grpc::InsecureChannelCredentials();
  }
  absl::StatusOr<std::string> ca = ReadSecretFile(security.tls_ca_file, "tls_ca");
  if (!ca.ok()) return ca.status();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = *ca;
  std::shared_ptr<grpc::ChannelCredentials> tls = grpc::SslCredentials(options);
  if (security.token_file.empty()) return tls;
  absl::StatusOr<std::string> token = ReadSecretFile(security.token_file, "token_file");
  if (!token.ok()) return token.status();
  return grpc::CompositeChannelCredentials(tls, grpc::AccessTokenCredentials(*token));
}

}  // namespace tlm::client

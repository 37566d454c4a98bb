#include "server/auth.h"

#include "client/credentials.h"

namespace tlm::server {
namespace {

// Compares without an early exit, so timing does not reveal the token.
bool SameSecret(grpc::string_ref given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i]) ^
            static_cast<unsigned char>(i < given.size() ? given.data()[i] : 0);
  }
  return diff == 0;
}

}  // namespace

grpc::Status TokenAuthProcessor::Process(const InputMetadata& auth_metadata, grpc::AuthContext*,
                                         OutputMetadata* consumed_auth_metadata, OutputMetadata*) {
  auto it = auth_metadata.find("authorization");
  if (it == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing bearer token");
  }
  if (!SameSecret(it->second, expected_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token");
  }
  consumed_auth_metadata->insert(
      {"authorization", std::string(it->second.data(), it->second.size())});
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security) {
  const bool tls = !security.tls_cert_file.empty() || !security.tls_key_file.empty();
  if (!tls) {
    if (!security.token_file.empty()) {
      return absl::InvalidArgumentError(
          "--auth_token_file: a token is only accepted over TLS; set --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (security.tls_cert_file.empty() || security.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key must be given together");
  }
  absl::StatusOr<std::string> cert = client::ReadSecretFile(security.tls_cert_file, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = client::ReadSecretFile(security.tls_key_file, "--tls_key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(options);
  if (!security.token_file.empty()) {
    absl::StatusOr<std::string> token =
        client::ReadSecretFile(security.token_file, "--auth_token_file");
    if (!token.ok()) return token.status();
    credentials->SetAuthMetadataProcessor(std::make_shared<TokenAuthProcessor>(*token));
  }
  return credentials;
}

}  // namespace tlm::server

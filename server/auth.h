// Transport security of tlmd: TLS and a bearer token checked on every call.
#ifndef TLMD_SERVER_AUTH_H_
#define TLMD_SERVER_AUTH_H_

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tlm::server {

struct ServerSecurity {
  std::string tls_cert_file;  // PEM certificate chain
  std::string tls_key_file;   // PEM private key
  std::string token_file;     // bearer token every call must carry; needs TLS
};

// Rejects calls whose "authorization" metadata is not "Bearer <token>".
class TokenAuthProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenAuthProcessor(std::string token) : expected_("Bearer " + std::move(token)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const std::string expected_;
};

// Plaintext when nothing is set; TLS with the certificate and key, plus the
// token check when a token file is given. INVALID_ARGUMENT names the flag.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security);

}  // namespace tlm::server

#endif  // TLMD_SERVER_AUTH_H_

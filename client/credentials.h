// Channel security for clients of tlmd (tlmctl, the client library, workers).
#ifndef TLMD_CLIENT_CREDENTIALS_H_
#define TLMD_CLIENT_CREDENTIALS_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tlm::client {

struct ClientSecurity {
  // PEM file of the CA that signed tlmd's certificate; empty: plaintext.
  std::string tls_ca_file;
  // File holding the bearer token tlmd expects; needs TLS.
  std::string token_file;
};

// Plaintext when both fields are empty (loopback use); TLS, plus the token
// on every call when one is given. INVALID_ARGUMENT names the option that
// is wrong (a token without TLS, an unreadable or empty file).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientSecurity& security);

// The trimmed contents of a file that must not be empty; `what` names it in errors.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, const std::string& what);

}  // namespace tlm::client

#endif  // TLMD_CLIENT_CREDENTIALS_H_
